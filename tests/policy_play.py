"""Playing one episode of a task with one of its built-in scripted policies (sync path)."""

from __future__ import annotations

import random

from harness.task import Task


def play(task: Task, policy: str, seed: int, index: int) -> tuple[float, int]:
    """Run one episode with a built-in policy; return (return, number of actions)."""
    task.reset(seed, index)
    rng = random.Random(seed ^ 0x5EED)
    total = 0.0
    for n in range(1, task.max_steps + 1):
        result = task.step(task.parse(task.policies[policy](task, rng)))
        total += result.reward
        if result.done:
            return total, n
    raise AssertionError("episode did not end within max_steps")
