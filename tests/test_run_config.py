"""`lmrl run --config run.toml` (flags override the file) and what a run directory records of the
prompts each model saw (prompts.json, once per distinct text)."""

from __future__ import annotations

import json

from lmrl.cli import main
from lmrl.rundir import load_episodes

CONFIG = """
task = ["maze-fo", "wordle"]
model = "scripted/random"
episodes = 5
seed = 3
no-progress = true
max_turns = 4

[task-option.wordle]
vocab = "full"
invalid_penalty = -2
"""


def test_a_config_file_with_flags_overriding_it(tmp_path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    assert main(["run", "--config", str(config), "--episodes", "2", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["episodes"] == 2  # the flag beat the file's 5
    assert manifest["config"]["tasks"] == ["maze-fo", "wordle"] and manifest["config"]["seed"] == 3
    assert manifest["config"]["max_turns"] == 4
    assert manifest["tasks"]["wordle"]["options"]["vocab"] == "full"
    assert manifest["tasks"]["wordle"]["options"]["invalid_penalty"] == -2
    assert "--config" in manifest["command"] and "--episodes" in manifest["command"]
    assert len(load_episodes(out)) == 4
    # A repeatable flag on the command line replaces the file's list instead of adding to it.
    plain = tmp_path / "plain.toml"
    plain.write_text(
        'task = ["maze-fo", "wordle"]\nmodel = "scripted/random"\nepisodes = 1\nno_progress = true\n'
    )
    out2 = tmp_path / "run2"
    assert main(["run", "--config", str(plain), "--task", "maze-po", "--out", str(out2)]) == 0
    assert json.loads((out2 / "manifest.json").read_text())["config"]["tasks"] == ["maze-po"]


def test_a_bad_config_file_is_one_line(tmp_path, capsys) -> None:
    cases = {
        "unknown.toml": (
            'task = "maze-fo"\nmodel = "scripted/random"\nepisode = 3\n',
            "unknown option 'episode'",
        ),
        "broken.toml": ('task = "maze-fo\n', "is not valid TOML"),
        "flag.toml": ('task = "maze-fo"\nmodel = "scripted/random"\nresume = "yes"\n', "true or false"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        assert main(["run", "--config", str(tmp_path / name), "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
    assert main(["run", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "No such file" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_the_run_records_each_prompt_once(tmp_path) -> None:
    out = tmp_path / "run"
    args = ["run", "--task", "maze-fo", "--task", "endgames", "--model", "scripted/random", "--episodes", "4"]
    assert main([*args, "--max-turns", "2", "--out", str(out), "--no-progress"]) == 0
    prompts = json.loads((out / "prompts.json").read_text())
    episodes = load_episodes(out)
    assert {e.prompt_id for e in episodes} == set(prompts["prompts"])
    maze = [pid for pid, p in prompts["prompts"].items() if p["task"] == "maze-fo"]
    assert len(maze) == 1  # one system prompt for every maze episode, stored once
    assert prompts["prompts"][maze[0]]["text"].startswith("You are navigating a maze")
    # Endgames' final-line example is a legal king move of each start position: one text per position.
    endgames = prompts["seen"]["endgames"]["scripted/random"]
    assert 1 <= len(endgames) <= 4
    assert prompts["models"]["scripted/random"] == {}
