"""The learning benchmark's own logic (``bench/learning.py``, ``bench/learning_table.py``): run names
decide which finished runs a rerun reuses, so they must keep settings apart and keep old names."""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import learning  # noqa: E402
import learning_table  # noqa: E402


def bench_args(**changes) -> argparse.Namespace:
    defaults = {
        "base": "tiny",
        "init": "bc",
        "max_steps": 3000,
        "value_steps": None,
        "value_settings": {},
        "bc_settings": {},
    }
    return argparse.Namespace(**{**defaults, **changes})


def test_run_names_keep_settings_apart_and_old_runs_keep_their_names() -> None:
    plain = bench_args()
    assert learning._run_name("bc", 0, plain) == "bc-s0"
    assert learning._run_name("filtered-bc", 1, plain) == "filtered-bc-s1"
    assert learning._run_name("ilql", 2, plain) == "ilql-from-bc-s2"
    assert learning._run_name("mc", 2, bench_args(init="scratch")) == "mc-s2"

    settings = {"backup": "action", "lr_schedule": "cosine", "heads": "mlp", "tau": 0.95}
    tuned = bench_args(value_steps=9000, value_settings=settings)
    assert (
        learning._run_name("ilql", 0, tuned)
        == "ilql-from-bc-9000steps-backupaction-headsmlp-lr_schedulecosine-tau0.95-s0"
    )
    # backup is ILQL's alone; BC has no value settings and keeps its steps and name
    assert learning._run_name("mc", 0, tuned) == "mc-from-bc-9000steps-headsmlp-lr_schedulecosine-tau0.95-s0"
    assert learning._run_name("bc", 0, tuned) == "bc-s0"
    # truncation is MC's alone
    cut = bench_args(value_settings={"truncation": "bootstrap", "heads": "mlp"})
    assert learning._run_name("mc", 1, cut) == "mc-from-bc-headsmlp-truncationbootstrap-s1"
    assert learning._run_name("ilql", 1, cut) == "ilql-from-bc-headsmlp-s1"
    assert learning._run_name("bc", 0, bench_args(base="local/smollm2")) == "bc-smollm2-s0"
    assert learning._run_name("bc", 0, bench_args(base="/ckpt/My Model/")) == "bc-My-Model-s0"


def test_bc_options_reach_the_runs_from_the_base_and_name_every_run_that_depends_on_them(tmp_path) -> None:
    warm = bench_args(
        base="tiny-rope",
        value_steps=6000,
        bc_settings={"warmup_steps": 500, "adam_beta2": 0.95},
        out=tmp_path,
    )
    assert learning._run_name("bc", 0, warm) == "bc-tiny-rope-beta2_0.95-warmup500-s0"
    assert learning._run_name("filtered-bc", 2, warm) == "filtered-bc-tiny-rope-beta2_0.95-warmup500-s2"
    # MC and ILQL from BC name the BC they start from, so they never reuse a run from the plain BC
    assert learning._run_name("mc", 1, warm) == "mc-tiny-rope-from-bc-beta2_0.95-warmup500-6000steps-s1"
    online = argparse.Namespace(**vars(warm), online_settings={})
    assert (
        learning._run_dir("wordle", "ppo", 0, online).name == "ppo-tiny-rope-from-bc-beta2_0.95-warmup500-s0"
    )

    # the optimizer settings go to the runs from the base, not to the value phase started from BC
    start, seconds = learning._training_start("wordle", "bc", 0, warm)
    assert start == {"base": "tiny-rope", "warmup_steps": 500, "adam_beta2": 0.95} and seconds == 0.0
    bc_run = tmp_path / "wordle" / "bc-tiny-rope-beta2_0.95-warmup500-s0"
    bc_run.mkdir(parents=True)
    (bc_run / "bench_result.json").write_text('{"seconds": 1860.0}')
    start, seconds = learning._training_start("wordle", "ilql", 0, warm)
    assert start["base"] == str(bc_run) and "warmup_steps" not in start and seconds == 1860.0
    # MC from scratch is a run from the base: it takes them, with its own value settings (backup is ILQL's)
    scratch = argparse.Namespace(**{**vars(warm), "init": "scratch", "value_settings": {"backup": "action"}})
    start, _ = learning._training_start("wordle", "mc", 0, scratch)
    assert start == {"base": "tiny-rope", "warmup_steps": 500, "adam_beta2": 0.95}
    start, _ = learning._training_start("wordle", "ilql", 0, scratch)
    assert start == {"base": "tiny-rope", "backup": "action", "warmup_steps": 500, "adam_beta2": 0.95}

    # a decaying rate is named too (sorted with the others), and reaches the trainer as its word
    decaying = {"warmup_steps": 500, "lr_schedule": "cosine"}
    cosine = bench_args(base="tiny-rope", bc_settings=decaying, out=tmp_path)
    assert learning._run_name("filtered-bc", 0, cosine) == "filtered-bc-tiny-rope-cosine-warmup500-s0"
    start, _ = learning._training_start("wordle", "filtered-bc", 0, cosine)
    assert start == {"base": "tiny-rope", "warmup_steps": 500, "lr_schedule": "cosine"}


def test_a_finished_run_of_another_length_is_refused_not_reported_as_this_commands(tmp_path) -> None:
    def planned(**changes) -> argparse.Namespace:
        return bench_args(algos="mc", seeds="0,1", online="", out=tmp_path, **changes)

    bc_run = tmp_path / "wordle" / "bc-s1"
    bc_run.mkdir(parents=True)
    (bc_run / "train_config.json").write_text('{"max_steps": 3000}')
    assert learning._length_problem("wordle", planned()) is None
    # BC's name does not carry its steps: MC would start from a BC of 3,000 steps and call it 24,000
    assert learning._length_problem("wordle", planned(max_steps=24000)) == (
        f"{bc_run} holds a run of 3000 steps, not --max-steps 24000: use another --out"
    )
    # MC's own steps are in its name once they differ from BC's, so only the same name can clash
    mc_run = tmp_path / "wordle" / "mc-from-bc-6000steps-s0"
    mc_run.mkdir(parents=True)
    (mc_run / "train_config.json").write_text('{"max_steps": 600}')
    assert learning._length_problem("wordle", planned(value_steps=6000)) == (
        f"{mc_run} holds a run of 600 steps, not --value-steps 6000: use another --out"
    )
    assert learning._length_problem("wordle", planned(value_steps=3000)) is None
    # a hand-edited settings file that does not parse is named, not a traceback
    (mc_run / "train_config.json").write_text("{max_steps: 600")
    assert learning._length_problem("wordle", planned(value_steps=6000)) == (
        f"{mc_run / 'train_config.json'} is not a run's training settings (JSON object): use another --out"
    )


def test_value_runs_from_filtered_bc_start_there_and_are_named_and_paired_by_it(tmp_path) -> None:
    decaying = {"warmup_steps": 500, "adam_beta2": 0.95, "lr_schedule": "cosine"}
    args = bench_args(
        base="tiny-rope",
        init="filtered-bc",
        max_steps=40000,
        value_steps=6000,
        bc_settings=decaying,
        value_settings={"warmup_steps": 500, "lr_schedule": "cosine"},
        algos="mc,ilql",
        seeds="0",
        online="",
        out=tmp_path,
    )
    # filtered BC runs first, BC not at all (nothing starts from it); with an online algorithm, both
    assert learning._phases(args) == [["filtered-bc"], ["mc", "ilql"]]
    online = argparse.Namespace(**{**vars(args), "online": "ppo", "online_settings": {}})
    assert learning._phases(online) == [["bc", "filtered-bc"], ["mc", "ilql", "ppo"]]
    # never confused with the runs from BC; the value phase's own optimizer settings read as BC's do
    assert learning._run_name("mc", 0, args) == (
        "mc-tiny-rope-from-filtered-bc-beta2_0.95-cosine-warmup500-6000steps-lr_schedulecosine-warmup500-s0"
    )
    assert learning._run_name("mc", 0, bench_args(init="bc")) == "mc-from-bc-s0"
    # the start is that seed's filtered BC, whose seconds count; the optimizer settings reach the trainer
    start_run = tmp_path / "wordle" / "filtered-bc-tiny-rope-beta2_0.95-cosine-warmup500-s0"
    start_run.mkdir(parents=True)
    (start_run / "bench_result.json").write_text('{"seconds": 4507.0}')
    start, seconds = learning._training_start("wordle", "ilql", 0, args)
    assert start == {"base": str(start_run), "lr": 1e-3, "warmup_steps": 500, "lr_schedule": "cosine"}
    assert seconds == 4507.0
    # the paired gain is over the run it started from; filtered BC's own, over BC
    assert learning._gain_baseline("mc", args) == "filtered-bc"
    assert learning._gain_baseline("filtered-bc", args) == "bc"
    assert learning._gain_baseline("bc", args) is None
    # a filtered BC of another length under the same name would be the wrong start
    (start_run / "train_config.json").write_text('{"max_steps": 24000}')
    assert learning._length_problem("wordle", args) == (
        f"{start_run} holds a run of 24000 steps, not --max-steps 40000: use another --out"
    )


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("warmup_steps=1.5", "warmup_steps must be a whole number, not negative"),
        ("warmup_steps=inf", "warmup_steps must be a whole number, not negative"),
        ("adam_beta2=1", "adam_beta2 must be at least 0 and below 1"),
        ("lr=0.1", "the key is one of warmup_steps, adam_beta2, lr_schedule"),
        ("lr_schedule=step", "the value is one of constant, linear, cosine"),
    ],
)
def test_a_bad_bc_option_stops_the_bench_before_any_work(tmp_path, pair, message) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "learning.py"), "--bc-option", pair, "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert message in done.stderr.splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_a_bad_optimizer_value_option_stops_the_bench_before_any_work(tmp_path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "learning.py"),
            "--value-option",
            "adam_beta2=1.5",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith(
        "--value-option adam_beta2=1.5: adam_beta2 must be at least 0 and below 1"
    )
    assert not any(tmp_path.iterdir())


def test_value_options_take_numbers_and_the_words_training_knows(capsys) -> None:
    parser = argparse.ArgumentParser(prog="learning.py")
    pairs = ["tau=0.95", "heads=mlp", "lr_schedule=cosine", "backup=action", "policy=frozen"]
    assert learning._number_settings(pairs, parser, learning.VALUE_OPTIONS, "--value-option") == {
        "tau": 0.95,
        "heads": "mlp",
        "lr_schedule": "cosine",
        "backup": "action",
        "policy": "frozen",
    }
    frozen = bench_args(value_settings={"policy": "frozen"})
    assert learning._run_name("mc", 0, frozen) == "mc-from-bc-policyfrozen-s0"
    for bad, message in [
        ("heads=deep", "the value is one of mlp, linear"),
        ("tau=high", "the value is a number"),
        ("beta=2", "the key is one of"),
    ]:
        with pytest.raises(SystemExit):
            learning._number_settings([bad], parser, learning.VALUE_OPTIONS, "--value-option")
        assert message in capsys.readouterr().err


def test_the_interval_over_seeds_and_episodes_to_ninety_percent() -> None:
    assert learning_table.ci95([1.0, 2.0, 3.0]) == pytest.approx(4.303 / math.sqrt(3), abs=1e-3)
    assert math.isnan(learning_table.ci95([5.0]))
    # from 0 to a final level of 10 (mean of the last three): 90% is first reached in round 3
    assert learning_table.episodes_to_90([0.0, 5.0, 9.5, 10.0, 10.0, 10.0], per_round=64) == 3 * 64
    assert learning_table.episodes_to_90([3.0, 2.0, 1.0, 1.0], per_round=64) is None


def test_the_gain_over_bc_pairs_the_seeds() -> None:
    # maze-fo's bootstrapped MC against its BC: gains 13.7, 40.3 and 14.1; their mean 22.7 and paired
    # half-width t(2) * sd / sqrt(3) = 4.303 * 15.24 / 1.732
    text = learning_table.gain_over([75.9, 88.8, 78.0], [62.2, 48.5, 63.9])
    assert text == "+13.7 +40.3 +14.1 (+22.7 ± 37.9)"
    # a loss is signed as a loss, a tie as +0.0
    assert learning_table.gain_over([50.0, 40.0, 45.0], [55.0, 35.0, 45.0]).startswith("-5.0 +5.0 +0.0")
    assert learning_table.gain_over([1.0], None) == "-"
    assert learning_table.gain_over([1.0, 2.0], [1.0]) == "-"
    # one seed has a gain but no interval, and the table says so rather than "± nan"
    assert learning_table.gain_over([4.4], [3.3]) == "+1.1 (+1.1 ± n/a)"


def test_a_benchmark_worker_ends_when_the_benchmark_is_killed(tmp_path) -> None:
    # The parent starts a pool worker the way the benchmark does, writes the worker's pid, and is
    # SIGKILLed; the idle worker must not outlive it.
    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing, os, sys, time\n"
        f"sys.path.insert(0, {str(BENCH)!r})\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "import learning\n"
        "if __name__ == '__main__':\n"
        "    spawn = multiprocessing.get_context('spawn')\n"
        "    pool = ProcessPoolExecutor(1, spawn, learning._exit_with_parent, (os.getpid(),))\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    assert alive(worker)  # while the benchmark is
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 30
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive(worker):
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the worker outlived the benchmark")


def alive(pid: int) -> bool:
    """Running, not a zombie that nobody has reaped yet (an orphan's reaper may be slow or absent)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_runs_training_seconds_come_from_the_trainer_else_the_bench_record(tmp_path) -> None:
    # the trainer's total over every session (a resumed run's earlier ones included) comes first
    assert learning._training_seconds(tmp_path, {"train_seconds": 812.5}) == 812.5
    # a run trained before the trainer logged it: what the bench recorded when it finished, else 0
    assert learning._training_seconds(tmp_path, {"already_trained": True}) == 0.0
    (tmp_path / "bench_trained.json").write_text('{"seconds": 779.0}')
    assert learning._training_seconds(tmp_path, {"already_trained": True}) == 779.0


def test_the_table_keeps_earlier_invocations_rows_and_replaces_rerun_ones(tmp_path) -> None:
    def row(task: str, algo: str, score: float) -> dict:
        return {
            "task": task, "algo": algo, "seeds": 3, "move_accuracy": "-", "normalized": score,
            "ci95": 1.0, "mean_return": -5.0, "success": 0.5, "invalid": 0.0, "per_seed": "1 2 3",
            "over_bc": "-", "beta": "- - -", "episodes_to_90": None, "paper": 50.0,
            "behaviour_policy": 50.0, "dataset_episodes": 100, "max_steps": 10, "cpu_minutes_per_run": 1.0,
        }  # fmt: skip

    learning_table.write([row("maze-fo", "bc", 60.0), row("maze-fo", "ilql", 90.0)], tmp_path)
    learning_table.write([row("wordle", "bc", 3.3)], tmp_path)  # another task: the maze rows stay
    learning_table.write([row("maze-fo", "ilql", 99.5)], tmp_path)  # a rerun replaces its own row
    table = (tmp_path / "learning.md").read_text().splitlines()[2:]
    assert [line.split(" | ")[:3] for line in table] == [
        ["| maze-fo", "bc", "60.0 ± 1.0"],
        ["| maze-fo", "ilql", "99.5 ± 1.0"],
        ["| wordle", "bc", "3.3 ± 1.0"],
    ]
    assert (tmp_path / "learning.csv").read_text().count("\n") == 4  # the header and the three rows
