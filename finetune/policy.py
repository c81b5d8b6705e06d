"""What the policy-gradient algorithms (PPO, GRPO) share: a turn with per-token training targets,
its batch tensors, the policy's log-probabilities and values at the action tokens, the clipped
surrogate and the KL estimate.

Alignment follows ``lmrl.finetune.common``: token ``j`` is predicted at position ``j - 1``, so every
per-token field is read through ``shifted``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lmrl.finetune.common import Forward, forward, last_state, shifted
from lmrl.finetune.data import Sample, collate

PER_TOKEN = ("advantages", "returns", "old_logprobs", "old_values", "ref_logprobs")


@dataclass
class Item:
    """One turn to train on: its sample and, per action token, what the update compares against."""

    sample: Sample
    advantages: list[float] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    old_logprobs: list[float] = field(default_factory=list)
    old_values: list[float] = field(default_factory=list)
    ref_logprobs: list[float] = field(default_factory=list)


def collate_items(items: Sequence[Item], pad_id: int, device: Any) -> dict[str, torch.Tensor]:
    """``collate`` of the samples plus each per-token field at the action positions ([B, T])."""
    batch = collate([item.sample for item in items], pad_id)
    width = batch["input_ids"].shape[1]
    for name in PER_TOKEN:
        tensor = torch.zeros((len(items), width))
        for row, item in enumerate(items):
            values = getattr(item, name)
            if values:
                start = len(item.sample.prompt_ids)
                tensor[row, start : start + len(values)] = torch.tensor(values, dtype=torch.float32)
        batch[name] = tensor
    return {k: v.to(device) for k, v in batch.items()}


def action_logprobs(out: Forward) -> torch.Tensor:
    """log pi(token) at every position ([B, T-1]; meaningful where ``out.mask`` is 1)."""
    return torch.log_softmax(out.logits.float(), dim=-1).gather(-1, out.targets.unsqueeze(-1)).squeeze(-1)


def values_of(value_head: Any, out: Forward, train_trunk: bool = True) -> torch.Tensor:
    """V(s) before each token ([B, T-1]); with ``train_trunk`` false the value loss reaches only the
    head, not the hidden states the policy shares."""
    hidden = out.hidden if train_trunk else out.hidden.detach()
    return value_head(hidden).squeeze(-1)


@torch.no_grad()
def score(
    model: Any,
    samples: Sequence[Sample],
    pad_id: int,
    device: Any,
    batch_size: int = 32,
    value_head: Any = None,
) -> tuple[list[list[float]], list[list[float]], list[float]]:
    """Per sample: the log-probabilities of its action tokens, the values before them (empty without a
    value head) and V of the state after the turn (0.0 without one)."""
    logprobs: list[list[float]] = []
    values: list[list[float]] = []
    finals: list[float] = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
        out = forward(model, batch, hidden=value_head is not None)
        lp = action_logprobs(out)
        v = values_of(value_head, out) if value_head is not None else None
        after = (
            value_head(last_state(model, batch["next_ids"], batch["next_mask"], batch["next_last"])).squeeze(
                -1
            )
            if value_head is not None
            else torch.zeros(len(chunk))
        )
        for row, sample in enumerate(chunk):
            # action token k sits at position p + k, predicted at p + k - 1
            p, n = len(sample.prompt_ids), len(sample.action_ids)
            logprobs.append(lp[row, p - 1 : p - 1 + n].tolist())
            values.append(v[row, p - 1 : p - 1 + n].tolist() if v is not None else [])
            finals.append(float(after[row]))
    return logprobs, values, finals


def clipped_surrogate(
    new_logprobs: torch.Tensor, batch: dict[str, torch.Tensor], mask: torch.Tensor, clip: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped ratio loss over action tokens, with the approximate KL to the sampling policy
    and the fraction of clipped tokens."""
    old = shifted(batch, "old_logprobs")
    advantages = shifted(batch, "advantages")
    ratio = torch.exp(new_logprobs - old)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    total = mask.sum().clamp(min=1.0)
    loss = (torch.maximum(unclipped, clipped) * mask).sum() / total
    with torch.no_grad():
        approx_kl = (((ratio - 1) - (new_logprobs - old)) * mask).sum() / total
        clip_fraction = (((ratio - 1).abs() > clip).float() * mask).sum() / total
    return loss, {"approx_kl": float(approx_kl), "clip_fraction": float(clip_fraction)}


def kl_to_reference(new_logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL(pi || pi_ref) estimate (Schulman's k3: unbiased, never negative, zero exactly where
    the two policies agree on the token)."""
    delta = ref_logprobs - new_logprobs
    return torch.exp(delta) - delta - 1.0
