"""Monte Carlo returns (the paper's "MC Returns"): the policy is BC; a token-level Q head on the same
network regresses the discounted return-to-go observed after each action token, with an optional CQL
term; decoding samples from ``BC logits + beta * Q`` (``lmrl.finetune.guidance``).

    L_Q   = mean_j (Q(s_j, a_j) - G_j)^2
    L_CQL = mean_j (logsumexp_a Q(s_j, a) - Q(s_j, a_j))
    L     = L_BC + value_weight * (L_Q + cql_weight * L_CQL)

(``value_weight`` 1 is the paper's sum; below 1 the Q loss shapes the shared network less, which
matters when the returns are large and noisy and the BC term is the policy.)

G_j sums the rewards observed after token j. An episode cut by a step limit (truncated) saw only
part of its return, so with ``truncation="bootstrap"`` (``--truncation bootstrap``) G_j adds
``tail_j * V(s_end)``: the discount from token j to the end times the behaviour value of the state
the episode was cut in, ``V(s) = sum_a pi_BC(a | s) Q(s, a)`` over the first token of the next action
(Q and the BC policy are the model's own, detached). Without it, a cell visited late in a cut
episode looks good only because few steps were left (Pardo et al. 2018, "Time Limits in RL").
After a terminated end the tail is 0: nothing follows.
"""

from __future__ import annotations

from typing import Any

import torch

from lmrl.finetune.common import (
    Forward,
    bc_loss,
    cql_penalty,
    forward,
    last_outputs,
    masked_mean,
    shifted,
    taken,
)
from lmrl.finetune.heads import ValueHeads

NAME = "mc"
EXTRACTION = "q"


def make_heads(model: Any, settings: dict[str, Any]) -> ValueHeads:
    return ValueHeads.for_model(model, settings.get("heads"))


def end_values(model: Any, heads: ValueHeads, out: Forward, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The behaviour value of each row's episode end state, ``sum_a pi_BC(a | s) Q(s, a)`` [B]."""
    with torch.no_grad():
        if "end_state" in batch:  # packed episodes: the end state is the row's last token
            assert out.hidden is not None
            rows = torch.arange(out.logits.shape[0], device=out.logits.device)
            hidden, logits = out.hidden[rows, batch["end_state"]], out.logits[rows, batch["end_state"]]
        else:
            hidden, logits = last_outputs(model, batch["end_ids"], batch["end_mask"], batch["end_last"])
        q = heads(hidden)["q1"]
        return (torch.softmax(logits.float(), dim=-1) * q).sum(-1)


def loss(model: Any, heads: ValueHeads, batch: dict[str, torch.Tensor], settings: dict[str, Any]):
    out = forward(model, batch, hidden=True)
    q = heads(out.hidden)["q1"]
    q_taken = taken(q, out.targets)
    returns = shifted(batch, "returns")
    metrics = {}
    if settings.get("truncation", "observed") == "bootstrap":
        tails = shifted(batch, "tails")
        v_end = end_values(model, heads, out, batch)
        returns = returns + tails * v_end[:, None]
        # over the action tokens whose return it enters (the same whether turns or episodes are rows)
        metrics["v_end"] = float(masked_mean(v_end[:, None].expand_as(tails), (tails != 0).float()))
    value = q_loss = masked_mean((q_taken - returns) ** 2, out.mask)
    bc = bc_loss(out)
    metrics = {"bc": float(bc.detach()), "q": float(q_loss.detach()), **metrics}
    if settings.get("cql_weight", 0.0):
        cql = cql_penalty(q, out.targets, out.mask)
        value = value + settings["cql_weight"] * cql
        metrics["cql"] = float(cql.detach())
    return bc + settings.get("value_weight", 1.0) * value, metrics
