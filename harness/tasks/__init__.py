"""Task registry: every task variant registers its class under its name.

``make_task("maze-fo")`` returns a fresh environment for one episode; ``task_names()`` lists them.
"""

from __future__ import annotations

from typing import Any

from harness.task import InvalidTaskOption, Task

_REGISTRY: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    if cls.name in _REGISTRY:
        raise ValueError(f"task {cls.name} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def task_class(name: str) -> type[Task]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidTaskOption(f"unknown task {name!r}; known tasks: {', '.join(task_names())}") from None


def make_task(name: str, **options: Any) -> Task:
    return task_class(name)(**options)


# Importing the modules registers their tasks.
from harness.tasks import (  # noqa: E402,F401
    car_dealer,
    chess,
    endgames,
    guess_city,
    maze,
    textnav,
    twenty_questions,
    wordle,
)
