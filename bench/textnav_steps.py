"""Text-Nav throughput with an instant agent: raw env steps per second and turns per second via the runner.

Raw: a plain ``reset``/``parse``/``step`` loop on one task instance with the ``random`` policy (no runner,
no records); also without ``parse`` (policy output stepped directly) to show what parsing costs.
Runner: the real runner (episode records, durable log with fsync) with ``scripted/random`` and
``scripted/optimal`` at concurrency 64. Episodes are short (random: ~14 turns; optimal: 7.6 turns).

    python bench/textnav_steps.py [--episodes 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import random
import time

import _common  # noqa: F401  (environment and sys.path)
from _common import median, runner_rate

from lmrl.task import action_of
from lmrl.tasks import make_task


def raw_steps(task_name: str, episodes: int, parse: bool) -> tuple[float, int]:
    """Env steps per second of a reset/step loop driven by the random policy."""
    task = make_task(task_name)
    policy = task.policies["random"]
    steps = 0
    started = time.perf_counter()
    for index in range(episodes):
        task.reset(index, index)
        rng = random.Random(index)
        done = False
        while not done:
            text = policy(task, rng)
            done = task.step(action_of(task.parse(text)) if parse else text).done
            steps += 1
    return steps / (time.perf_counter() - started), steps


def runner_turns(task_name: str, policy: str, episodes: int, concurrency: int) -> tuple[float, int]:
    return runner_rate(task_name, f"scripted/{policy}", episodes, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    raw_steps("textnav-fo", 50, parse=True)  # warm up
    runner_turns("textnav-fo", "random", 20, 8)
    print(f"Text-Nav, instant agent, {args.episodes} episodes per measurement, median of {args.repeats}")
    print("| task | loop | agent | concurrency | steps | steps/s (median) |")
    print("|---|---|---|---|---|---|")
    for task_name in ("textnav-fo", "textnav-po"):
        for parse in (True, False):
            rates, steps = [], 0
            for _ in range(args.repeats):
                rate, steps = raw_steps(task_name, args.episodes, parse)
                rates.append(rate)
            loop = "reset/parse/step" if parse else "reset/step (no parse)"
            print(f"| {task_name} | {loop} | random policy | - | {steps} | {median(rates):,.0f} |")
        for policy in ("random", "optimal"):
            rates, turns = [], 0
            for _ in range(args.repeats):
                rate, turns = runner_turns(task_name, policy, args.episodes, 64)
                rates.append(rate)
            print(f"| {task_name} | runner | scripted/{policy} | 64 | {turns} | {median(rates):,.0f} |")


if __name__ == "__main__":
    main()
