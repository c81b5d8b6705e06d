"""Group-baseline policy gradient (GRPO / RLOO) over episodes that share an initial state.

Each round plays ``group_size`` episodes from every start (same task seed, each with its own sampling
stream). Credit (``lmrl.finetune.advantages.group_advantages``):

- ``turn`` (default): turn t of episode i gets its return-to-go G_it against the mean return-to-go of
  the group's other episodes at turn t, on every token of that turn's action;
- ``episode``: every action token of episode i gets R_i against the others' mean return (what TRL,
  verl and OpenRLHF broadcast).

``scale`` divides by the group's return std (GRPO's normalisation; off: RLOO / Dr. GRPO). The loss is
the clipped surrogate against the logged sampling log-probabilities, plus ``kl_coef`` times the k3 KL
estimate to the starting policy when ``kl_coef`` > 0. No value head.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from lmrl.finetune.advantages import group_advantages
from lmrl.finetune.common import forward, masked_mean, shifted
from lmrl.finetune.policy import (
    Item,
    action_logprobs,
    clipped_surrogate,
    collate_items,
    kl_to_reference,
    score,
)

NAME = "grpo"
VALUE_HEAD = False
DEFAULTS: dict[str, Any] = {"kl_coef": 0.0, "update_epochs": 1}


def prepare(ctx: Any, episodes: list[Any], samples: list[list[Any]]) -> tuple[list[Item], dict[str, float]]:
    settings = ctx.settings
    groups: dict[int, list[int]] = defaultdict(list)
    for position, episode in enumerate(episodes):
        groups[episode.index].append(position)  # same index = same start (the run's same_starts)
    credit: dict[int, list[float]] = {}
    for members in groups.values():
        rewards = [[s.reward for s in samples[m]] for m in members]
        advantages = group_advantages(rewards, settings["gamma"], settings["credit"], settings["scale"])
        credit.update(zip(members, advantages, strict=True))
    flat = [s for turns in samples for s in turns]
    reference: list[list[float]] = []
    if ctx.reference is not None:
        reference = score(ctx.reference, flat, ctx.tokenizer.pad_token_id, ctx.device, packing=ctx.packing)[0]
    current: list[list[float]] = []
    if any(s.logprobs is None for s in flat) or reference:
        current = score(ctx.policy, flat, ctx.tokenizer.pad_token_id, ctx.device, packing=ctx.packing)[0]
    items, kls, i = [], [], 0
    for position, turns in enumerate(samples):
        for t, sample in enumerate(turns):
            old = sample.logprobs if sample.logprobs is not None else current[i]
            item = Item(sample, advantages=[credit[position][t]] * len(old), old_logprobs=old)
            if reference:
                item.ref_logprobs = reference[i]
                kls += [o - r for o, r in zip(old, reference[i], strict=True)]
            items.append(item)
            i += 1
    stats = {
        "groups": float(len(groups)),
        "mean_abs_advantage": _mean([abs(a) for v in credit.values() for a in v]),
    }
    if kls:
        stats["kl"] = _mean(kls)
    return items, stats


def loss(ctx: Any, items: list[Any]):
    batch = collate_items(items, ctx.tokenizer.pad_token_id, ctx.device)
    out = forward(ctx.model, batch)
    new = action_logprobs(out)
    total, metrics = clipped_surrogate(new, batch, out.mask, ctx.settings["clip"])
    if ctx.kl_coef and ctx.reference is not None:
        kl = masked_mean(kl_to_reference(new, shifted(batch, "ref_logprobs")), out.mask)
        total = total + ctx.kl_coef * kl
        metrics["kl_ref"] = float(kl.detach())
    return total, metrics


def _mean(values: list[float]) -> float:
    return sum(values) / max(1, len(values))
