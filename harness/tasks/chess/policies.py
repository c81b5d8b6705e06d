"""Chess's scripted policies: ``random``, ``optimal`` (Stockfish at full strength as the agent) and
``behavior`` (the paper's dataset generator: Stockfish at an Elo drawn uniformly from [800, 1600] per
game). Engine policies ask the task's engine pool, under the same search limit as the opponent.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from lmrl.tasks.chess.strength import FULL_STRENGTH, Strength

if TYPE_CHECKING:
    from lmrl.tasks.chess.env import Chess

BEHAVIOR_ELO = (800, 1600)  # the paper's dataset: White's Elo drawn uniformly per game


def random_policy(task: Chess, rng: random.Random) -> str:
    return task.board.san(rng.choice(list(task.board.legal_moves)))


async def engine_san(task: Chess, strength: Strength, rng: random.Random) -> str:
    """The move an engine of ``strength`` plays for the agent, in SAN."""
    move = await task.engine_move(strength, rng, role="agent")
    return task.board.san(move)


def optimal_policy(task: Chess, rng: random.Random) -> Awaitable[str]:
    return engine_san(task, FULL_STRENGTH, rng)


def behavior_policy(task: Chess, rng: random.Random) -> Awaitable[str]:
    """The paper's dataset policy: Stockfish at an Elo drawn uniformly from [800, 1600] per game."""
    if "behavior_elo" not in task.policy_state:
        task.policy_state["behavior_elo"] = rng.randint(*BEHAVIOR_ELO)
    return engine_san(task, Strength(elo=task.policy_state["behavior_elo"]), rng)
