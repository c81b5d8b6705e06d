"""A user's own task, from outside the package: the README's example file through the CLI, a broken
one (one-line errors), and an installed plugin through the ``lmrl.tasks`` entry-point group."""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

import pytest

from lmrl.cli import main
from lmrl.tasks import registry

ROOT = Path(__file__).resolve().parent.parent


def readme_task() -> str:
    """The custom task shown in the README (the block after its marker comment)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- custom-task -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert found, "README lost its custom task example"
    return found.group(1)


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    """Tasks registered by a test leave with it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_SOURCES", dict(registry._SOURCES))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)


def test_the_readme_task_runs_through_the_cli(tmp_path, capsys) -> None:
    path = tmp_path / "guess_number.py"
    path.write_text(readme_task())
    assert len(readme_task().splitlines()) <= 45  # short enough to read at a glance
    assert main(["check-task", str(path)]) == 0
    assert "7/7 checks passed" in capsys.readouterr().out
    out = tmp_path / "run"
    args = [
        "run",
        "--task",
        f"{path}:GuessNumber",
        "--model",
        "scripted/optimal",
        "--model",
        "scripted/random",
    ]
    assert main([*args, "--episodes", "40", "--out", str(out), "--no-progress"]) == 0
    records = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    optimal = [r for r in records if r["models"]["agent"] == "scripted/optimal"]
    assert len(records) == 80 and all(r["task"] == "guess-number" for r in records)
    assert all(r["success"] and r["length"] <= 4 for r in optimal)  # bisection needs at most 4 guesses
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tasks"]["guess-number"]["source"] == str(path.resolve())
    # Rerunning the same command continues the run (the file is loaded again in a new invocation).
    assert main([*args, "--episodes", "40", "--out", str(out), "--no-progress"]) == 0


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("    max_steps = 10\n", "lacks max_steps"),
        ('    name = "guess-number"\n', "lacks name"),
        ("    def step(self, action):\n", "lacks step"),
    ],
)
def test_an_incomplete_task_is_one_line_naming_what_is_missing(remove, message, tmp_path, capsys) -> None:
    source = readme_task()
    assert remove in source
    if "def step" in remove:  # drop the whole method
        source = re.sub(r"    def step\(self, action\):\n(?:        .*\n|\n)*?(?=    (?:def|@))", "", source)
    else:
        source = source.replace(remove, "")
    path = tmp_path / "broken_task.py"
    path.write_text(source)
    for argv in (["check-task", str(path)], ["run", "--task", str(path), "--model", "scripted/random"]):
        assert main([*argv, "--out", str(tmp_path / "run")] if argv[0] == "run" else argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_task_file_that_does_not_import_is_one_line(tmp_path, capsys) -> None:
    path = tmp_path / "oops.py"
    path.write_text("import no_such_module_anywhere\n")
    assert (
        main(["run", "--task", f"{path}:X", "--model", "scripted/random", "--out", str(tmp_path / "r")]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert "importing" in err and "ModuleNotFoundError" in err and "\n" not in err


def test_an_installed_plugin_is_found_through_its_entry_point(tmp_path, monkeypatch, capsys) -> None:
    package = tmp_path / "plugin_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(readme_task().replace('"guess-number"', '"plugin-guess"'))
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint("guess", "plugin_pkg:GuessNumber", registry.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda **kw: [entry] if kw.get("group") == registry.ENTRY_POINT_GROUP else real(**kw),
    )
    assert "plugin-guess" in registry.task_names()
    assert main(["tasks"]) == 0 and "plugin-guess" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["run", "--task", "plugin-guess", "--model", "scripted/optimal", "--episodes", "3",
                 "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tasks"]["plugin-guess"]["source"] == "entry point guess = plugin_pkg:GuessNumber"
