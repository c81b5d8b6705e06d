"""Report generation at scale: ``lmrl report`` over 100k synthetic episodes (10 tasks x 5 models x 2,000
episodes, one run directory per model, all on the same episode seeds so every pair of models is
compared on 2,000 shared episodes per task). Measures the wall time and the peak resident memory of the
``lmrl report`` process (target: under 60 s and under 2 GB).

    python bench/report_generation.py [--episodes 2000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from _common import ROOT

from lmrl.episode import episode_key
from lmrl.rollout import derive_seed
from lmrl.tasks import task_class

TASKS = [
    "maze-fo",
    "maze-po",
    "textnav-fo",
    "textnav-po",
    "wordle",
    "chess",
    "endgames",
    "twenty-questions",
    "guess-my-city",
    "car-dealer",
]
MODELS = [
    "openai/gpt-4o-mini",
    "anthropic/claude-haiku",
    "local/runs/bc",
    "local/runs/ilql",
    "scripted/random",
]


def write_run(path: Path, model: str, skill: float, episodes: int) -> int:
    """One run directory of ``model`` on every task; returns the number of turns written."""
    rng = random.Random(f"{model}")
    path.mkdir(parents=True)
    manifest = {
        "run_id": path.name,
        "config": {"tasks": TASKS, "models": [model], "episodes": episodes, "epochs": 1, "seed": 0},
        "tasks": {t: {"anchors": asdict(task_class(t).anchors)} for t in TASKS},
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "prompts.json").write_text(json.dumps({"prompts": {"p": {"text": "You play a game. " * 40}}}))
    turns_written = 0
    with (path / "episodes.jsonl").open("w") as handle:
        for task in TASKS:
            a = task_class(task).anchors
            for index in range(episodes):
                length = rng.randint(2, 14)
                ret = a.min + (a.max - a.min) * min(1.0, max(0.0, rng.gauss(skill, 0.2)))
                turns = [
                    {
                        "observation": f"Turn {t}: goal at (3, 4); you are at ({t}, 2). Walls left, up.",
                        "raw_output": "move right" if t % 3 else "I think I should go <up> & then right",
                        "action": "move right" if t % 3 else None,
                        "invalid": t % 3 == 0,
                        "invalid_reason": None if t % 3 else "no-action",
                        "reward": ret / length,
                        "done": t == length - 1,
                        "terminated": t == length - 1,
                        "truncated": False,
                        "info": {"position": [t, 2]},
                        "tokens_in": 300 + 40 * t,
                        "tokens_out": 6,
                        "cost_usd": 0.00005,
                        "latency_s": 0.4,
                    }
                    for t in range(length)
                ]
                record = {
                    "run_id": path.name,
                    "key": episode_key(task, model, index, 0),
                    "task": task,
                    "task_version": "1",
                    "index": index,
                    "epoch": 0,
                    "seed": derive_seed(0, task, index, 0),
                    "models": {"agent": model},
                    "turns": turns,
                    "final_observation": "The episode is over.",
                    "return": ret,
                    "success": rng.random() < skill,
                    "length": length,
                    "terminated": True,
                    "truncated": False,
                    "invalid_count": sum(t["invalid"] for t in turns),
                    "judges": {},
                    "role_usage": {},
                    "info": {"start": [1, 1]},
                    "error": None,
                    "prompt_id": "p",
                    "tokens_in": sum(t["tokens_in"] for t in turns),
                    "tokens_out": 6 * length,
                    "cost_usd": 0.00005 * length,
                    "started_at": 0.0,
                    "wall_s": 1.0,
                    "schema_version": 2,
                }
                handle.write(json.dumps(record) + "\n")
                turns_written += length
    return turns_written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=2000, help="per task and model (2000: 100k in all)")
    parser.add_argument("--keep", type=Path, help="write the runs and the report here and keep them")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="lmrl-report-bench-"))
    try:
        started = time.perf_counter()
        runs, turns = [], 0
        for i, model in enumerate(MODELS):
            run = root / f"run-{i}"
            turns += write_run(run, model, 0.3 + 0.1 * i, args.episodes)
            runs.append(run)
        size = sum((r / "episodes.jsonl").stat().st_size for r in runs) / 1e6
        print(
            f"wrote {len(MODELS) * len(TASKS) * args.episodes:,} episodes, {turns:,} turns "
            f"({size:.0f} MB of logs) in {time.perf_counter() - started:.0f} s"
        )
        lmrl = [sys.executable, "-m", "lmrl.cli", "report", *map(str, runs), "--out", str(root / "report")]
        started = time.perf_counter()
        subprocess.run(lmrl, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
        pages = sum(1 for _ in (root / "report" / "transcripts").rglob("*.html"))
        index_kb = (root / "report" / "index.html").stat().st_size / 1e3
        report_mb = sum(p.stat().st_size for p in (root / "report").rglob("*") if p.is_file()) / 1e6
        print(
            f"lmrl report: {wall:.1f} s wall, peak RSS {peak_mb:,.0f} MB; {pages:,} transcript pages, "
            f"{report_mb:.0f} MB written (index.html {index_kb:.0f} kB)"
        )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
