"""Dialogue tasks with their built-in simulators: episodes per second with an instant scripted agent,
and the behaviour policies' success rate, mean return and length against the paper's dataset (Table 1).

    python bench/dialogue_tasks.py [--episodes 632]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import _common  # noqa: F401
import anyio

from harness.rundir import load_episodes
from harness.runner import RunConfig, Runner

PAPER = {  # dataset statistics: success, mean return, mean length
    "twenty-questions": (0.31, -17.3, 14.9),
    "guess-my-city": (0.53, -18.8, 18.8),
    "car-dealer": (0.53, 0.562, 16.5),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=632)
    args = parser.parse_args()
    print(f"{args.episodes} episodes per row, concurrency 64, built-in simulator partner")
    print("| task | agent | episodes/s | turns/s | success | mean return | mean length | paper dataset |")
    print("|---|---|---|---|---|---|---|---|")
    for task, (success, ret, length) in PAPER.items():
        for agent in ("scripted/behavior", "scripted/random"):
            with tempfile.TemporaryDirectory() as tmp:
                config = RunConfig(
                    out=Path(tmp) / "run",
                    tasks=[task],
                    models=[agent],
                    episodes=args.episodes,
                    concurrency=64,
                )
                result = anyio.run(Runner(config).run)
                episodes = load_episodes(Path(tmp) / "run")
            paper = f"{success:.2f} / {ret:g} / {length:g}" if agent.endswith("behavior") else ""
            print(
                f"| {task} | {agent} | {result.finished / result.wall_s:,.0f} "
                f"| {result.turns / result.wall_s:,.0f} "
                f"| {statistics.mean(e.success for e in episodes):.3f} "
                f"| {statistics.mean(e.return_ for e in episodes):.3f} "
                f"| {statistics.mean(e.length for e in episodes):.1f} | {paper} |"
            )


if __name__ == "__main__":
    main()
