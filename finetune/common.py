"""What every algorithm computes from a batch: the LM's outputs at the action tokens.

Token ``j`` of the sequence is predicted at position ``j - 1``, so everything about an action token
(its log-probability, Q(s, a), V(s)) is read from the hidden state one position before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass
class Forward:
    logits: torch.Tensor  # [B, T-1, vocab]: the prediction of token j+1 at position j
    hidden: torch.Tensor | None  # [B, T-1, H]: the state before token j+1 (when asked for)
    targets: torch.Tensor  # [B, T-1]: token j+1
    mask: torch.Tensor  # [B, T-1]: 1.0 where token j+1 is an action token


def forward(model: Any, batch: dict[str, torch.Tensor], hidden: bool = False) -> Forward:
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        output_hidden_states=hidden,
        use_cache=False,
    )
    return Forward(
        logits=out.logits[:, :-1],
        hidden=out.hidden_states[-1][:, :-1] if hidden else None,
        targets=batch["input_ids"][:, 1:],
        mask=batch["action_mask"][:, 1:],
    )


def last_outputs(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, last: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The final hidden state [B, H] and next-token logits [B, vocab] of each row of a right-padded
    batch (``last``: its last real index)."""
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
    rows = torch.arange(ids.shape[0], device=ids.device)
    return out.hidden_states[-1][rows, last], out.logits[rows, last]


def last_state(model: Any, ids: torch.Tensor, mask: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """The final hidden state of each row of a right-padded batch (``last``: its last real index)."""
    return last_outputs(model, ids, mask, last)[0]


def shifted(batch: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """A per-token batch field aligned with ``Forward`` (the value of token j+1 at position j)."""
    return batch[name][:, 1:]


def bc_loss(out: Forward) -> torch.Tensor:
    """Behaviour cloning: cross-entropy of the action tokens, averaged over action tokens."""
    per_token = F.cross_entropy(out.logits.transpose(1, 2), out.targets, reduction="none")
    return (per_token * out.mask).sum() / out.mask.sum().clamp(min=1.0)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def taken(q: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Q(s, a) of the token actually taken: q [B, T, vocab], targets [B, T] -> [B, T]."""
    return q.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def cql_penalty(q: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Conservative Q-learning term: logsumexp over the vocabulary minus Q of the taken token."""
    return masked_mean(torch.logsumexp(q, dim=-1) - taken(q, targets), mask)
