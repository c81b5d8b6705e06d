"""Engine players' strength, and the task options that set it: the opponent's strength and search
limit, the size and patience of the engine pool.

**Opponent strength (why our setting differs from the paper's).** The original passed ``UCI_Elo=1200``
to Stockfish 15.1 but never set ``UCI_LimitStrength``, and Stockfish ignores ``UCI_Elo`` without it
(it also rejects values below its floor of 1350), so the paper's "Elo 1200" opponent was full-strength
Stockfish at 100 ms per move. We set strength explicitly and record it in the run manifest:

* ``opponent_elo`` (default **1350**, Stockfish 15.1's ``UCI_Elo`` floor: its weakest calibrated setting
  and the nearest to the nominal 1200) sends ``UCI_LimitStrength=true`` and ``UCI_Elo``. Stockfish turns
  ``UCI_Elo`` into a fractional Skill Level, ``level = ((elo - 1346.6) / 143.4) ** (1 / 0.806)``, so
  ``Skill Level 0`` is itself about Elo 1347: no Skill Level is weaker than ``UCI_Elo 1350``. For Elo
  below 1350 we therefore play ``UCI_Elo 1350`` and replace each engine move, with probability
  ``p = (1350 - elo) / 1100``, by a uniformly random legal move (800 -> p = 0.5, 250 -> p = 1, a random
  mover). This mapping is monotone but not calibrated: Elo labels below 1350 are nominal.
  ``opponent_elo="max"`` is full strength (also the value for ``scripted/optimal``).
* ``opponent_skill`` (0..20) sets Stockfish's ``Skill Level`` instead (exclusive with ``opponent_elo``).
* ``opponent_time`` (default **0.1** s, the paper's 100 ms) and ``opponent_depth`` limit each search
  (both given: whichever comes first). With strength limiting on, Stockfish 15.1 picks its move when
  iterative deepening reaches depth ``1 + int(level)`` (depth 1 at Elo 1350, 3 at Elo 1600) and later
  iterations do not change it, so e.g. ``opponent_depth=5`` plays nearly the same opponent (only the
  hash contents differ) many times faster and independently of machine load.
* The engine's strength limiter draws from a clock-seeded generator, so games against a limited
  opponent are not reproducible move for move; our own random choices come from the episode seed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from lmrl.options import int_option
from lmrl.task import InvalidTaskOption

ELO_FLOOR, ELO_CEILING = 1350, 2850  # Stockfish 15.1's UCI_Elo range
RANDOM_MOVER_ELO = 250  # the nominal Elo of a purely random mover in our below-floor mapping
DEFAULT_ELO = ELO_FLOOR
DEFAULT_TIME = 0.1  # seconds per engine move, as in the paper
DEFAULT_ENGINE_TIMEOUT = 30.0  # seconds an engine may take beyond the search limit before it counts as hung


@dataclass(frozen=True, slots=True)
class Strength:
    """How an engine player plays: an Elo (limited strength), a Skill Level, or neither (full strength)."""

    elo: int | None = None
    skill: int | None = None

    @property
    def uci_options(self) -> dict[str, Any]:
        if self.elo is not None:
            return {"UCI_LimitStrength": True, "UCI_Elo": max(self.elo, ELO_FLOOR)}
        if self.skill is not None:
            return {"Skill Level": self.skill}
        return {}

    @property
    def random_move_p(self) -> float:
        """The chance of a uniformly random legal move instead of the engine's (Elo below the floor)."""
        if self.elo is None or self.elo >= ELO_FLOOR:
            return 0.0
        return (ELO_FLOOR - self.elo) / (ELO_FLOOR - RANDOM_MOVER_ELO)

    def describe(self) -> dict[str, Any]:
        return {
            "elo": self.elo,
            "skill": self.skill,
            "uci_options": self.uci_options,
            "random_move_p": round(self.random_move_p, 6),
        }


FULL_STRENGTH = Strength()


def _seconds_option(name: str, value: Any, low: float = 0.0) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InvalidTaskOption(f"{name} must be a number of seconds, not {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= low:
        raise InvalidTaskOption(f"{name} must be a number of seconds above {low:g}, not {value!r}")
    return seconds


def opponent_strength(elo: Any = None, skill: Any = None) -> Strength:
    """Validate ``opponent_elo`` / ``opponent_skill`` (default: Elo 1350)."""
    if elo is not None and skill is not None:
        raise InvalidTaskOption("give opponent_elo or opponent_skill, not both")
    if skill is not None:
        return Strength(skill=int_option("opponent_skill", skill, 0, 20))
    if elo is None:
        return Strength(elo=DEFAULT_ELO)
    if isinstance(elo, str) and elo.strip().lower() in ("max", "full"):
        return FULL_STRENGTH
    try:
        return Strength(elo=int_option("opponent_elo", elo, RANDOM_MOVER_ELO, ELO_CEILING))
    except InvalidTaskOption:
        raise InvalidTaskOption(
            f"opponent_elo must be an integer from {RANDOM_MOVER_ELO} to {ELO_CEILING} or 'max', not {elo!r}"
        ) from None


def search_limit(time: Any = None, depth: Any = None) -> tuple[float | None, int | None]:
    """Validate ``opponent_time`` / ``opponent_depth`` (default: 0.1 s, no depth limit)."""
    depth_value = None if depth is None else int_option("opponent_depth", depth, 1, 100)
    if time is None:
        return (DEFAULT_TIME if depth_value is None else None), depth_value
    return _seconds_option("opponent_time", time), depth_value


def pool_options(options: dict[str, Any]) -> tuple[int, float]:
    """Validate ``engines`` (pool size) and ``engine_timeout`` from raw task options."""
    engines = options.get("engines")
    size = min(8, os.cpu_count() or 1) if engines is None else int_option("engines", engines, 1, 256)
    timeout = options.get("engine_timeout")
    seconds = DEFAULT_ENGINE_TIMEOUT if timeout is None else _seconds_option("engine_timeout", timeout)
    return size, seconds
