"""Maze task: layout, rules, caps, parsing, observations, rendering and the scripted policies."""

from __future__ import annotations

import random

import pytest
from policy_play import play

from lmrl.task import Segment
from lmrl.tasks import make_task, task_class
from lmrl.tasks.maze import (
    DISTANCE,
    FREE,
    GOAL,
    OPTIMAL_MOVE,
    START_CELLS,
    SUBMAZE,
    SUBMAZE_CELLS,
    Maze,
    MazeFO,
    MazePO,
)


def test_layout_and_start_order() -> None:
    assert len(FREE) == 26 and GOAL in FREE
    assert len(START_CELLS) == 25 and GOAL not in START_CELLS
    assert list(START_CELLS) == sorted(START_CELLS)  # documented row-major order
    assert START_CELLS[0] == (1, 1) and START_CELLS[-1] == (7, 6)
    task = MazeFO()
    task.reset(0, 0)
    first = task.position
    task.reset(1, 25)
    assert task.position == first == (1, 1)
    task.reset(0, 7)
    assert task.episode_info() == {"start": list(START_CELLS[7]), "goal": [8, 6]}
    assert task.options() == {}


def test_registered() -> None:
    assert task_class("maze-fo") is MazeFO and task_class("maze-po") is MazePO
    assert isinstance(make_task("maze-po"), Maze)
    assert MazeFO.anchors.min == MazePO.anchors.min == -101
    assert (MazeFO.anchors.max, MazePO.anchors.max) == (-6.84, -25.75)
    assert MazeFO.max_steps == MazePO.max_steps == 101


@pytest.mark.parametrize("cls", [MazeFO, MazePO])
def test_optimal_policy_hits_max_anchor(cls: type[Maze]) -> None:
    task = cls()
    returns = []
    for index in range(25):
        total, n = play(task, "optimal", seed=index, index=index)
        assert task.success
        assert n == DISTANCE[START_CELLS[index]]
        returns.append(total)
    assert sum(returns) / 25 == pytest.approx(-6.84, abs=1e-9)
    assert sum(returns) / 25 == pytest.approx(MazeFO.anchors.max, abs=1e-9)


def test_optimal_table_matches_original() -> None:
    # Spot checks against the original repo's hard-coded optimal directions.
    assert OPTIMAL_MOVE[(1, 1)] == "move right"
    assert OPTIMAL_MOVE[(1, 4)] == "move left"
    assert OPTIMAL_MOVE[(1, 9)] == "move down"
    assert OPTIMAL_MOVE[(5, 3)] == "move right"
    assert OPTIMAL_MOVE[(5, 9)] == "move left"
    assert OPTIMAL_MOVE[(5, 6)] == "move down"


def test_wall_bump_costs_one_and_stays() -> None:
    task = MazeFO()
    task.reset(0, START_CELLS.index((1, 3)))
    result = task.step("move up")
    assert (result.reward, result.done, result.invalid) == (-1.0, False, False)
    assert task.position == (1, 3)
    assert result.observation == task.observe()
    result = task.step("move down")
    assert result.reward == -1.0 and task.position == (2, 3)


def test_goal_gives_zero_and_success() -> None:
    task = MazeFO()
    task.reset(0, START_CELLS.index((7, 6)))
    assert not task.success
    result = task.step("move down")
    assert (result.reward, result.done, result.invalid) == (0.0, True, False)
    assert task.success and task.position == GOAL
    with pytest.raises(RuntimeError):
        task.step("move up")


def test_invalid_action_penalty_counts_a_step_and_repeats_observation() -> None:
    task = MazePO()
    first = task.reset(0, 3)
    result = task.step(None)
    assert (result.reward, result.done, result.invalid) == (-4.0, False, True)
    assert result.observation == first and task.steps == 1
    result = task.step("move diagonally")  # a non-canonical string is invalid too
    assert result.reward == -4.0 and result.invalid and task.steps == 2


def test_step_cap_gives_minus_101() -> None:
    # Always bumping the wall above (1, 1): 100 counted moves at -1, then the forced failure step (-1).
    task = MazeFO()
    task.reset(0, 0)
    rewards = []
    for _ in range(task.max_steps):
        result = task.step("move up")
        rewards.append(result.reward)
        if result.done:
            break
    assert len(rewards) == 101 and result.done and not task.success
    assert result.observation == "Failure"
    assert sum(rewards) == -101 == MazeFO.anchors.min


def test_failure_step_ignores_action() -> None:
    # On the call after 100 counted moves, even a goal-reaching move just fails with -1.
    task = MazeFO()
    task.reset(0, START_CELLS.index((7, 6)))
    for _ in range(100):
        task.step("move right")  # wall bump
    result = task.step("move down")
    assert (result.reward, result.done) == (-1.0, True) and not task.success


def test_always_invalid_hits_reward_floor() -> None:
    task = MazePO()
    task.reset(0, 0)
    rewards = []
    for _ in range(task.max_steps):
        result = task.step(None)
        rewards.append(result.reward)
        if result.done:
            break
    assert len(rewards) == 101 and result.done
    assert rewards[:100] == [-4.0] * 100 and rewards[100] == -1.0
    assert sum(rewards) == -401 == MazePO.reward_range[0]


def test_random_policy_always_terminates_within_cap() -> None:
    task = MazePO()
    for index in range(25):
        total, n = play(task, "random", seed=index, index=index)
        assert n <= task.max_steps and -101 <= total <= 0


def test_observations_fo_and_po() -> None:
    fo, po = MazeFO(), MazePO()
    index = START_CELLS.index((1, 3))
    assert fo.reset(0, index) == (
        "The goal is at position 8, 6. Your current position is at position 1, 3. There is a wall above you."
    )
    assert po.reset(0, index) == "There is a wall above you."
    assert fo.step("move down").observation == (
        "The goal is at position 8, 6. Your current position is at position 2, 3. "
        "There are walls to your right, to your left."
    )
    assert po.step("move down").observation == "There are walls to your right, to your left."
    for cell, walls in [
        ((5, 3), "There are walls to your left, below you."),
        ((5, 6), "There is a wall above you."),
        ((5, 4), "There are walls above you, below you."),
        ((1, 1), "There are walls to your left, above you, below you."),
        ((1, 9), "There is a wall above you."),
        ((7, 6), "There are walls to your right, to your left."),
    ]:
        po.reset(0, START_CELLS.index(cell))
        assert po.observe() == walls


def test_text_render_spaces_digits_and_fo_window() -> None:
    task = MazeFO()
    first = task.reset(0, START_CELLS.index((1, 11)))
    assert "position 1, 11." in first  # chat form keeps plain numbers
    second = task.step("move left").observation
    history = [Segment("observation", first), Segment("action", "move left"), Segment("observation", second)]
    text = task.render(history, "text")
    assert text == (
        "The goal is at position 8, 6. Your current position is at position 1, 1 0. "
        "There are walls above you, below you.\n"
    )
    chat = task.render(history, "chat")
    assert isinstance(chat, list) and chat[0]["role"] == "system"
    assert [m["role"] for m in chat[1:]] == ["user", "assistant", "user"]
    assert "1, 11." in chat[1]["content"] and "1, 10." in chat[3]["content"]


def test_po_text_window_is_40_segments() -> None:
    task = MazePO()
    history = [Segment("observation", task.reset(0, 0))]
    for _ in range(30):
        history.append(Segment("action", "move up"))
        history.append(Segment("observation", task.step("move up").observation))
    text = task.render(history, "text")
    assert isinstance(text, str)
    lines = text.splitlines()
    assert len(lines) == 40
    # 61 segments end on an observation, so the last 40 start on an action (as in the original env).
    assert lines[0] == "move up" and lines[1] == "There are walls to your left, above you, below you."
    assert lines[-1] == lines[1]
    chat = task.render(history, "chat")
    assert len(chat) == 1 + len(history)  # chat keeps the full history


def test_system_prompts() -> None:
    fo, po = MazeFO().system_prompt(), MazePO().system_prompt()
    for prompt in (fo, po):
        assert "Action: move up" in prompt and "8, 6" in prompt and "increases the row" in prompt
    assert "hidden" in po and "hidden" not in fo


def behavior_success(horizon: int, episodes: int = 500) -> dict[str, list[bool]]:
    """Success per start sub-maze for the behavior policy, each episode cut after ``horizon`` actions."""
    task = MazeFO()
    wins: dict[str, list[bool]] = {"left": [], "right": [], "goal": []}
    for index in range(episodes):
        task.reset(10_000 + index, index)
        rng = random.Random(index)
        for _ in range(horizon):
            if task.step(task.parse(task.policies["behavior"](task, rng))).done:
                break
        wins[SUBMAZE[task.start]].append(task.success)
    return wins


def test_behavior_policy_only_goal_submaze_succeeds() -> None:
    # Under the env's own 100-move cap the confined random walk almost always finds the goal from the
    # goal's sub-maze (9 of the 25 starts), so the overall rate sits just under 9/25.
    wins = behavior_success(horizon=MazeFO.max_steps)
    far = wins["left"] + wins["right"]
    assert far and not any(far)  # far sub-mazes never reach the goal
    rate = sum(sum(v) for v in wins.values()) / 500
    assert 0.25 <= rate <= 9 / 25


def test_behavior_policy_short_horizon_near_dataset_rate() -> None:
    # The paper's dataset (success 0.11, mean length 19.7) implies trajectories of about 20 moves.
    wins = behavior_success(horizon=20)
    assert not any(wins["left"] + wins["right"])
    rate = sum(sum(v) for v in wins.values()) / 500
    assert 0.03 <= rate <= 0.30


def test_behavior_policy_stays_in_its_submaze_and_far_walks_meet_the_goal_submaze() -> None:
    # Stitching needs shared states: far walks step onto their junction with row 5, and goal-sub-maze
    # walks start from and pass through the same cell.
    task = MazeFO()
    junction_visits = {"left": 0, "right": 0}
    for index in range(100):
        task.reset(index, index)
        rng = random.Random(index)
        home = SUBMAZE[task.start]
        for _ in range(task.max_steps):
            result = task.step(task.parse(task.policies["behavior"](task, rng)))
            assert task.position in SUBMAZE_CELLS[home]
            if home != "goal" and SUBMAZE[task.position] == "goal":
                junction_visits[home] += 1
            if result.done:
                break
    assert junction_visits["left"] > 0 and junction_visits["right"] > 0
    assert SUBMAZE_CELLS["left"] & SUBMAZE_CELLS["goal"] == {(5, 3)}
