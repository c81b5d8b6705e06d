"""Credit assignment for online RL, as plain functions over one round's episodes (no model inside, so
each is checked against hand-computed values).

PPO's GAE runs over the action tokens of an episode in order: observation tokens between two turns are
not actions, so the last token of turn t bootstraps from the value at the first action token of turn
t+1. An episode that terminated bootstraps nothing after its last token; one that was truncated
bootstraps from the value of the state it was cut in.

Group baselines (GRPO/RLOO) compare episodes that started from the same state: ``turn`` credit gives
each turn its own return-to-go against the other group members' return-to-go at the same turn;
``episode`` credit gives every action token the episode's return against the group's (what the
mainstream libraries do).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TurnTokens:
    """One turn's action tokens: the value before each, the reward on each (the turn's reward on the
    last token, any per-token penalty everywhere) and the discount on the value of the next token."""

    values: Sequence[float]
    rewards: Sequence[float]
    discounts: Sequence[float]


def gae(
    turns: Sequence[TurnTokens], final_value: float, lam: float = 0.95
) -> tuple[list[list[float]], list[list[float]]]:
    """Generalized advantage estimation over an episode's action tokens: (advantages, returns), one
    list per turn. ``final_value``: V of the state after the last turn (0 when the episode terminated).

        delta_j = r_j + d_j * V_{j+1} - V_j,   A_j = delta_j + d_j * lam * A_{j+1},   R_j = A_j + V_j
    """
    values = [v for turn in turns for v in turn.values]
    rewards = [r for turn in turns for r in turn.rewards]
    discounts = [d for turn in turns for d in turn.discounts]
    if not len(values) == len(rewards) == len(discounts):
        raise ValueError("values, rewards and discounts must cover the same tokens")
    advantages = [0.0] * len(values)
    following_value, following_advantage = final_value, 0.0
    for j in reversed(range(len(values))):
        delta = rewards[j] + discounts[j] * following_value - values[j]
        following_advantage = delta + discounts[j] * lam * following_advantage
        advantages[j] = following_advantage
        following_value = values[j]
    returns = [a + v for a, v in zip(advantages, values, strict=True)]
    return _split(advantages, turns), _split(returns, turns)


def returns_to_go(rewards: Sequence[float], gamma: float) -> list[float]:
    """G_t = r_t + gamma * G_{t+1} for each turn of one episode."""
    out = [0.0] * len(rewards)
    following = 0.0
    for t in reversed(range(len(rewards))):
        following = out[t] = rewards[t] + gamma * following
    return out


def group_advantages(
    group: Sequence[Sequence[float]], gamma: float = 1.0, credit: str = "turn", scale: bool = False
) -> list[list[float]]:
    """Per-turn advantages of a group of episodes from one start, given each episode's turn rewards.

    ``turn``: A_it = G_it - mean_{j != i} G_jt over the other episodes that reached turn t (0 where
    none did). ``episode``: every turn of episode i gets R_i - mean_{j != i} R_j (R: the discounted
    return). Leave-one-out baselines (RLOO); ``scale`` divides by the group's standard deviation of
    returns (GRPO)."""
    if credit not in ("turn", "episode"):
        raise ValueError(f"credit must be turn or episode, not {credit!r}")
    togo = [returns_to_go(rewards, gamma) for rewards in group]
    totals = [g[0] if g else 0.0 for g in togo]
    out: list[list[float]] = []
    for i, own in enumerate(togo):
        others = [j for j in range(len(group)) if j != i]
        if credit == "episode":
            baseline = sum(totals[j] for j in others) / len(others) if others else totals[i]
            out.append([totals[i] - baseline] * len(own))
            continue
        row = []
        for t, g in enumerate(own):
            peers = [togo[j][t] for j in others if len(togo[j]) > t]
            row.append(g - sum(peers) / len(peers) if peers else 0.0)
        out.append(row)
    if scale and len(totals) > 1:
        mean = sum(totals) / len(totals)
        std = math.sqrt(sum((x - mean) ** 2 for x in totals) / (len(totals) - 1))
        out = [[a / (std + 1e-6) for a in row] for row in out]
    return out


def whiten(values: Sequence[float]) -> list[float]:
    """Zero mean, unit variance (PPO whitens its advantages over the round)."""
    if len(values) < 2:
        return [0.0] * len(values)
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / (std + 1e-8) for v in values]


class KLController:
    """The KL coefficient: fixed, or adaptive (Ziegler et al. 2019) when ``target`` is given: after each
    round, coef *= 1 + clip(kl / target - 1, -0.2, 0.2) * steps / horizon."""

    def __init__(self, coef: float, target: float | None = None, horizon: float = 10_000) -> None:
        self.coef, self.target, self.horizon = coef, target, horizon

    def update(self, kl: float, steps: int) -> float:
        if self.target:
            error = min(max(kl / self.target - 1.0, -0.2), 0.2)
            self.coef *= 1.0 + error * steps / self.horizon
        return self.coef


def _split(flat: list[float], turns: Sequence[TurnTokens]) -> list[list[float]]:
    out, start = [], 0
    for turn in turns:
        out.append(flat[start : start + len(turn.values)])
        start += len(turn.values)
    return out
