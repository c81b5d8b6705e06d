"""Harness overhead: maze-fo turns per second with an instant in-process scripted agent.

Runs the real runner (episode records, durable log with fsync) with ``scripted/random`` (long episodes,
up to 101 turns) at concurrency 1, 64 and 1024. Target: at least 2,000 turns/s.

    python bench/harness_overhead.py [--episodes 400] [--repeats 3]
"""

from __future__ import annotations

import argparse

import _common  # noqa: F401  (environment and sys.path)
from _common import median, runner_rate


def measure(concurrency: int, episodes: int) -> tuple[float, int]:
    return runner_rate("maze-fo", "scripted/random", episodes, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    measure(8, 20)  # warm imports
    print(f"maze-fo, scripted/random, {args.episodes} episodes, median of {args.repeats}")
    print("| concurrency | turns | turns/s (median) |")
    print("|---|---|---|")
    for concurrency in (1, 64, 1024):
        rates, turns = [], 0
        for _ in range(args.repeats):
            rate, turns = measure(concurrency, args.episodes)
            rates.append(rate)
        print(f"| {concurrency} | {turns} | {median(rates):,.0f} |")


if __name__ == "__main__":
    main()
