"""The run directory under hostile use: damaged lines are quarantined and never cost a good episode,
one process writes a run at a time, and a rerun keeps the settings the episodes were played with."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from lmrl.cli import main
from lmrl.rundir import read_records

ROOT = Path(__file__).resolve().parent.parent


def _run(out: Path, model: str, api_base: str, *extra: str) -> list[str]:
    return [
        "run", "--task", "maze-fo", "--model", model, "--api-base", api_base, "--episodes", "6",
        "--max-turns", "3", "--out", str(out), "--no-progress", *extra,
    ]  # fmt: skip


def test_damaged_lines_are_quarantined_every_good_episode_kept_none_replayed(fake_server, tmp_path, capsys):
    model = f"openai/maze@id={uuid.uuid4().hex[:8]}"
    out = tmp_path / "run"
    assert main(_run(out, model, fake_server.api_base)) == 0
    log = out / "episodes.jsonl"
    good = log.read_text().splitlines()
    damaged = [good[0], "{not json", good[1], good[2], '{"no": "key"}', good[3], good[4], "42", good[5]]
    log.write_text("\n".join(damaged) + "\n")
    capsys.readouterr()
    # show reads every good episode and says what it skipped (it used to stop at the first bad line)
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr()
    assert "3 line(s) of episodes.jsonl are not episodes" in shown.err
    before = len(fake_server.requests())
    assert main(_run(out, model, fake_server.api_base)) == 0
    assert len(fake_server.requests()) == before  # nothing replayed
    err = capsys.readouterr().err
    assert "3 line(s)" in err and "quarantine" in err
    assert log.read_text().splitlines() == good
    kept = [json.loads(line) for line in (out / "episodes.quarantine.jsonl").read_text().splitlines()]
    assert [k["line"] for k in kept] == [2, 5, 8]
    assert main(["show", str(out)]) == 0
    assert "kept in" in capsys.readouterr().err


def test_a_second_process_on_the_same_run_exits_2_naming_the_holder(fake_server, tmp_path):
    model = f"openai/maze@delay=1@id={uuid.uuid4().hex[:8]}"  # the first run outlasts the second
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "lmrl.cli",
        *_run(out, model, fake_server.api_base, "--concurrency", "1"),
    ]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / ".lock").exists() or not (out / ".lock").read_text():
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    assert f"pid {first.pid}" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    assert first.poll() is None  # the holder was never disturbed
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=60)
    keys = [r["key"] for r in map(json.loads, (out / "episodes.jsonl").read_text().splitlines())]
    assert len(keys) == len(set(keys))


def test_a_changed_setting_is_refused_and_an_added_model_accepted(fake_server, tmp_path, capsys):
    model = f"openai/maze@id={uuid.uuid4().hex[:8]}"
    out = tmp_path / "run"
    assert main(_run(out, model, fake_server.api_base, "--temperature", "0.5")) == 0
    capsys.readouterr()
    assert main(_run(out, model, fake_server.api_base, "--temperature", "0.9")) == 2
    err = capsys.readouterr().err.strip()
    assert "temperature=0.5, not 0.9" in err and "--out" in err and len(err.splitlines()) == 1
    other = f"openai/maze@id={uuid.uuid4().hex[:8]}"
    extra = ["--model", other, "--temperature", "0.5"]
    assert main(_run(out, model, fake_server.api_base, *extra)) == 0  # a new model joins the run
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["invocations"]) == 2  # a history, not an overwrite
    assert manifest["invocations"][0]["models"] == [model]
    assert set(manifest["settings"]) == {model, other}
    records = read_records(out / "episodes.jsonl")
    assert {r["config_id"] for r in records} == {manifest["settings"][m]["id"] for m in (model, other)}
    assert len(records) == 12
    # partners' options are settings too; transport options are not
    again = _run(out, model, fake_server.api_base, *extra, "--model-concurrency", "3")
    assert main(again) == 0


def test_the_lock_is_released_after_a_run(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--task", "maze-fo", "--model", "scripted/optimal", "--episodes", "1", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    assert (out / ".lock").exists() and not (out / ".lock").read_text()  # released, empty


def test_a_full_disk_stops_cleanly_and_the_rerun_completes(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--task", "maze-fo", "--model", "scripted/random", "--episodes", "300", "--out", str(out)]
    command = f"ulimit -f 96; exec {sys.executable} -m lmrl.cli {' '.join(args)} --no-progress"
    full = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert full.returncode == 2
    err = full.stderr.strip()
    assert "no space" in err and "rerun" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    log = (out / "episodes.jsonl").read_bytes()
    assert log == b"" or log.endswith(b"\n")  # nothing torn
    kept = len(read_records(out / "episodes.jsonl"))
    assert kept < 300
    assert main([*args, "--no-progress"]) == 0
    keys = [json.loads(line)["key"] for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 300


def test_sigterm_during_start_up_exits_130(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "lmrl.cli", "run", "--task", "maze-fo", "--model", "scripted/random"]
    process = subprocess.Popen(
        [*command, "--out", str(out), "--no-progress"], cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    time.sleep(0.5)  # importing, parsing, building the runner
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode in (0, 130), err  # 0 only if the whole run beat the signal
    assert "Traceback" not in err


def test_absurd_sizes_and_devices_are_refused_before_anything_starts(tmp_path, capsys):
    out = tmp_path / "run"
    huge = ["run", "--task", "maze-fo", "--model", "scripted/random", "--episodes", "1000000000000"]
    assert main([*huge, "--out", str(out), "--no-progress"]) == 2
    assert "split it into several runs" in capsys.readouterr().err
    bogus = ["run", "--task", "maze-fo", "--model", "local/smollm2", "--device", "bogus", "--out", str(out)]
    assert main([*bogus, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "device must be" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_wrong_endpoint_or_model_is_found_before_any_episode(fake_server, tmp_path, capsys):
    base = fake_server.api_base.removesuffix("/v1")
    cases = [
        (f"{base}/nope/v1", "openai/maze", "HTTP 404: is --api-base right?"),
        (f"{base}/listed/v1", "openai/chess-master", "does not serve a model named 'chess-master'"),
    ]
    for api_base, model, message in cases:
        before = len(fake_server.requests())
        out = tmp_path / model.replace("/", "-")
        args = ["run", "--task", "maze-fo", "--model", model, "--api-base", api_base, "--out", str(out)]
        assert main([*args, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
        assert len(fake_server.requests()) == before and not out.exists()  # no episode was tried
    served = ["run", "--task", "maze-fo", "--model", "openai/maze", "--api-base", f"{base}/listed/v1"]
    assert main([*served, "--episodes", "1", "--out", str(tmp_path / "ok"), "--no-progress"]) == 0
    # --no-preflight: the run starts, and every episode meets the 404
    skipped = ["run", "--task", "maze-fo", "--model", "openai/maze", "--api-base", f"{base}/nope/v1"]
    skipped += ["--no-preflight", "--episodes", "1", "--max-retries", "0", "--out", str(tmp_path / "skipped")]
    assert main([*skipped, "--no-progress"]) == 1


def test_a_scripted_run_commits_episodes_as_it_plays(tmp_path):
    """Scripted episodes never wait on anything; each worker still yields after an episode, so the
    writer commits them as the run goes (a crash of a long run loses a moment, not everything)."""
    import anyio

    from lmrl.runner import RunConfig, Runner

    config = RunConfig(
        out=tmp_path / "run", tasks=["wordle"], models=["scripted/behavior"], episodes=300, concurrency=8
    )
    log = config.out / "episodes.jsonl"
    on_disk: list[int] = []

    def count(episode) -> None:
        if len(on_disk) < 300:
            on_disk.append(len(log.read_bytes().splitlines()))

    result = anyio.run(Runner(config).run, count)
    assert result.finished == 300
    assert on_disk[-1] >= 250, on_disk[::50]  # committed along the way, not all at the end
    assert len(read_records(log)) == 300
