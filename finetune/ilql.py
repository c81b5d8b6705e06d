"""Implicit Language Q-Learning (Snell et al. 2022; the paper's ILQL), token-level, on one network:
the LM is trained by BC, and heads on its last hidden states learn two Q functions (with Polyak-averaged
target copies) and V. For each action token j with state s_j and next state s_{j+1} (the next token of
the same action, or after the action's last token the next turn's prompt):

    target_j = r_j + discount_j * bootstrap * V(s_{j+1})          (V detached; bootstrap = 0 after a
                                                                    terminated end, 1 after truncation)
    L_Q   = mean_j (Q1(s_j, a_j) - target_j)^2 + (Q2(s_j, a_j) - target_j)^2
    L_V   = mean_j |tau - 1(Qt(s_j, a_j) < V(s_j))| * (Qt(s_j, a_j) - V(s_j))^2,  Qt = min(Q1', Q2')
    L_CQL = mean_j sum_i (logsumexp_a Q_i(s_j, a) - Q_i(s_j, a_j))
    L     = L_BC + value_weight * (L_Q + L_V + cql_weight * L_CQL)   (value_weight 1: the paper's sum)
    after each step Q' <- alpha Q + (1 - alpha) Q'

Decoding samples from ``BC logits + beta * (min(Q1, Q2) - V)`` (``lmrl.finetune.guidance``).

``backup="action"`` (``--backup action``) backs values up once per turn instead of once per token:
every token of turn t regresses on the turn's target ``r_t + discount_t * V(s_{t+1})``, with
V(s_{t+1}) read where the next action starts, and V learns only at the state before each action's
first token, from the target Q of the action's last token (the whole action taken). A value then
crosses a turn in one hop instead of one hop (and one Polyak-averaged copy) per token. Q of an
action's last token is Q(s, a) of the whole action, so decoding guides with ``beta * min(Q1, Q2)``
(extraction "q": the re-ranker scores a candidate by Q after its last token, as MC returns').
"""

from __future__ import annotations

from typing import Any

import torch

from lmrl.finetune.common import bc_loss, cql_penalty, forward, last_state, masked_mean, shifted, taken
from lmrl.finetune.heads import ValueHeads

NAME = "ilql"
EXTRACTION = "advantage"


def extraction(settings: dict[str, Any]) -> str:
    """What decoding adds to the logits for a model trained with ``settings`` (see the module doc)."""
    return "q" if settings.get("backup", "token") == "action" else EXTRACTION


def make_heads(model: Any, settings: dict[str, Any]) -> ValueHeads:
    return ValueHeads.for_model(model, settings.get("heads"), double_q=True, value=True, targets=True)


def next_values(v: torch.Tensor, v_final: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """V(s_{j+1}) for every position j: the next position's V inside an action, and the next turn's
    V (times ``bootstrap``) after the action's last token."""
    following = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], dim=1)
    rows = torch.arange(v.shape[0], device=v.device)
    last = batch["last_action"] - 1  # in shifted positions
    following = following.clone()
    following[rows, last] = v_final * batch["bootstrap"]
    return following


def action_bounds(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For an action mask [B, T] (actions are runs of 1s): where each action starts (1.0 at its
    first token), and for every position the index of the last token of the action it lies in (of
    the next action, outside one)."""
    before = torch.cat([torch.zeros_like(mask[:, :1]), mask[:, :-1]], dim=1)
    after = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
    first = mask * (1 - before)
    ends = (mask * (1 - after)).bool()
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    marked = torch.where(ends, positions, torch.full_like(positions, mask.shape[1] - 1))
    last = marked.flip(1).cummin(1).values.flip(1)  # the nearest action end at or after each position
    return first, last


def loss(model: Any, heads: ValueHeads, batch: dict[str, torch.Tensor], settings: dict[str, Any]):
    out = forward(model, batch, hidden=True)
    h = heads(out.hidden)
    q1, q2 = taken(h["q1"], out.targets), taken(h["q2"], out.targets)
    q_target = torch.minimum(taken(h["target_q1"], out.targets), taken(h["target_q2"], out.targets))
    v = h["v"].squeeze(-1)
    if "next_state" in batch:  # packed episodes: every next state lies in the same row
        following = v.detach().gather(1, shifted(batch, "next_state"))  # bootstrap is in the discounts
    else:
        with torch.no_grad():
            final = last_state(model, batch["next_ids"], batch["next_mask"], batch["next_last"])
            v_final = heads(final)["v"].squeeze(-1)
        following = next_values(v.detach(), v_final, batch)
    target = shifted(batch, "rewards") + shifted(batch, "discounts") * following
    v_mask = out.mask
    if settings.get("backup", "token") == "action":
        first, last = action_bounds(out.mask)
        target = target.gather(1, last)  # the turn's target, on every token of the action
        q_target = q_target.gather(1, last)  # Qt of the whole action, read where V learns
        v_mask = out.mask * first
    q_loss = masked_mean((q1 - target) ** 2 + (q2 - target) ** 2, out.mask)
    diff = q_target.detach() - v
    tau = settings.get("tau", 0.7)
    v_loss = masked_mean((tau - (diff < 0).float()).abs() * diff**2, v_mask)
    bc = bc_loss(out)
    value = q_loss + v_loss
    metrics = {"bc": float(bc.detach()), "q": float(q_loss.detach()), "v": float(v_loss.detach())}
    if settings.get("cql_weight", 0.0):
        cql = cql_penalty(h["q1"], out.targets, out.mask) + cql_penalty(h["q2"], out.targets, out.mask)
        value = value + settings["cql_weight"] * cql
        metrics["cql"] = float(cql.detach())
    return bc + settings.get("value_weight", 1.0) * value, metrics


def after_step(heads: ValueHeads, settings: dict[str, Any]) -> None:
    heads.polyak_update(settings.get("polyak", 0.005))
