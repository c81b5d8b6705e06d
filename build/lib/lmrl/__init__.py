"""lmrl: benchmark and train multi-turn language agents on the LMRL-Gym tasks.

The public surface (everything else is an implementation module)::

    import lmrl

    result = lmrl.run(["maze-fo"], ["scripted/optimal"], episodes=25, out="runs/demo")
    episodes = lmrl.load_run("runs/demo")                        # list[lmrl.Episode]
    episode = lmrl.play("wordle", "scripted/behavior", seed=3)   # one episode, synchronously
    episode = await lmrl.rollout(lmrl.make_task("wordle"), lmrl.make_agent("openai/gpt-4o-mini"), seed=3)

    @lmrl.register_task
    class MyTask(lmrl.Task): ...

Names load on first use, so ``import lmrl`` stays light. Importing it changes nothing in the caller's
environment; the ``lmrl`` command sets its offline switches in its own process (``lmrl.cli``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "run": "lmrl.api",
    "play": "lmrl.api",
    "load_run": "lmrl.api",
    "rollout": "lmrl.rollout",
    "Task": "lmrl.task",
    "StepResult": "lmrl.task",
    "Anchors": "lmrl.task",
    "register_task": "lmrl.tasks",
    "make_task": "lmrl.tasks",
    "task_names": "lmrl.tasks",
    "Episode": "lmrl.episode",
    "Turn": "lmrl.episode",
    "Agent": "lmrl.agents",
    "AgentOptions": "lmrl.agents",
    "make_agent": "lmrl.agents",
    "make_judge": "lmrl.judges",
    "Invalid": "lmrl.parsing",
    "read_action": "lmrl.parsing",
}
__all__ = [
    "Agent",
    "AgentOptions",
    "Anchors",
    "Episode",
    "Invalid",
    "StepResult",
    "Task",
    "Turn",
    "load_run",
    "make_agent",
    "make_judge",
    "make_task",
    "play",
    "read_action",
    "register_task",
    "rollout",
    "run",
    "task_names",
]

if TYPE_CHECKING:  # for type checkers and editors; at run time names load lazily
    from lmrl.agents import Agent, AgentOptions, make_agent
    from lmrl.api import load_run, play, run
    from lmrl.episode import Episode, Turn
    from lmrl.judges import make_judge
    from lmrl.parsing import Invalid, read_action
    from lmrl.rollout import rollout
    from lmrl.task import Anchors, StepResult, Task
    from lmrl.tasks import make_task, register_task, task_names


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lmrl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
