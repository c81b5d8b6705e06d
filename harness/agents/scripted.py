"""``scripted/<policy>``: the task's own built-in policies (random, optimal, behavior, ...)."""

from __future__ import annotations

import inspect

from lmrl.agents.base import Agent, AgentConfigError, Completion
from lmrl.task import Policy, Prompt, Task


class ScriptedAgent(Agent):
    takes_options = frozenset()  # a policy reads the task state; nothing to sample or send

    def __init__(self, policy: str, function: Policy | None = None) -> None:
        """``policy`` names one of the task's built-in policies; or pass ``function`` (any ``Policy``),
        with ``policy`` as its name, to play a policy the task does not list (measurements, tests)."""
        if not policy:
            raise AgentConfigError("scripted agent needs a policy name, e.g. scripted/optimal")
        self.policy = policy
        self.function = function
        self.spec = f"scripted/{policy}"

    def check_tasks(self, tasks: list[type[Task]]) -> None:
        if self.function is not None:
            return
        for task in tasks:
            if self.policy not in task.policies:
                known = ", ".join(sorted(task.policies)) or "none"
                raise AgentConfigError(
                    f"task {task.name} has no scripted policy {self.policy!r} (it has: {known})"
                )

    async def act(self, prompt: Prompt) -> Completion:
        # Policies read the live task state; they never see the rendered prompt. A policy that needs
        # a resource (a chess engine) may be async and return an awaitable.
        policy = self.function or prompt.task.policies[self.policy]
        text = policy(prompt.task, prompt.rng)
        if inspect.isawaitable(text):
            text = await text
        return Completion(text=text)
