"""``bench/learning_diagnostics.py`` as a command: a checkpoint without value heads gets its greedy
accuracy, one with heads the value table; bad input is one line."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import learning_diagnostics  # noqa: E402


def _main(monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["learning_diagnostics.py", *args])
    learning_diagnostics.main()


def test_a_bc_checkpoint_gets_its_greedy_accuracy(maze_policy, monkeypatch, capsys) -> None:
    _main(monkeypatch, str(maze_policy), "maze-fo")
    printed = capsys.readouterr().out
    share = float(re.search(r"right in ([0-9.]+)% of the decision states", printed).group(1)) / 100
    # the same figure the learning bench records as "move accuracy"
    assert share == pytest.approx(learning_diagnostics.move_accuracy(maze_policy, "maze-fo", None), abs=1e-3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{policy}", "chess"], "chess has no decision states"),
        (["/nonexistent", "maze-fo"], "not a checkpoint"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message, maze_policy, monkeypatch, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        _main(monkeypatch, *(a.format(policy=maze_policy) for a in args))
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in err
