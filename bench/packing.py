"""Packed episodes against one sample per turn: offline training steps on maze-po, where the policy
keeps its history (a 20-move episode's last prompt holds all 19 earlier turns), measured side by side.

Both train the same tiny from-scratch model on the same behaviour episodes (cut at 20 moves, as
``bench/learning.py``) with batches of about 32 turns: per turn, every turn re-encodes its whole
history (and ILQL encodes the next state apart); packed, one sequence per episode holds every turn.
The losses are equal (``tests/test_finetune_packing.py``); this measures what that saves.

    python bench/packing.py [--steps 30] [--repeats 2] [--episodes 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import _common  # noqa: F401

import lmrl
from lmrl.finetune.models import prepare_base
from lmrl.finetune.trainer import TrainConfig, train


def seconds_per_step(algo: str, packing: str, data: Path, base: Path, out: Path, steps: int) -> float:
    """The training loop's own time per step (from the log's timestamps: no set-up, no saving)."""
    train(
        TrainConfig(
            algo=algo, data=[str(data)], out=out, base=str(base), max_steps=steps, lr=1e-3, packing=packing,
            eval_episodes=0, save_every=steps + 1, log_every=max(1, steps // 6),
        ),
        progress=False,
    )  # fmt: skip
    records = [json.loads(line) for line in (out / "train_log.jsonl").open() if '"loss"' in line]
    return (records[-1]["time"] - records[0]["time"]) / (records[-1]["step"] - records[0]["step"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        lmrl.run(
            "maze-po", "scripted/behavior", episodes=args.episodes, out=data, concurrency=64, max_turns=20
        )
        base = prepare_base("tiny", "maze-po", tmp / "base", seed=0)
        times: dict[tuple[str, str], list[float]] = {}
        for repeat in range(args.repeats):  # alternate, so the machine's noise hits both alike
            for algo in ("bc", "ilql"):
                for packing in ("off", "auto"):
                    out = tmp / f"{algo}-{packing}-{repeat}"
                    seconds = seconds_per_step(algo, packing, data, base, out, args.steps)
                    times.setdefault((algo, packing), []).append(seconds)
                    print(f"repeat {repeat}: {algo} packing {packing}: {seconds:.3f} s/step", flush=True)
    print(f"\nmaze-po, {args.episodes} episodes, {args.steps} steps of ~32 turns, medians of {args.repeats}")
    print("| algorithm | per turn, s/step | packed, s/step | speed-up |")
    print("|---|---|---|---|")
    for algo in ("bc", "ilql"):
        off, packed = times[algo, "off"], times[algo, "auto"]
        ratios = [a / b for a, b in zip(off, packed, strict=True)]
        print(
            f"| {algo} | {statistics.median(off):.3f} | {statistics.median(packed):.3f} "
            f"| {statistics.median(ratios):.1f}x |"
        )


if __name__ == "__main__":
    main()
