"""``scripted/<policy>``: the task's own built-in policies (random, optimal, behavior, ...)."""

from __future__ import annotations

import inspect

from harness.agents.base import Agent, AgentConfigError, Completion
from harness.task import Prompt, Task


class ScriptedAgent(Agent):
    takes_options = frozenset()  # a policy reads the task state; nothing to sample or send

    def __init__(self, policy: str) -> None:
        if not policy:
            raise AgentConfigError("scripted agent needs a policy name, e.g. scripted/optimal")
        self.policy = policy
        self.spec = f"scripted/{policy}"

    def check_tasks(self, tasks: list[type[Task]]) -> None:
        for task in tasks:
            if self.policy not in task.policies:
                known = ", ".join(sorted(task.policies)) or "none"
                raise AgentConfigError(
                    f"task {task.name} has no scripted policy {self.policy!r} (it has: {known})"
                )

    async def act(self, prompt: Prompt) -> Completion:
        # Policies read the live task state; they never see the rendered prompt. A policy that needs
        # a resource (a chess engine) may be async and return an awaitable.
        text = prompt.task.policies[self.policy](prompt.task, prompt.rng)
        if inspect.isawaitable(text):
            text = await text
        return Completion(text=text)
