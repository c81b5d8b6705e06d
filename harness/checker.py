"""``lmrl check-task``: does a task obey the contract? (Gymnasium's ``check_env``, for text tasks.)

Every check plays the task the way a run does (``rollout``, default partners, shared resources), so a
task that passes here behaves under the runner. The checks:

* ``class``: the required attributes (name, version, description, anchors, reward range, step cap)
  and methods, and an instance built with default options;
* ``anchors``: finite, min <= avg <= max, a source; the reward range ordered;
* ``answer format``: the system prompt states the final-line format once and its example parses;
* ``reset``: the same (seed, index) gives the same first observation on two fresh instances, and the
  same episode when a scripted policy plays it twice;
* ``invalid action``: an unparseable reply is an ``Invalid`` with a reason; stepping ``None`` is an
  invalid step with a reward in range;
* ``episodes``: every scripted policy plays a few episodes to an end (terminated or truncated within
  the step cap) with every reward within ``reward_range``; each valid action parses to itself;
* ``renderings``: ``chat`` gives the system prompt then alternating user/assistant messages, ``text``
  a non-empty string.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lmrl.agents import ScriptedAgent, make_agent
from lmrl.episode import Episode
from lmrl.parsing import Invalid
from lmrl.rollout import episode_history, rollout, run_sync
from lmrl.task import InvalidTaskOption, Task, TaskUnavailable, action_of
from lmrl.tasks import make_task, resolve_task, task_class

SEEDS = ((0, 0), (1, 3), (7, 11))
_OPTIONS: dict[str, Any] = {}  # the task options of the check in progress (one at a time)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


class _Failed(AssertionError):
    """A check's finding: its message is the one line shown to the user."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _Failed(message)


def check_task(spec: str, episodes: int = 3, options: dict[str, Any] | None = None) -> list[Check]:
    """Run every check on the task ``spec`` (a name or ``file.py[:Class]``) built with ``options``.
    Raises ``InvalidTaskOption`` (one line) when the task cannot even be loaded or built."""
    name = resolve_task(spec)
    return run_sync(lambda: _check_all(name, episodes, options or {}))


async def _check_all(name: str, episodes: int, options: dict[str, Any]) -> list[Check]:
    global _OPTIONS
    _OPTIONS = options
    cls = task_class(name)
    checks: list[Check] = []
    template = make_task(name, **options)  # raises InvalidTaskOption for a missing step cap
    checks.append(
        Check("class", True, f"{cls.__name__}, version {cls.version}, max_steps {template.max_steps}")
    )
    async with cls.open_shared(options) as shared:
        for check_name, check in (
            ("anchors", _anchors),
            ("answer format", _answer_format),
            ("reset", _reset),
            ("invalid action", _invalid_action),
            ("episodes", _episodes),
            ("renderings", _renderings),
        ):
            try:
                detail = await check(name, shared, episodes)
            except _Failed as finding:
                checks.append(Check(check_name, False, str(finding)))
            except (TaskUnavailable, InvalidTaskOption):
                raise
            except Exception as error:  # a crash inside the task is a failed check, with what crashed
                checks.append(Check(check_name, False, f"raised {type(error).__name__}: {error}"))
            else:
                checks.append(Check(check_name, True, detail))
    return checks


def _fresh(name: str, shared: Any) -> Task:
    task = make_task(name, **_OPTIONS)
    task.shared = shared
    return task


async def _ready(name: str, shared: Any, seed: int, index: int) -> tuple[Task, str, list[Any]]:
    """A task reset to (seed, index) with its default partners attached (close them afterwards)."""
    task = _fresh(name, shared)
    partners = {role: make_agent(spec) for role, spec in task.roles.items()}
    if partners:
        task.attach_partners(partners, seed)
    return task, task.reset(seed, index), list(partners.values())


async def _close(task: Task, partners: list[Any]) -> None:
    await task.aclose()
    for partner in partners:
        await partner.aclose()


async def _anchors(name: str, shared: Any, episodes: int) -> str:
    cls = task_class(name)
    a, (low, high) = cls.anchors, cls.reward_range
    values = (a.min, a.avg, a.max, low, high)
    _require(
        all(isinstance(v, int | float) and math.isfinite(v) for v in values),
        "anchors or reward range not finite",
    )
    _require(a.min <= a.avg <= a.max and a.min < a.max, f"anchors must be min <= avg <= max: {a}")
    _require(low <= high, f"reward_range must be (low, high): {cls.reward_range}")
    _require(bool(a.source), "anchors need a source (where the numbers come from)")
    return f"{a.min:g} / {a.avg:g} / {a.max:g}; rewards in [{low:g}, {high:g}]"


async def _answer_format(name: str, shared: Any, episodes: int) -> str:
    task, _, partners = await _ready(name, shared, 0, 0)
    try:
        prompt, instruction = task.system_prompt(), task.final_line_instruction()
        _require(prompt.count(instruction) == 1, "the system prompt must state final_line_instruction() once")
        parsed = task.parse(task.answer_example)
        _require(isinstance(parsed, str), f"answer_example {task.answer_example!r} does not parse: {parsed}")
    finally:
        await _close(task, partners)
    return f"{task.answer_example!r} parses to {parsed!r}"


async def _reset(name: str, shared: Any, episodes: int) -> str:
    for seed, index in SEEDS:
        first, observation_a, partners_a = await _ready(name, shared, seed, index)
        second, observation_b, partners_b = await _ready(name, shared, seed, index)
        await _close(first, partners_a)
        await _close(second, partners_b)
        _require(observation_a == observation_b, f"reset({seed}, {index}) gave two different observations")
    cls = task_class(name)
    policies = sorted(cls.policies)
    if not cls.deterministic:
        return f"{len(SEEDS)} (seed, index) pairs; replay not compared ({cls.__name__} is not deterministic)"
    if policies:
        seed, index = SEEDS[1]
        a = await _play(name, shared, policies[0], seed, index)
        b = await _play(name, shared, policies[0], seed, index)
        _require(
            _comparable(a) == _comparable(b),
            f"policy {policies[0]} played ({seed}, {index}) differently twice",
        )
    return f"{len(SEEDS)} (seed, index) pairs" + (f"; {policies[0]} replays identically" if policies else "")


def _comparable(episode: Episode) -> dict[str, Any]:
    record = episode.to_dict()
    for volatile in ("started_at", "wall_s"):
        record.pop(volatile)
    for turn in record["turns"]:
        turn.pop("latency_s")
    return record


async def _invalid_action(name: str, shared: Any, episodes: int) -> str:
    task, _, partners = await _ready(name, shared, 0, 0)
    try:
        for reply in ("", "  \n "):  # free-text tasks accept almost anything, but never nothing
            parsed = task.parse(reply)
            _require(isinstance(parsed, Invalid), f"parse({reply!r}) should be Invalid, got {parsed!r}")
        result = await task.astep(action_of(task.parse("")))
        low, high = task.reward_range
        _require(result.invalid, "stepping an unparseable reply (None) must be an invalid step")
        _require(
            low <= result.reward <= high, f"invalid step reward {result.reward} outside {task.reward_range}"
        )
        _require(isinstance(result.observation, str), "the observation must be text")
    finally:
        await _close(task, partners)
    return f"reward {result.reward:g}, reason {task.parse('').reason}"


class _ParseBack(ScriptedAgent):
    """A scripted agent that also checks, in the state where it acts, that the action its reply
    parses to parses to itself (what a model sees as the action it took reads back the same)."""

    def __init__(self, policy: str) -> None:
        super().__init__(policy)
        self.problems: list[str] = []

    async def act(self, prompt: Any) -> Any:
        completion = await super().act(prompt)
        parsed = prompt.task.parse(completion.text)
        if isinstance(parsed, str) and prompt.task.parse(parsed) != parsed:
            self.problems.append(f"action {parsed!r} parses to {prompt.task.parse(parsed)!r}, not itself")
        return completion


async def _play(name: str, shared: Any, policy: str, seed: int, index: int) -> Episode:
    agent = _ParseBack(policy)
    episode = await rollout(_fresh(name, shared), agent, seed, index)
    _require(episode.error is None, f"{policy} episode ({seed}, {index}) failed: {episode.error}")
    _require(not agent.problems, "; ".join(agent.problems[:2]))
    return episode


async def _episodes(name: str, shared: Any, episodes: int) -> str:
    cls = task_class(name)
    low, high = cls.reward_range
    played = 0
    for policy in sorted(cls.policies):
        for seed, index in SEEDS[:episodes]:
            episode = await _play(name, shared, policy, seed, index)
            played += 1
            last = episode.turns[-1] if episode.turns else None
            _require(last is not None and last.done, f"{policy} ({seed}, {index}) did not end")
            _require(episode.terminated != episode.truncated, f"{policy}: an episode ends one way, not both")
            for turn in episode.turns:
                _require(
                    low <= turn.reward <= high, f"{policy}: reward {turn.reward} outside {cls.reward_range}"
                )
    _require(played > 0 or not cls.policies, "no episode played")
    return f"{played} episodes of {', '.join(sorted(cls.policies)) or 'no policy'}"


async def _renderings(name: str, shared: Any, episodes: int) -> str:
    policies = sorted(task_class(name).policies)
    if not policies:
        return "skipped (no scripted policy to make a history)"
    task = _fresh(name, shared)
    episode = await rollout(task, ScriptedAgent(policies[0]), 1, 3, max_turns=3)
    _require(episode.error is None, f"episode failed: {episode.error}")
    history = episode_history(task, episode)
    chat = task.render(history, "chat")
    _require(
        isinstance(chat, list) and chat and chat[0]["role"] == "system", "chat must start with the system"
    )
    roles = [m["role"] for m in chat[1:]]
    _require(
        roles[0] == "user" and all(a != b for a, b in zip(roles, roles[1:], strict=False)),
        "chat roles must alternate",
    )
    text = task.render(history, "text")
    _require(isinstance(text, str) and text.strip(), "text rendering must be a non-empty string")
    return f"chat {len(chat)} messages, text {len(text)} characters"
