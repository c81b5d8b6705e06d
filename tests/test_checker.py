"""`lmrl check-task`: every built-in task passes; broken tasks fail the check that should catch them."""

from __future__ import annotations

import random

import pytest

from lmrl.checker import check_task
from lmrl.cli import main
from lmrl.tasks import registry, task_names
from lmrl.tasks.maze import MazeFO

FAST = {"chess": {"opponent_depth": 1}, "endgames": {"opponent_depth": 1}}


@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


@pytest.mark.parametrize("task", task_names())
def test_every_built_in_task_passes(task: str) -> None:
    checks = check_task(task, episodes=1, options=FAST.get(task))
    assert [c.name for c in checks] == [
        "class", "anchors", "answer format", "reset", "invalid action", "episodes", "renderings"
    ]  # fmt: skip
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    assert not failed, failed


class LeakyMaze(MazeFO):
    """Draws its start from the global random module: not a function of (seed, index)."""

    name = "test-leaky-maze"

    def setup(self, index: int) -> str:
        return super().setup(random.randrange(25))


class GenerousMaze(MazeFO):
    """Pays more than its reward range says."""

    name = "test-generous-maze"

    def step(self, action):
        result = super().step(action)
        result.reward += 10
        return result


@pytest.mark.parametrize(("cls", "failing"), [(LeakyMaze, "reset"), (GenerousMaze, "episodes")])
def test_a_broken_task_fails_the_right_check(cls, failing, clean_registry, capsys) -> None:
    registry.register_task(cls)
    failed = {c.name for c in check_task(cls.name, episodes=1) if not c.ok}
    assert failing in failed
    assert main(["check-task", cls.name, "--episodes", "1"]) == 1
    assert f"FAIL  {failing}" in capsys.readouterr().out


def test_an_unknown_task_is_one_line_exit_2(capsys) -> None:
    assert main(["check-task", "no-such-task"]) == 2
    assert "unknown task" in capsys.readouterr().err
