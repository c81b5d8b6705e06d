"""The task contract every environment obeys (Gymnasium-like, text in and text out).

A ``Task`` instance is one episode's environment: ``reset(seed, index)`` starts it and returns the
first observation, ``step(action)`` applies an already-parsed action. Tasks draw randomness only from
``self.rng`` (seeded at reset), never from the global ``random`` module, so an episode is a pure
function of its seed and index. Tasks with partners (an oracle, a buyer, an engine) override
``astep``; the runner always calls ``astep``.
"""

from __future__ import annotations

import contextlib
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal

from lmrl.parsing import Invalid, Parsed

Style = Literal["chat", "text"]
STYLES: tuple[str, ...] = ("chat", "text")


@dataclass(frozen=True, slots=True)
class Anchors:
    """Normalization anchors (paper App. E): min return -> 0, dataset average -> 50, max -> 100."""

    min: float
    avg: float
    max: float
    source: str


@dataclass(slots=True)
class StepResult:
    """What one ``step`` gives back. As in Gymnasium, an episode ends in one of two ways:
    ``terminated`` (the task's own end: goal reached, game won or lost, a decision made) or
    ``truncated`` (cut by a step cap that is not part of the state, e.g. the maze's 100 moves), which
    matters to training: values bootstrap after a truncation, never after a termination."""

    observation: str
    reward: float
    terminated: bool
    invalid: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    # Why the task refused a parsed action ("illegal", "not-allowed", ...), told to the agent next turn.
    invalid_reason: str | None = None
    truncated: bool = False

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of the history: written by the environment (``observation``) or the agent (``action``)."""

    kind: Literal["observation", "action"]
    text: str
    raw: str | None = None  # for actions: the agent's full output, which chat-style history shows back
    # For observations after an invalid reply: one line telling the agent why (chat style shows it).
    note: str | None = None


class InvalidTaskOption(ValueError):
    """A task option has a bad name or value; the CLI turns this into a one-line error."""


class TaskUnavailable(RuntimeError):
    """The task cannot run on this machine (e.g. no chess engine); the message says how to fix it."""


def action_of(parsed: Parsed | None) -> str | None:
    """What ``step`` takes: the action, or ``None`` for a reply that was not understood."""
    return parsed if isinstance(parsed, str) else None


# A scripted policy looks at the live task (read-only) and returns the raw text it would "say"
# (or an awaitable of it, for policies that consult an engine or a partner).
Policy = Callable[[Any, random.Random], Any]


class Task(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str]
    anchors: ClassVar[Anchors]
    reward_range: ClassVar[tuple[float, float]]
    roles: ClassVar[dict[str, str]] = {}  # partner role -> default agent spec
    policies: ClassVar[dict[str, Policy]] = {}
    # How many past segments each style shows (None = all). The paper's text policies saw a window.
    text_window: ClassVar[int | None] = None
    chat_window: ClassVar[int | None] = None
    text_header: ClassVar[str] = ""
    # The final line a reply must end with, as an example (``Action: move up``); system prompts state
    # it through ``final_line_instruction`` and invalid replies are reminded of it.
    answer_example: ClassVar[str] = "Action: ..."
    # Whether an episode is a pure function of (seed, index, the agents' replies). False for tasks
    # whose partner is not (a chess engine searching for a fixed time); `lmrl check-task` then skips
    # the replay check and says why.
    deterministic: ClassVar[bool] = True

    max_steps: int
    rng: random.Random
    # What ``open_shared`` yielded, set by the runner before ``reset``; ``None`` when used standalone.
    shared: Any = None
    # role -> the agent filling it, set by the runner (``attach_partners``) before ``reset``.
    partners: dict[str, Any]
    # role -> {"calls", "tokens_in", "tokens_out", "cost_usd", "latency_s"}: what each partner cost.
    role_usage: dict[str, dict[str, float]]

    def __init__(self, **options: Any) -> None:
        if options:
            raise InvalidTaskOption(f"task {self.name} has no option(s) {', '.join(sorted(options))}")

    @classmethod
    def open_shared(cls, options: dict[str, Any]) -> contextlib.AbstractAsyncContextManager[Any]:
        """Resources shared by every episode of this task in one run (e.g. a pool of engine processes).

        The runner enters it once before the first episode and exits it when the run ends, Ctrl-C
        included; raise ``TaskUnavailable`` here when the machine lacks what the task needs.
        """
        return contextlib.nullcontext(None)

    # --- the environment -------------------------------------------------------------------------
    def reset(self, seed: int, index: int = 0) -> str:
        """Start episode ``index`` from ``seed``; return the first observation.

        The one place a task's randomness is seeded: ``self.rng`` is ready when ``setup`` runs, so an
        episode is a pure function of (seed, index)."""
        self.rng = random.Random(seed)
        return self.setup(index)

    @abstractmethod
    def setup(self, index: int) -> str:
        """Set up episode ``index`` (drawing any randomness from ``self.rng``); return the first
        observation."""

    @abstractmethod
    def step(self, action: str | None) -> StepResult:
        """Apply a parsed action (``None`` = the agent's output could not be parsed)."""

    async def astep(self, action: str | None) -> StepResult:
        return self.step(action)

    # --- partner roles ---------------------------------------------------------------------------
    def attach_partners(self, partners: dict[str, Any], seed: int) -> None:
        """Give the task the agents filling its roles (``lmrl.agents.Agent`` instances)."""
        missing = set(self.roles) - set(partners)
        if missing:
            raise ValueError(f"task {self.name} needs agents for role(s) {', '.join(sorted(missing))}")
        self.partners = partners
        empty = {"calls": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "latency_s": 0.0}
        self.role_usage = {role: dict(empty) for role in partners}
        self._partner_rng = random.Random(seed ^ 0xB0B)

    async def ask(self, role: str, messages: list[dict[str, str]], text: str | None = None) -> str:
        """One call to the partner filling ``role``: chat ``messages`` for model partners (``text`` for
        text-style ones); scripted partners read the task state instead. Usage lands in ``role_usage``."""
        prompt = Prompt(self, [], "chat", self._partner_rng, role, preset_messages=messages, preset_text=text)
        budget = getattr(self, "budget", None)  # the run's money (``lmrl.rollout.Budget``), if it has a cap
        if budget is not None:
            budget.check()
        completion = await self.partners[role].act(prompt)
        if budget is not None:
            budget.charge(completion.cost_usd)
        usage = self.role_usage[role]
        usage["calls"] += 1
        usage["tokens_in"] += completion.tokens_in
        usage["tokens_out"] += completion.tokens_out
        usage["cost_usd"] += completion.cost_usd
        usage["latency_s"] += completion.latency_s
        return completion.text

    @abstractmethod
    def parse(self, raw: str) -> Parsed:
        """The canonical action in free model output, or ``Invalid(reason)`` (``lmrl.parsing``)."""

    def candidate_actions(self) -> list[str] | None:
        """The whole action space now, when it is small and enumerable (maze's four moves): a
        value-guided local agent with ``rerank`` ranks these instead of generating. ``None``: open."""
        return None

    def final_line_instruction(self) -> str:
        """The answer format, worded the same way in every task's system prompt."""
        return f"End your reply with a final line of exactly this form:\n{self.answer_example}"

    def invalid_note(self, reason: str, detail: str = "") -> str:
        """One line for the agent after a reply that was not understood or not allowed."""
        why = Invalid(reason, detail).explain()
        return f"(Your last reply was not accepted: {why}. End with a line like: {self.answer_example})"

    @abstractmethod
    def system_prompt(self) -> str:
        """Rules and the exact action format, for chat-style (instruct / API) agents."""

    @property
    @abstractmethod
    def success(self) -> bool:
        """Whether the episode so far reached the task's objective."""

    def episode_info(self) -> dict[str, Any]:
        """Facts worth keeping on the episode record (start cell, secret word, ...)."""
        return {}

    def options(self) -> dict[str, Any]:
        """The options this instance was built with, for the run manifest."""
        return {}

    async def aclose(self) -> None:
        """Release per-episode resources (engines, partner sessions)."""
        return None

    # --- rendering -------------------------------------------------------------------------------
    def format_action(self, action: str) -> str:
        """How an action appears in a ``text``-style history (the paper spaces out some actions)."""
        return action

    def render(self, history: list[Segment], style: Style) -> list[dict[str, str]] | str:
        if style == "chat":
            shown = history if self.chat_window is None else history[-self.chat_window :]
            if shown and shown[0].kind == "action":
                shown = shown[1:]  # a chat must start with the user's turn
            messages = [{"role": "system", "content": self.system_prompt()}]
            messages += [
                {"role": "user", "content": f"{s.note}\n{s.text}" if s.note else s.text}
                if s.kind == "observation"
                else {"role": "assistant", "content": s.raw if s.raw is not None else s.text}
                for s in shown
            ]
            return messages
        shown = history if self.text_window is None else history[-self.text_window :]
        return self.text_header + "".join(
            (s.text if s.kind == "observation" else self.format_action(s.text)) + "\n" for s in shown
        )


@dataclass
class Prompt:
    """What an agent sees for one turn. Rendering is lazy: scripted agents never pay for it."""

    task: Task
    history: list[Segment]
    style: Style
    rng: random.Random
    role: str = "agent"
    # A prompt written by the task itself (a partner's instructions) instead of rendered from history.
    preset_messages: list[dict[str, str]] | None = None
    preset_text: str | None = None

    @cached_property
    def messages(self) -> list[dict[str, str]]:
        if self.preset_messages is not None:
            return self.preset_messages
        rendered = self.task.render(self.history, "chat")
        assert isinstance(rendered, list)
        return rendered

    @cached_property
    def text(self) -> str:
        if self.preset_text is not None:
            return self.preset_text
        if self.preset_messages is not None:
            return "\n".join(m["content"] for m in self.preset_messages)
        rendered = self.task.render(self.history, "text")
        assert isinstance(rendered, str)
        return rendered
