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
from lmrl.finetune.data import PackedEpisode, Sample, collate, collate_packed, pack_episode

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


@dataclass
class EpisodeItems:
    """One episode's items as one sequence (``lmrl.finetune.data.pack_episode``): where the rendering
    only grows (maze-po, Text-Nav PO, Wordle), a forward over the episode's last rendering holds every
    turn's action tokens in place, so the update costs one sequence per episode, not one per turn."""

    packed: PackedEpisode
    items: list[Item]


def pack_items(items: Sequence[Item]) -> list[EpisodeItems] | None:
    """Each episode of ``items`` (which come episode by episode, turn by turn) as one packed unit. An
    episode that does not pack (a sampled reply whose tokens are not how the next prompt renders it,
    such as an invalid answer cut at a stop) gives one unit per turn. None when no episode of two or
    more turns packs: then the update stays per turn."""
    ranges = _episode_ranges([item.sample for item in items])
    units: list[EpisodeItems] = []
    gained = False
    for turns in ranges or []:
        mine = list(items[turns.start : turns.stop])
        episode = pack_episode([item.sample for item in mine])
        if episode is None:
            units += [EpisodeItems(_one_turn(item.sample), [item]) for item in mine]
        else:
            units.append(EpisodeItems(episode, mine))
            gained |= len(mine) > 1
    return units if gained else None


def _episode_ranges(samples: Sequence[Sample]) -> list[range] | None:
    """The index ranges of each episode's samples, or None unless they come episode by episode (each
    episode's turns together, in order)."""
    ranges: list[range] = []
    seen: set[str] = set()
    start = 0
    for end in range(1, len(samples) + 1):
        if end < len(samples) and samples[end].key == samples[start].key:
            continue
        turns = [s.turn for s in samples[start:end]]
        if samples[start].key in seen or turns != sorted(turns):
            return None
        seen.add(samples[start].key)
        ranges.append(range(start, end))
        start = end
    return ranges


def _one_turn(sample: Sample) -> PackedEpisode:
    return PackedEpisode(
        ids=sample.prompt_ids + sample.action_ids, samples=[sample], starts=[len(sample.prompt_ids)]
    )


def turns_of(units: Sequence[Item | EpisodeItems]) -> int:
    return sum(len(u.items) if isinstance(u, EpisodeItems) else 1 for u in units)


def collate_items(units: Sequence[Item | EpisodeItems], pad_id: int, device: Any) -> dict[str, torch.Tensor]:
    """``collate`` of the turns (or ``collate_packed`` of packed episodes) plus each per-token field at
    the action positions ([B, T]): the losses read both layouts the same way."""
    if units and isinstance(units[0], EpisodeItems):
        batch = collate_packed([u.packed for u in units], pad_id)
        rows = [list(zip(u.items, u.packed.starts, strict=True)) for u in units]
    else:
        batch = collate([item.sample for item in units], pad_id)
        rows = [[(item, len(item.sample.prompt_ids))] for item in units]
    width = batch["input_ids"].shape[1]
    for name in PER_TOKEN:
        tensor = torch.zeros((len(rows), width))
        for row, placed in enumerate(rows):
            for item, start in placed:
                values = getattr(item, name)
                if values:
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
    packing: bool = False,
) -> tuple[list[list[float]], list[list[float]], list[float]]:
    """Per sample: the log-probabilities of its action tokens, the values before them (empty without a
    value head) and V of the state after the turn (0.0 without one). With ``packing`` (samples episode
    by episode, turn by turn), each episode that packs takes one forward and gives the same numbers."""
    if packing:
        packed = [
            (turns, episode)
            for turns in _episode_ranges(samples) or []
            if len(turns) > 1 and (episode := pack_episode(samples[turns.start : turns.stop])) is not None
        ]
        if packed:
            order = [i for turns, _ in packed for i in turns]
            rest = sorted(set(range(len(samples))) - set(order))
            whole = _score_packed(model, [e for _, e in packed], pad_id, device, batch_size, value_head)
            alone = score(model, [samples[i] for i in rest], pad_id, device, batch_size, value_head)
            place = {i: k for k, i in enumerate(order + rest)}
            merged = [a + b for a, b in zip(whole, alone, strict=True)]
            logprobs, values, finals = ([part[place[i]] for i in range(len(samples))] for part in merged)
            return logprobs, values, finals
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


def _score_packed(
    model: Any,
    episodes: Sequence[PackedEpisode],
    pad_id: int,
    device: Any,
    batch_size: int,
    value_head: Any,
) -> tuple[list[list[float]], list[list[float]], list[float]]:
    """``score`` over packed episodes, about ``batch_size`` turns per forward. The state after turn t is
    the end of turn t + 1's prompt (after the last turn: the end of the final rendering)."""
    logprobs: list[list[float]] = []
    values: list[list[float]] = []
    finals: list[float] = []
    chunks: list[list[PackedEpisode]] = [[]]
    for episode in episodes:
        if chunks[-1] and sum(len(e.samples) for e in chunks[-1]) + len(episode.samples) > batch_size:
            chunks.append([])
        chunks[-1].append(episode)
    for chunk in chunks:
        batch = {k: v.to(device) for k, v in collate_packed(chunk, pad_id).items()}
        out = forward(model, batch, hidden=value_head is not None)
        lp = action_logprobs(out)
        v = values_of(value_head, out) if value_head is not None else None
        for row, episode in enumerate(chunk):
            ends = [*(start - 1 for start in episode.starts[1:]), len(episode.ids) - 1]
            for sample, p, end in zip(episode.samples, episode.starts, ends, strict=True):
                n = len(sample.action_ids)
                logprobs.append(lp[row, p - 1 : p - 1 + n].tolist())
                values.append(v[row, p - 1 : p - 1 + n].tolist() if v is not None else [])
                finals.append(float(v[row, end]) if v is not None else 0.0)
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
