"""Maze (LMRL-Gym §4.1): walk the 10x13 "double T" maze to the goal at (8, 6).

Two variants share one environment: ``maze-fo`` (fully observed: goal, position and nearby walls) and
``maze-po`` (partially observed: nearby walls only, so the agent must infer where it is from history).

Rules, as in the original ``MazeEnv`` with ``standard_reward``:

* actions are exactly ``move up|down|left|right``; up = row - 1, down = row + 1, left = col - 1,
  right = col + 1; bumping into a wall leaves the agent in place;
* reward 0 for the move that lands on the goal (episode ends, success), -1 for any other valid move,
  -4 for an invalid action (it counts as a step and the observation is repeated);
* step cap: the original env counts every non-goal step and, on the call *after* 100 counted steps,
  returns "Failure" with -1 and done whatever the action. We replicate that exactly, so a policy that
  never reaches the goal gets 100 * -1 + -1 = -101 (the paper's min anchor) and always-invalid output gets
  100 * -4 + -1 = -401 (the ``reward_range`` floor). ``max_steps`` is therefore 101 agent actions.
"""

from __future__ import annotations

import random
import re
from collections import deque
from typing import Any, ClassVar

from lmrl.parsing import Parsed, Span, find_phrases, read_action
from lmrl.task import Anchors, Policy, Segment, StepResult, Style, Task
from lmrl.tasks.registry import register_task

Cell = tuple[int, int]

# 1 = wall. The "double T" layout of the original ``mazes.double_t_maze``.
LAYOUT: tuple[str, ...] = (
    "1111111111111",
    "1000001000001",
    "1110111110111",
    "1110111110111",
    "1110111110111",
    "1110000000111",
    "1111110111111",
    "1111110111111",
    "1111110111111",
    "1111111111111",
)
GOAL: Cell = (8, 6)
FREE: frozenset[Cell] = frozenset(
    (r, c) for r, row in enumerate(LAYOUT) for c, ch in enumerate(row) if ch == "0"
)
# Episode ``index`` starts at START_CELLS[index % 25]: all free cells but the goal, row-major.
START_CELLS: tuple[Cell, ...] = tuple(sorted(FREE - {GOAL}))

ACTIONS: tuple[str, ...] = ("move up", "move down", "move left", "move right")
DELTAS: dict[str, Cell] = {
    "move up": (-1, 0),
    "move down": (1, 0),
    "move left": (0, -1),
    "move right": (0, 1),
}
# The original describes walls in this fixed order.
_WALL_ORDER: tuple[tuple[str, Cell], ...] = (
    ("to your right", (0, 1)),
    ("to your left", (0, -1)),
    ("above you", (-1, 0)),
    ("below you", (1, 0)),
)

# The maze is three T shapes, one dataset sub-maze each (paper C.1: each dataset trajectory stays in
# its start's sub-maze, so only starts in the goal's sub-maze can succeed, and no trajectory goes from
# a far start to the goal):
#   "left":  row 1 cols 1-5 plus the column-3 corridor rows 2-4   (8 cells)
#   "right": row 1 cols 7-11 plus the column-9 corridor rows 2-4  (8 cells)
#   "goal":  row 5 cols 3-9 plus the column-6 stem rows 6-8        (10 cells, holds the goal)
# ``SUBMAZE`` is a start cell's home. A far sub-maze's walk may also step onto the junction cell
# where its corridor meets row 5 ((5, 3) or (5, 9), both in the goal's sub-maze): the paper's data
# "forces stitching", which needs the far trajectories to share states with the successful ones.
SUBMAZE: dict[Cell, str] = {
    cell: "goal" if cell[0] >= 5 else ("left" if cell[1] <= 5 else "right") for cell in FREE
}
JUNCTIONS: dict[str, Cell] = {"left": (5, 3), "right": (5, 9)}
SUBMAZE_CELLS: dict[str, frozenset[Cell]] = {
    name: frozenset(c for c in FREE if SUBMAZE[c] == name)
    | ({JUNCTIONS[name]} if name in JUNCTIONS else set())
    for name in ("left", "right", "goal")
}


def move(cell: Cell, action: str) -> Cell:
    """Where ``action`` takes the agent from ``cell`` (a wall bump leaves it in place)."""
    dr, dc = DELTAS[action]
    target = (cell[0] + dr, cell[1] + dc)
    return target if target in FREE else cell


def _shortest_paths() -> tuple[dict[Cell, int], dict[Cell, str]]:
    """BFS from the goal: distance in moves and the first move of a shortest path, for every cell."""
    distance = {GOAL: 0}
    queue = deque([GOAL])
    while queue:
        cell = queue.popleft()
        for action in ACTIONS:
            nxt = move(cell, action)
            if nxt not in distance:
                distance[nxt] = distance[cell] + 1
                queue.append(nxt)
    best = {
        cell: next(a for a in ACTIONS if distance[move(cell, a)] == distance[cell] - 1)
        for cell in FREE - {GOAL}
    }
    return distance, best


DISTANCE, OPTIMAL_MOVE = _shortest_paths()


def describe_walls(cell: Cell) -> str:
    walls = [name for name, (dr, dc) in _WALL_ORDER if (cell[0] + dr, cell[1] + dc) not in FREE]
    if not walls:
        return "There are no walls near you."
    if len(walls) == 1:
        return f"There is a wall {walls[0]}."
    return f"There are walls {', '.join(walls)}."


def describe_full(cell: Cell) -> str:
    return (
        f"The goal is at position {GOAL[0]}, {GOAL[1]}. "
        f"Your current position is at position {cell[0]}, {cell[1]}. {describe_walls(cell)}"
    )


def space_digits(text: str) -> str:
    """The paper's raw text format writes numbers digit by digit: 11 -> "1 1"."""
    return re.sub(r"\d{2,}", lambda m: " ".join(m.group()), text)


# What names a move in free text: the action itself ("moving up" too, for "instead of moving up").
_PHRASES: dict[str, str] = {
    f"{verb} {d}": f"move {d}" for d in ("up", "down", "left", "right") for verb in ("move", "moving")
}
_MARKERS = ("action", "move", "answer")


def _find_moves(text: str) -> list[Span]:
    return find_phrases(text, _PHRASES)


def _whole_move(text: str) -> str | None:
    """A reply that is only a direction ("Up", "left.") or a move."""
    text = text.lower()
    if text in ("up", "down", "left", "right"):
        return f"move {text}"
    return _PHRASES.get(" ".join(text.split()))


# --- scripted policies ---------------------------------------------------------------------------
def random_policy(task: Maze, rng: random.Random) -> str:
    return rng.choice(ACTIONS)


def optimal_policy(task: Maze, rng: random.Random) -> str:
    return OPTIMAL_MOVE[task.position]


BEHAVIOR_SOLVER_P = 0.15


def behavior_policy(task: Maze, rng: random.Random) -> str:
    """The paper's dataset policy: 15% a sub-optimal solver, 85% random, confined to the start's sub-maze.

    The solver takes the shortest-path move unless it would leave the sub-maze; the random part picks
    uniformly among moves that stay in the sub-maze (wall bumps included; a far sub-maze includes its
    junction with row 5, ``SUBMAZE_CELLS``). Confinement means only starts in the goal's sub-maze can
    ever succeed. Under the env's 100-move cap nearly all of those do
    (overall ~0.35 = 9/25); the paper's dataset rate of 0.11 with mean length 19.7 implies its trajectories
    were cut at about 20 moves (a 20-move horizon here gives ~0.19).
    """
    cells = SUBMAZE_CELLS[SUBMAZE[task.start]]
    allowed = [a for a in ACTIONS if move(task.position, a) in cells]
    if rng.random() < BEHAVIOR_SOLVER_P:
        best = OPTIMAL_MOVE[task.position]
        if best in allowed:
            return best
    return rng.choice(allowed)


# --- the environment -----------------------------------------------------------------------------
class Maze(Task):
    """The double-T maze; subclasses choose what the agent observes."""

    version: ClassVar[str] = "2"  # 2: one parsing policy (lmrl.parsing), final-line wording
    observed: ClassVar[bool] = True
    # Worst case is 100 invalid steps (-4 each) then the forced -1 failure step; best is reaching the goal.
    reward_range: ClassVar[tuple[float, float]] = (-401.0, 0.0)
    policies: ClassVar[dict[str, Policy]] = {
        "random": random_policy,
        "optimal": optimal_policy,
        "behavior": behavior_policy,
    }
    chat_window: ClassVar[int | None] = None
    answer_example: ClassVar[str] = "Action: move up"

    CAP: ClassVar[int] = 100  # counted (non-goal) steps before the forced failure step
    max_steps = CAP + 1

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.rng = random.Random(0)
        self.start: Cell = START_CELLS[0]
        self.position: Cell = self.start
        self.steps = 0  # counted steps, as in the original env (goal-reaching step is not counted)
        self.done = False
        self._success = False

    def observe(self) -> str:
        """The current observation in chat form (plain numbers); ``render`` spaces digits for text."""
        return describe_full(self.position) if self.observed else describe_walls(self.position)

    def setup(self, index: int) -> str:
        self.start = START_CELLS[index % len(START_CELLS)]
        self.position = self.start
        self.steps = 0
        self.done = False
        self._success = False
        return self.observe()

    def step(self, action: str | None) -> StepResult:
        if self.done:
            raise RuntimeError("step() called on a finished maze episode")
        invalid = action not in DELTAS
        if self.steps >= self.CAP:
            self.done = True
            # The cap is not part of the observed state: the episode is cut (truncated), not ended.
            return StepResult("Failure", -1.0, False, invalid, self._info("failure"), truncated=True)
        if invalid:
            self.steps += 1
            return StepResult(self.observe(), -4.0, False, True, self._info(None))
        assert action is not None
        self.position = move(self.position, action)
        if self.position == GOAL:
            self.done = True
            self._success = True
            return StepResult("Success", 0.0, True, False, self._info("success"))
        self.steps += 1
        return StepResult(self.observe(), -1.0, False, False, self._info(None))

    def _info(self, outcome: str | None) -> dict[str, Any]:
        info: dict[str, Any] = {"position": list(self.position), "steps": self.steps}
        if outcome is not None:
            info["outcome"] = outcome
        return info

    def candidate_actions(self) -> list[str] | None:
        return list(ACTIONS)

    def parse(self, raw: str) -> Parsed:
        return read_action(raw, markers=_MARKERS, find=_find_moves, whole=_whole_move, max_chars=20_000)

    @property
    def success(self) -> bool:
        return self._success

    def episode_info(self) -> dict[str, Any]:
        return {"start": list(self.start), "goal": list(GOAL)}

    def options(self) -> dict[str, Any]:
        return {}

    def render(self, history: list[Segment], style: Style) -> list[dict[str, str]] | str:
        if style == "text":
            history = [
                Segment(s.kind, space_digits(s.text), s.raw) if s.kind == "observation" else s
                for s in history
            ]
        return super().render(history, style)

    def system_prompt(self) -> str:
        grid = "\n".join(LAYOUT)
        if self.observed:
            seen = (
                "After each move you are told the goal's position, your current position and which of the "
                "four neighbouring cells (right, left, above, below) are walls."
            )
        else:
            seen = (
                "Your position is hidden: after each move you are told only which of the four neighbouring "
                "cells (right, left, above, below) are walls. Use the history of your moves and these "
                "descriptions to work out where you are."
            )
        return (
            "You are navigating a maze on a grid of 10 rows (0-9) and 13 columns (0-12). "
            "Positions are written as (row, column); row 0 is the top and rows increase downward, column 0 "
            'is the left edge and columns increase to the right. So "move up" decreases the row, '
            '"move down" increases the row, "move left" decreases the column and "move right" '
            "increases the column.\n"
            f"The maze (1 = wall, 0 = open):\n{grid}\n"
            f"The goal is at position {GOAL[0]}, {GOAL[1]}. {seen}\n"
            "Moving into a wall leaves you where you are. Each move that does not reach the goal costs -1; "
            "the move that reaches the goal costs 0 and ends the episode; an answer that is not one of the "
            "four actions costs -4 and still uses up a move. The episode fails after 100 moves.\n"
            "Reply with exactly one action: move up, move down, move left or move right. "
            + self.final_line_instruction()
        )


@register_task
class MazeFO(Maze):
    name: ClassVar[str] = "maze-fo"
    description: ClassVar[str] = (
        "Double-T maze, fully observed: reach the goal seeing your position and nearby walls."
    )
    observed: ClassVar[bool] = True
    anchors: ClassVar[Anchors] = Anchors(
        min=-101.0,
        avg=-83.0,
        max=-6.84,
        source="paper Table 5; max = optimal policy averaged over the 25 start cells",
    )
    text_window: ClassVar[int | None] = 1  # the latest observation is the Markov state


@register_task
class MazePO(Maze):
    name: ClassVar[str] = "maze-po"
    description: ClassVar[str] = "Double-T maze, partially observed: reach the goal seeing only nearby walls."
    observed: ClassVar[bool] = False
    anchors: ClassVar[Anchors] = Anchors(
        min=-101.0,
        avg=-83.0,
        max=-25.75,
        source="paper Table 5; the origin of max (-25.75) is not explained in the paper",
    )
    text_window: ClassVar[int | None] = 40  # the original env keeps the last 40 segments
