"""The agent seam: ``await agent.act(prompt) -> Completion``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from harness.task import Prompt, Task


class AgentConfigError(ValueError):
    """The agent spec or its options cannot work (unknown model, missing key, ...): one line for the user."""


@dataclass(slots=True)
class Completion:
    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """Options shared by every agent kind; each kind uses what applies to it."""

    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    api_base: str | None = None
    request_timeout: float = 120.0
    max_retries: int = 6
    concurrency: int = 64  # per model: at most this many calls in flight
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "api_base": self.api_base,
            "request_timeout": self.request_timeout,
            "max_retries": self.max_retries,
            "concurrency": self.concurrency,
            **({"extra": self.extra} if self.extra else {}),
        }


class Agent(ABC):
    spec: str

    @abstractmethod
    async def act(self, prompt: Prompt) -> Completion: ...

    def check_tasks(self, tasks: list[type[Task]]) -> None:
        """Raise ``AgentConfigError`` if this agent cannot play one of ``tasks``."""
        return None

    async def preflight(self) -> None:
        """Cheap checks before a run creates anything on disk (keys, reachability)."""
        return None

    async def aclose(self) -> None:
        """Release connections, processes or models."""
        return None

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this agent (never a secret)."""
        return {"spec": self.spec}
