"""PPO on action tokens (the paper's online PPO), with a value head on the policy's hidden states.

For each round: the sampling policy's log-probabilities are the ones logged with the episodes; the
reward of every action token is ``-kl_coef * (log pi_old - log pi_ref)``, plus the turn's reward on its
last token; GAE(gamma, lambda) runs over each episode's action tokens (``lmrl.finetune.advantages.gae``:
bootstrapping across the observation tokens between turns, and from V of the state a truncated episode
was cut in); advantages are whitened over the round. Then ``update_epochs`` passes of

    L = E[max(-A r, -A clip(r, 1 - eps, 1 + eps))] + value_coef * 0.5 * E[max((V - R)^2, (V_clip - R)^2)]
        (+ bc_weight * BC loss on a fixed dataset)

with r = pi / pi_old and V_clip = V_old + clip(V - V_old, -value_clip, value_clip). The value head reads
the policy's hidden states; by default its loss trains the head only (``value_trunk``: the trunk too,
as the paper's code: on a small model from a BC start, a value loss of returns in the tens then
outweighs the policy's gradient and the policy drifts off its moves). The KL coefficient
is fixed or adapted each round toward ``kl_target`` (``KLController``).
"""

from __future__ import annotations

from typing import Any

from lmrl.finetune.advantages import TurnTokens, gae, whiten
from lmrl.finetune.common import bc_loss, forward, masked_mean, shifted
from lmrl.finetune.data import collate
from lmrl.finetune.policy import (
    Item,
    action_logprobs,
    clipped_surrogate,
    collate_items,
    score,
    turns_of,
    values_of,
)

NAME = "ppo"
VALUE_HEAD = True
DEFAULTS: dict[str, Any] = {"kl_coef": 0.001, "update_epochs": 4}


def prepare(ctx: Any, episodes: list[Any], samples: list[list[Any]]) -> tuple[list[Item], dict[str, float]]:
    flat = [s for turns in samples for s in turns]
    pad = ctx.tokenizer.pad_token_id
    current, values, finals = score(
        ctx.policy, flat, pad, ctx.device, value_head=ctx.value_module, packing=ctx.packing
    )
    reference = (
        score(ctx.reference, flat, pad, ctx.device, packing=ctx.packing)[0]
        if ctx.reference is not None
        else current
    )
    items: list[Item] = []
    kls: list[float] = []
    i = 0
    for turns in samples:
        tokens, own = [], []
        for sample in turns:
            old = sample.logprobs if sample.logprobs is not None else current[i]
            kl = [o - r for o, r in zip(old, reference[i], strict=True)]
            rewards = [-ctx.kl_coef * k for k in kl]
            rewards[-1] += sample.reward
            tokens.append(TurnTokens(values[i], rewards, sample.discounts))
            own.append(Item(sample, old_logprobs=old, old_values=values[i], ref_logprobs=reference[i]))
            kls += kl
            i += 1
        if not turns:
            continue
        final = finals[i - 1] * turns[-1].bootstrap  # 0 after a termination
        advantages, returns = gae(tokens, final, ctx.settings["lam"])
        for item, a, r in zip(own, advantages, returns, strict=True):
            item.advantages, item.returns = a, r
        items += own
    flat_advantages = whiten([a for item in items for a in item.advantages])
    start = 0
    for item in items:
        n = len(item.advantages)
        item.advantages, start = flat_advantages[start : start + n], start + n
    return items, {"kl": sum(kls) / max(1, len(kls))}


def loss(ctx: Any, items: list[Any]):
    settings = ctx.settings
    batch = collate_items(items, ctx.tokenizer.pad_token_id, ctx.device)
    out = forward(ctx.model, batch, hidden=True)
    policy_loss, metrics = clipped_surrogate(action_logprobs(out), batch, out.mask, settings["clip"])
    v = values_of(ctx.value_head, out, settings.get("value_trunk", False))
    old_v, returns = shifted(batch, "old_values"), shifted(batch, "returns")
    clipped_v = old_v + (v - old_v).clamp(-settings["value_clip"], settings["value_clip"])
    value_loss = 0.5 * masked_mean(((v - returns) ** 2).maximum((clipped_v - returns) ** 2), out.mask)
    total = policy_loss + settings["value_coef"] * value_loss
    metrics.update(policy=float(policy_loss.detach()), value=float(value_loss.detach()))
    if settings.get("bc_weight") and ctx.bc_samples:
        chosen = ctx.rng.sample(ctx.bc_samples, min(turns_of(items), len(ctx.bc_samples)))
        bc_batch = {k: v.to(ctx.device) for k, v in collate(chosen, ctx.tokenizer.pad_token_id).items()}
        bc = bc_loss(forward(ctx.model, bc_batch))
        total = total + settings["bc_weight"] * bc
        metrics["bc"] = float(bc.detach())
    return total, metrics
