"""Behaviour cloning: maximise the likelihood of the dataset's actions (cross-entropy on action tokens
only; prompts are context, never targets).

    L_BC = - mean over action tokens of log pi(a_j | s_j)
"""

from __future__ import annotations

from typing import Any

import torch

from lmrl.finetune.common import bc_loss, forward

NAME = "bc"
EXTRACTION = None  # plain decoding from the trained policy


def make_heads(model: Any, settings: dict[str, Any]) -> None:
    return None


def loss(model: Any, heads: Any, batch: dict[str, torch.Tensor], settings: dict[str, Any]):
    value = bc_loss(forward(model, batch))
    return value, {"bc": float(value.detach())}
