"""Episode records, the durable log and its repair, normalization and statistics."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import anyio
import pytest

from lmrl.episode import SCHEMA_VERSION, Episode, Turn
from lmrl.reports.normalize import normalized_score
from lmrl.reports.stats import mean_ci95, t95
from lmrl.rundir import (
    EpisodeLog,
    Repair,
    RunLock,
    RunLockHeld,
    health_warning,
    log_health,
    read_records,
    repair_log,
)


def make_episode(key: str = "maze-fo/scripted/random/0/0", reward: float = -1.0) -> Episode:
    episode = Episode(
        run_id="r",
        key=key,
        task="maze-fo",
        task_version="1",
        index=0,
        epoch=0,
        seed=7,
        models={"agent": "scripted/random"},
    )
    episode.add_turn(
        Turn(
            observation="o",
            raw_output="move up",
            action="move up",
            invalid=False,
            reward=reward,
            done=False,
            tokens_in=3,
            tokens_out=2,
            cost_usd=0.5,
        )
    )
    episode.add_turn(
        Turn(observation="o2", raw_output="??", action=None, invalid=True, reward=-4.0, done=True)
    )
    return episode


def test_episode_round_trip_keeps_totals_and_turns():
    episode = make_episode()
    assert (episode.return_, episode.length, episode.invalid_count, episode.tokens_in) == (-5.0, 2, 1, 3)
    record = json.loads(episode.to_json())
    assert record["return"] == -5.0 and record["schema_version"] == SCHEMA_VERSION
    assert "token_ids" not in record["turns"][0]
    again = Episode.from_dict(record)
    assert again == episode


def test_reader_ignores_unknown_fields_and_refuses_newer_schema():
    record = json.loads(make_episode().to_json())
    record["added_later"] = 1
    record["turns"][0]["also_new"] = True
    assert Episode.from_dict(record).length == 2
    record["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="newer"):
        Episode.from_dict(record)


def test_repair_drops_only_a_torn_tail(tmp_path):
    path = tmp_path / "episodes.jsonl"
    good = [make_episode(key=f"k{i}").to_json() for i in range(3)]
    path.write_text("\n".join(good) + "\n" + good[0][:40])
    assert repair_log(path) == Repair(torn_bytes=40, quarantined=0)
    assert [r["key"] for r in read_records(path)] == ["k0", "k1", "k2"]
    assert path.read_text().endswith("\n")
    assert repair_log(path) == Repair()  # idempotent
    assert not (tmp_path / "episodes.quarantine.jsonl").exists()  # a torn tail is repaired silently


def test_lines_that_are_not_episodes_are_quarantined_and_every_good_line_kept(tmp_path):
    path = tmp_path / "episodes.jsonl"
    good = [make_episode(key=f"k{i}").to_json() for i in range(4)]
    lines = [good[0], "{garbled", good[1], '{"valid": "json, no key"}', "[1, 2]", good[2], good[3]]
    path.write_text("\n".join(lines) + "\n" + good[0][:10])
    # readers skip the damage (they used to stop at the first bad line) and count it
    assert [r["key"] for r in read_records(path)] == ["k0", "k1", "k2", "k3"]
    assert log_health(tmp_path) == (3, 0)
    assert "3 line(s)" in health_warning(tmp_path)
    assert repair_log(path) == Repair(torn_bytes=10, quarantined=3)
    assert path.read_text().splitlines() == good
    kept = [json.loads(line) for line in (tmp_path / "episodes.quarantine.jsonl").read_text().splitlines()]
    assert [(k["line"], k["text"]) for k in kept] == [
        (2, "{garbled"), (4, '{"valid": "json, no key"}'), (5, "[1, 2]")
    ]  # fmt: skip
    assert log_health(tmp_path) == (0, 3)
    assert "moved to" in health_warning(tmp_path)
    assert repair_log(path) == Repair()


HOLD_LOCK = """
import pathlib, sys, time
from lmrl.rundir import RunLock
lock = RunLock(pathlib.Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_one_process_at_a_time_holds_a_run_directory(tmp_path):
    first = RunLock(tmp_path / "run")
    first.acquire()
    with pytest.raises(RunLockHeld, match=f"pid {os.getpid()}"):
        RunLock(tmp_path / "run").acquire()
    first.release()
    with RunLock(tmp_path / "run"):  # released: the next one gets it
        pass
    # a lock left by a process that died (here: SIGKILLed while holding it) is taken over
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path / "run")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunLockHeld, match=f"pid {holder.pid}"):
        RunLock(tmp_path / "run").acquire()
    holder.kill()
    holder.wait()
    with RunLock(tmp_path / "run"):
        pass


def test_later_record_for_a_key_replaces_the_earlier(tmp_path):
    path = tmp_path / "episodes.jsonl"
    first, second = make_episode(reward=-1.0), make_episode(reward=-2.0)
    path.write_text(first.to_json() + "\n" + second.to_json() + "\n")
    (record,) = read_records(path)
    assert record["return"] == -6.0


@pytest.mark.anyio
async def test_log_writes_everything_queued_even_when_cancelled(tmp_path):
    path = tmp_path / "episodes.jsonl"
    log = EpisodeLog(path)
    async with anyio.create_task_group() as group:
        group.start_soon(log.run)
        for i in range(50):
            log.append(make_episode(key=f"k{i}"))
        group.cancel_scope.cancel()
    assert len(read_records(path)) == 50


@pytest.mark.parametrize(
    ("raw", "anchors", "printed"),
    [
        (-6.97, (-101, -83, -6.84), 99.9),  # FO maze ILQL
        (-52.9, (-101, -83, -25.75), 76.3),  # PO maze ILQL
        (-2.04, (-6, -4.12, -1.94), 97.7),  # Wordle ILQL
        (0.814, (-1, 0.586, 1), 77.5),  # Endgames PPO
        (-13.0, (-20, -17.3, -12.6), 95.7),  # 20Qs GPT-4
    ],
)
def test_normalization_reproduces_the_papers_table(raw, anchors, printed):
    assert normalized_score(raw, *anchors) == pytest.approx(printed, abs=0.06)


def test_normalization_anchor_points():
    assert normalized_score(-101, -101, -83, -6.84) == 0
    assert normalized_score(-83, -101, -83, -6.84) == 50
    assert normalized_score(-6.84, -101, -83, -6.84) == 100


def test_mean_ci95():
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert math.isnan(mean_ci95([5.0])[1])
    assert t95(1000) == pytest.approx(1.9623, abs=1e-3)
