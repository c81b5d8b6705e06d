"""Monte Carlo returns (the paper's "MC Returns"): the policy is BC; a token-level Q head on the same
network regresses the discounted return-to-go observed after each action token, with an optional CQL
term; decoding samples from ``BC logits + beta * Q`` (``lmrl.finetune.guidance``).

    L = L_BC + mean_j (Q(s_j, a_j) - G_j)^2 + cql_weight * mean_j (logsumexp_a Q(s_j, a) - Q(s_j, a_j))
"""

from __future__ import annotations

from typing import Any

import torch

from lmrl.finetune.common import bc_loss, cql_penalty, forward, masked_mean, shifted, taken
from lmrl.finetune.heads import ValueHeads

NAME = "mc"
EXTRACTION = "q"


def make_heads(model: Any, settings: dict[str, Any]) -> ValueHeads:
    return ValueHeads.for_model(model, settings.get("heads"))


def loss(model: Any, heads: ValueHeads, batch: dict[str, torch.Tensor], settings: dict[str, Any]):
    out = forward(model, batch, hidden=True)
    q = heads(out.hidden)["q1"]
    q_taken = taken(q, out.targets)
    returns = shifted(batch, "returns")
    q_loss = masked_mean((q_taken - returns) ** 2, out.mask)
    bc = bc_loss(out)
    total = bc + q_loss
    metrics = {"bc": float(bc.detach()), "q": float(q_loss.detach())}
    if settings.get("cql_weight", 0.0):
        cql = cql_penalty(q, out.targets, out.mask)
        total = total + settings["cql_weight"] * cql
        metrics["cql"] = float(cql.detach())
    return total, metrics
