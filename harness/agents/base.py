"""The agent seam: ``await agent.act(prompt) -> Completion``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lmrl.task import Prompt, Task


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
    concurrency: int = 64  # calls in flight per endpoint at the start (API models: adaptive, see below)
    # API models share one limit per endpoint that grows while calls succeed and halves on 429, up to
    # this ceiling (None: 4x ``concurrency``); ``adaptive_concurrency=False`` keeps it at ``concurrency``.
    max_concurrency: int | None = None
    adaptive_concurrency: bool = True
    preflight: bool = True  # API endpoints: check the model is served before any episode
    extra: dict[str, Any] = field(default_factory=dict)

    def given(self) -> list[str]:
        """The options a user set (transport policy such as timeouts aside), by ``OPTION_FLAGS`` name."""
        names = [n for n in ("temperature", "max_tokens", "seed", "api_base") if getattr(self, n) is not None]
        for key, value in self.extra.items():
            if value is None or (key == "transport" and value == "auto") or key == "retry_base_delay":
                continue
            names += [f"provider.{k}" for k in value] if key == "provider" else [key]
        return names

    def describe(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "api_base": self.api_base,
            "request_timeout": self.request_timeout,
            "max_retries": self.max_retries,
            "concurrency": self.concurrency,
            "max_concurrency": self.max_concurrency,
            "adaptive_concurrency": self.adaptive_concurrency,
            **({"extra": self.extra} if self.extra else {}),
        }


# How each option is given on the command line, for error messages.
OPTION_FLAGS = {
    "temperature": "--temperature",
    "top_p": "--top-p",
    "max_tokens": "--max-tokens",
    "stop": "--stop",
    "seed": "--model-seed",
    "api_base": "--api-base",
    "transport": "--transport",
    "device": "--device",
    "dtype": "--dtype",
    "max_batch_size": "--max-batch-size",
}
GENERATION_OPTIONS = frozenset({"temperature", "top_p", "max_tokens", "stop", "seed"})


def option_flag(name: str) -> str:
    if name.startswith("provider."):
        return f"--model-option {name.removeprefix('provider.')}"
    return OPTION_FLAGS.get(name, f"--local-option {name}")


def check_options(options: AgentOptions, agents: list[Agent], who: str) -> None:
    """Every option the user set must be taken by at least one of ``agents``; otherwise one line.

    ``who`` names the agents in the message (``the evaluated models``, ``role oracle``, ...)."""
    for name in options.given():
        base = name.split(".", 1)[0]
        if not any(base in agent.takes_options for agent in agents):
            specs = ", ".join(agent.spec for agent in agents)
            raise AgentConfigError(
                f"{option_flag(name)} does not apply to {who} ({specs}): {_KIND_OPTIONS_HINT}"
            )


_KIND_OPTIONS_HINT = (
    "scripted policies take no options; API models take sampling options, --api-base, --transport "
    "and --model-option; local checkpoints take sampling options, --device, --dtype and --local-option"
)


class Agent(ABC):
    spec: str
    # The ``AgentOptions.given()`` names this kind of agent uses; anything else given is an error.
    takes_options: ClassVar[frozenset[str]] = frozenset()

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

    @classmethod
    async def close_shared(cls) -> None:
        """Release what all agents of this kind share (HTTP client pools); the runner calls it once
        per kind at the end of a run, on the run's event loop."""
        return None

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this agent (never a secret)."""
        return {"spec": self.spec}


# Keys of ``--role-option ROLE.KEY=VALUE`` / ``--judge-option NAME.KEY=VALUE`` that are fields of
# ``AgentOptions``; local-checkpoint keys go to ``extra`` and anything else is a provider extra.
_FIELDS = {
    "temperature",
    "max_tokens",
    "seed",
    "api_base",
    "timeout",
    "max_retries",
    "concurrency",
    "max_concurrency",
    "adaptive_concurrency",
}


def options_from_settings(settings: dict[str, Any], local_keys: tuple[str, ...] = ()) -> AgentOptions:
    """``AgentOptions`` from ``{key: value}`` as given on the command line (values already JSON-decoded
    where they could be), e.g. ``{"temperature": 0, "api_base": "http://...", "reasoning_effort": "low"}``."""
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    try:
        for key, value in settings.items():
            if key == "temperature":
                fields["temperature"] = _number(key, value, low=0.0)
            elif key == "max_tokens":
                fields["max_tokens"] = _integer(key, value, low=1)
            elif key in ("seed", "model_seed"):
                fields["seed"] = _integer(key, value, low=None)
            elif key == "api_base":
                fields["api_base"] = str(value)
            elif key in ("timeout", "request_timeout"):
                fields["request_timeout"] = _number(key, value, low=0.0)
            elif key == "max_retries":
                fields["max_retries"] = _integer(key, value, low=0)
            elif key in ("concurrency", "max_concurrency"):
                fields[key] = _integer(key, value, low=1)
            elif key == "adaptive_concurrency":
                fields[key] = _boolean(key, value)
            elif key == "top_p":
                extra["top_p"] = _number(key, value, low=0.0, high=1.0)
            elif key == "stop":
                extra["stop"] = [value] if isinstance(value, str) else [str(s) for s in value]
            elif key == "transport" or key in local_keys:
                extra[key] = value
            else:
                extra.setdefault("provider", {})[key] = value
    except (TypeError, ValueError) as error:
        raise AgentConfigError(str(error)) from None
    return AgentOptions(**fields, extra=extra)


def _number(name: str, value: Any, low: float | None, high: float | None = None) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(f"{name} must be in [{low}, {high if high is not None else 'inf'}], not {value!r}")
    return number


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes", "on"):
        return True
    if str(value).lower() in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def _integer(name: str, value: Any, low: int | None) -> int:
    number = _number(name, value, low=None)
    if not number.is_integer() or (low is not None and number < low):
        raise ValueError(f"{name} must be an integer{f' >= {low}' if low is not None else ''}, not {value!r}")
    return int(number)
