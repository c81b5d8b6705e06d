"""`lmrl train` under `accelerate launch` with two CPU processes (DDP over gloo), against one process.

The loop gives each rank every other sample of each batch (``batch[rank::world]``); each rank's loss is
the mean over its own action tokens and DDP averages the ranks' gradients with equal weights. So:

* when the shards hold equally many action tokens (maze-fo: every action is 3 tokens; batch 8 -> 4 + 4
  samples), the average of the two shard means *is* the batch mean, and two processes make the update
  one process makes, up to the order of float sums (measured: the updates differ by 3e-5 of their size,
  weights by 4e-6, over 4 AdamW steps at lr 3e-4; the bound below is 1e-3 of the update);
* when they do not (batch 7 -> 4 + 3 samples), an unweighted average would make a sample of the smaller
  shard weigh 1/6 instead of 1/7 (8.5% of the update); the loop scales each rank's loss by
  ``world * tokens_of_rank / tokens_of_batch``, which brings the gap down to float noise;
* only the main process logs, the whole batch's loss (reduced over the ranks).

The tests launch batch 7 only: the equal split is the special case of the weighting where every scale is
1. The one-process runs they compare against train in the test's own process (``lmrl.cli.main``): a
process of their own would only add the ~10 s of importing torch and transformers.

Dropout is switched off in the base these tests train: a rank draws its masks for its half-batch from
the step's seed, so they differ from the masks one process draws for the whole batch and the two runs
differ by dropout's own randomness (measured with the default 0.1: the updates differ by half their
size), which no tolerance can tell from a bug.

Two things about the launcher:

* ``accelerate launch --cpu --num_processes 2`` starts ONE process: on the CPU accelerate only forks
  several through ``mpirun`` (``--mpirun_hostfile``). ``--multi_gpu --num_processes 2`` on a machine
  without GPUs starts two ranks through torchrun and ``Accelerator(cpu=True)`` makes them MULTI_CPU
  (gloo): that is what these tests run.
* both ranks would build ``--base tiny`` into the same ``OUT/base`` at once; the tests pass a base built
  beforehand (so ``--lr`` too: a checkpoint base defaults to the fine-tuning rate).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import lmrl
from lmrl.cli import main
from lmrl.finetune.models import prepare_base

pytestmark = pytest.mark.slow  # four trainings, two of them launched

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1"]
LAUNCH += ["--mixed_precision", "no", "--dynamo_backend", "no"]

# Record what the rank is, then run `python -m lmrl.cli ...` in the same process.
WRAPPER = """
import json, os, runpy, sys
from pathlib import Path
try:
    runpy.run_module("lmrl.cli", run_name="__main__")
finally:
    from accelerate import PartialState
    state = PartialState()
    record = {"type": str(state.distributed_type), "processes": state.num_processes,
              "index": state.process_index}
    Path(sys.argv[0]).with_name(f"rank-{os.getpid()}.json").write_text(json.dumps(record))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",  # what accelerate gives each rank; the single process gets the same
        OMP_WAIT_POLICY="PASSIVE",
        CUDA_VISIBLE_DEVICES="",  # CPU ranks even where a GPU is present
        HF_HUB_OFFLINE="1",
    )
    return env


def ranks(where: Path) -> list[dict]:
    return sorted((json.loads(p.read_text()) for p in where.glob("rank-*.json")), key=lambda r: r["index"])


def train(launcher: list[str], where: Path, args: list[str]) -> tuple[subprocess.CompletedProcess, Path]:
    where.mkdir(parents=True)
    script = where / "train.py"
    script.write_text(WRAPPER)
    out = where / "out"
    done = subprocess.run(
        [*launcher, str(script), "train", *args, "--out", str(out)],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done, out


def train_here(where: Path, args: list[str]) -> Path:
    """The same training in this process, one rank."""
    out = where / "out"
    assert main(["train", *args, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """One process and two, at batch size 7 (4 + 3 samples per rank)."""
    root = tmp_path_factory.mktemp("ddp")
    data = root / "data"
    lmrl.run("maze-fo", "scripted/behavior", episodes=10, out=data)
    base = prepare_base("tiny", "maze-fo", root / "base", seed=0)
    config = json.loads((base / "config.json").read_text())
    config.update(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # see the module's docstring
    (base / "config.json").write_text(json.dumps(config))
    two_processes = [*LAUNCH, "--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port())]
    found: dict = {"root": root, "base": base}
    args = ["--algo", "bc", "--data", str(data), "--base", str(base), "--lr", "3e-4", "--max-steps", "4"]
    args += ["--batch-size", "7", "--eval-episodes", "0", "--no-progress"]
    found["one"] = train_here(root / "one", args)
    found["two"] = train(two_processes, root / "two", args)
    return found


def losses(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in r]


def update_gap(one: Path, two: Path, base: Path) -> float:
    """|w_two - w_one| / |w_one - w_base| over all the weights: 0 when both runs made the same update."""
    from safetensors.torch import load_file

    a, b, start = (load_file(d / "model.safetensors") for d in (one, two, base))
    assert a.keys() == b.keys()
    gap = sum(float(((a[k] - b[k]) ** 2).sum()) for k in a) ** 0.5
    update = sum(float(((a[k] - start[k]) ** 2).sum()) for k in a) ** 0.5
    assert update > 1e-3  # the four steps did train
    return gap / update


def test_two_cpu_processes_really_are_two_ranks(runs) -> None:
    assert ranks(runs["root"] / "two") == [
        {"type": "DistributedType.MULTI_CPU", "processes": 2, "index": 0},
        {"type": "DistributedType.MULTI_CPU", "processes": 2, "index": 1},
    ]


def test_unequal_shards_make_the_update_of_one_process(runs) -> None:
    assert update_gap(runs["one"], runs["two"][1], runs["base"]) < 1e-3


def test_the_log_holds_the_batch_loss_once(runs) -> None:
    (done, two), single = runs["two"], losses(runs["one"])
    assert [r["step"] for r in single] == [4]  # one record (log_every 10): the mean of steps 1-4
    # The main process logs the whole batch's loss (reduced over the ranks), once.
    assert [r["loss"] for r in losses(two)] == pytest.approx([single[0]["loss"]], rel=1e-5)
    assert done.stdout.count("wrote ") == 1


@pytest.mark.skipif(shutil.which("mpirun") is not None, reason="with mpirun, --cpu does start ranks")
def test_accelerate_cpu_flag_alone_starts_one_process(tmp_path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(
        "import json, os\nfrom accelerate import PartialState\n"
        "s = PartialState(cpu=True)\n"
        "print(json.dumps([os.getpid(), s.num_processes]))\n"
    )
    done = subprocess.run(
        [*LAUNCH, "--cpu", "--num_processes", "2", str(script)],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(printed) == 1 and printed[0][1] == 1


def test_online_rounds_under_two_processes_play_once_and_make_the_update_of_one(runs) -> None:
    """Online: the main rank plays the round, both train on all of it. The one-process run trains on
    the very episodes the two ranks played (its round directory copied in: the runner's resume finds
    nothing left to play), so the two updates must agree."""
    root, base = runs["root"], runs["base"]
    args = ["--algo", "online-filtered-bc", "--task", "maze-fo", "--base", str(base), "--rounds", "1"]
    args += ["--episodes-per-round", "6", "--max-turns", "3", "--filter", "top:0.5", "--lr", "3e-4"]
    args += ["--batch-size", "7", "--no-progress"]
    two_processes = [*LAUNCH, "--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port())]
    done, two = train(two_processes, root / "online-two", args)
    assert [r["type"] for r in ranks(root / "online-two")] == ["DistributedType.MULTI_CPU"] * 2
    played = two / "rounds" / "round-000" / "run"
    assert len(lmrl.load_run(played)) == 6  # played once, by one rank
    assert done.stdout.count("wrote ") == 1
    one_dir = root / "online-one"
    shutil.copytree(played, one_dir / "out" / "rounds" / "round-000" / "run")
    train_here(one_dir, args)
    assert len(lmrl.load_run(one_dir / "out" / "rounds" / "round-000" / "run")) == 6  # nothing replayed
    assert update_gap(one_dir / "out", two, base) < 1e-3
