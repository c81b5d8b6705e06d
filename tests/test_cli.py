"""The command line: bad input, crash and resume, interrupt, show and export."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from lmrl.cli import main
from lmrl.rundir import read_records

ROOT = Path(__file__).resolve().parent.parent


def lmrl(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lmrl.cli", *args],
        cwd=ROOT,
        env=env or os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "no-such-task", "--model", "scripted/random"], "unknown task"),
        (["--task", "maze-fo", "--model", "nosuchprovider/x"], "unknown model"),
        (["--task", "maze-fo", "--model", "scripted/psychic"], "no scripted policy"),
        (["--task", "maze-fo", "--model", "scripted/random", "--episodes", "0"], "at least 1"),
        (["--task", "maze-fo", "--model", "scripted/random", "--concurrency", "many"], "not an integer"),
        (["--task", "maze-fo", "--model", "scripted/random", "--style", "poetry"], "invalid choice"),
        (["--task", "wordle", "--model", "scripted/random", "--task-option", "wordle.vocab=lots"], "vocab"),
        (["--task", "maze-fo", "--model", "scripted/random", "--task-option", "wordle.vocab=full"], "not in"),
        (["--task", "maze-fo", "--model", "openai/gpt-4o-mini"], "OPENAI_API_KEY"),
        (["--task", "maze-fo", "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1"], "cannot reach"),
        (["--task", "maze-fo", "--model", "scripted/random", "--resume"], "not an existing run"),
        (["--task", "maze-fo", "--model", "openai/x", "--role-option", "oracle.temperature=hot"], "a number"),
        (["--task", "maze-fo", "--model", "openai/x", "--model-option", "no-equals"], "KEY=VALUE"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_no_run(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(["run", *args, "--out", str(out), "--no-progress"]))
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("where", ["file/run", "/proc/lmrl-test/run"])
def test_an_out_that_cannot_be_written_is_one_line(where, tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    out = tmp_path / where if not where.startswith("/") else Path(where)
    assert (
        main(["run", "--task", "maze-fo", "--model", "scripted/random", "--out", str(out), "--no-progress"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("lmrl: error:") and "\n" not in err and str(out.parent) in err


def test_show_of_a_missing_run_is_one_line(tmp_path, capsys):
    assert main(["show", str(tmp_path / "nope")]) == 2
    assert "not an lmrl run directory" in capsys.readouterr().err


def test_other_settings_into_an_existing_run_are_refused(tmp_path, capsys):
    out = str(tmp_path / "run")
    base = [
        "run",
        "--task",
        "maze-fo",
        "--model",
        "scripted/optimal",
        "--episodes",
        "2",
        "--out",
        out,
        "--no-progress",
    ]
    assert main(base) == 0
    assert main([*base[:-1], "--seed", "5", "--no-progress"]) == 2
    assert "different seed" in capsys.readouterr().err


def test_scripted_run_show_and_export(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--task",
            "maze-fo",
            "--task",
            "wordle",
            "--model",
            "scripted/optimal",
            "--episodes",
            "25",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["tasks"] == ["maze-fo", "wordle"]
    assert manifest["tasks"]["wordle"]["options"]["vocab_hash"]
    frame = pd.read_parquet(out / "episodes.parquet")
    assert len(frame) == 50 and frame["error"].isna().all()
    maze = frame[frame["task"] == "maze-fo"]
    assert maze["return"].mean() == pytest.approx(-6.84)
    capsys.readouterr()
    assert main(["show", str(out), "--csv", str(tmp_path / "s.csv")]) == 0
    shown = capsys.readouterr().out
    assert "maze-fo" in shown and "100.0" in shown  # optimal maze normalizes to exactly 100
    table = pd.read_csv(tmp_path / "s.csv")
    assert table.set_index("task").loc["maze-fo", "normalized"] == pytest.approx(100.0)
    assert table.set_index("task").loc["maze-fo", "success_rate"] == 1.0
    wordle = table.set_index("task").loc["wordle"]
    assert wordle["ci_low"] <= wordle["mean_return"] <= wordle["ci_high"]  # bootstrap 95% interval
    assert "info" not in frame and maze["info.start"].map(len).eq(2).all()  # typed, not JSON text


def test_same_seed_reproduces_episodes(tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert (
            main(
                [
                    "run",
                    "--task",
                    "wordle",
                    "--task",
                    "maze-po",
                    "--model",
                    "scripted/behavior",
                    "--episodes",
                    "10",
                    "--seed",
                    "3",
                    "--out",
                    str(out),
                    "--no-progress",
                ]
            )
            == 0
        )
    runs = [
        sorted(
            (r["key"], r["return"], json.dumps(r["info"], sort_keys=True))
            for r in read_records(out / "episodes.jsonl")
        )
        for out in outs
    ]
    assert runs[0] == runs[1]


def wait_for_episodes(log: Path, count: int, process: subprocess.Popen) -> None:
    deadline = time.time() + 60
    while not (log.exists() and log.read_text().count("\n") >= count):
        assert time.time() < deadline and process.poll() is None, "run did not make progress"
        time.sleep(0.05)


def start_cell(first_user: str) -> tuple[int, int]:
    row, col = re.search(r"current position is at position (\d+), (\d+)", first_user).groups()
    return int(row), int(col)


@pytest.mark.slow
def test_sigkill_then_rerun_finishes_every_episode_exactly_once(fake_server, tmp_path):
    from lmrl.tasks.maze import START_CELLS

    model = f"openai/maze@delay=0.05@id={uuid.uuid4().hex[:8]}"
    out = tmp_path / "run"
    args = [
        "run",
        "--task",
        "maze-fo",
        "--model",
        model,
        "--api-base",
        fake_server.api_base,
        "--episodes",
        "25",
        "--concurrency",
        "3",
        "--out",
        str(out),
        "--no-progress",
    ]
    first = lmrl(*args)
    log = out / "episodes.jsonl"
    wait_for_episodes(log, 6, first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = {r["index"] for r in read_records(log)}
    assert 6 <= len(done_before) < 25
    with log.open("a") as handle:
        handle.write('{"key": "torn-by-the-crash", "ret')  # what a kill mid-write leaves behind
    requests_before = len(fake_server.requests())

    second = lmrl(*args)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    records = [json.loads(line) for line in log.read_text().splitlines()]
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)) == 25
    assert all(r["error"] is None and r["success"] for r in records)
    name = model.removeprefix("openai/")
    replayed = {
        start_cell(r["first_user"]) for r in fake_server.requests()[requests_before:] if r["model"] == name
    }
    assert not replayed & {START_CELLS[i] for i in done_before}
    assert replayed == {START_CELLS[i] for i in range(25)} - {START_CELLS[i] for i in done_before}


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_finished_episodes(fake_server, tmp_path):
    model = f"openai/maze@delay=0.05@id={uuid.uuid4().hex[:8]}"
    out = tmp_path / "run"
    process = lmrl(
        "run",
        "--task",
        "maze-fo",
        "--model",
        model,
        "--api-base",
        fake_server.api_base,
        "--episodes",
        "50",
        "--concurrency",
        "2",
        "--out",
        str(out),
        "--no-progress",
    )
    log = out / "episodes.jsonl"
    wait_for_episodes(log, 3, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Traceback" not in err and "resume" in err
    text = log.read_text()
    assert text.endswith("\n")
    assert 3 <= len(read_records(log)) < 50


def test_api_keys_never_reach_the_run_directory(fake_server, tmp_path, monkeypatch, capsys):
    key = "sk-lmrl-test-" + uuid.uuid4().hex
    monkeypatch.setenv("OPENAI_API_KEY", key)
    out = tmp_path / "run"
    good = f"openai/maze@id={uuid.uuid4().hex[:8]}"
    rejected = f"openai/say@fail=401x99@id={uuid.uuid4().hex[:8]}"  # the 401 body echoes the key
    code = main(
        [
            "run",
            "--task",
            "maze-fo",
            "--model",
            good,
            "--model",
            rejected,
            "--episodes",
            "2",
            "--api-base",
            fake_server.api_base,
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    records = read_records(out / "episodes.jsonl")
    assert any(r["error"] and "Incorrect API key" in r["error"] for r in records)
    for path in out.iterdir():
        assert key not in path.read_bytes().decode("utf-8", "replace"), path.name
    captured = capsys.readouterr()
    assert key not in captured.out + captured.err


def test_max_turns_marks_episodes_cut_short_and_withholds_the_normalized_score(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--task",
                "maze-fo",
                "--model",
                "scripted/random",
                "--episodes",
                "5",
                "--max-turns",
                "3",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["show", str(out), "--csv", str(tmp_path / "t.csv")]) == 0
    row = pd.read_csv(tmp_path / "t.csv").iloc[0]
    assert row["truncated"] == row["cut_by_max_turns"] >= 4 and pd.isna(row["normalized"])
    assert "by --max-turns)" in capsys.readouterr().out
