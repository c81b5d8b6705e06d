"""The one episode loop: ``rollout`` plays one episode of a task with its agents and returns the
``Episode``. The runner, scripted-policy measurements, the tiny-model builder, the tests and (later)
training all call it, so they all see the same episodes.

    episode = await rollout("maze-fo", make_agent("scripted/optimal"), seed=7, index=3)

Seeds: the task's randomness comes from ``seed`` (``Task.reset``), the agent's own stream
(``Prompt.rng``, used by scripted policies) from ``agent_rng(seed)``, the partners' from
``Task.attach_partners``; none depends on another, so an episode is a pure function of
(task, agents, seed, index).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from lmrl.cache import episode_scope
from lmrl.episode import Episode, Turn, episode_key
from lmrl.parsing import Invalid
from lmrl.secrets import one_line
from lmrl.task import Policy, Prompt, Segment, Task, action_of

if TYPE_CHECKING:
    from lmrl.agents.base import Agent
    from lmrl.judges.base import Judge


T = TypeVar("T")


def derive_seed(run_seed: int, task: str, index: int, epoch: int) -> int:
    """A stable 63-bit seed per episode; the model is not part of it, so all models face the same episodes."""
    digest = hashlib.blake2b(f"{run_seed}/{task}/{index}/{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def agent_rng(seed: int) -> random.Random:
    """The agent's own random stream for an episode, independent of the task's."""
    return random.Random(seed ^ 0x5EED)


class BudgetReached(BaseException):
    """The run's money is spent: the episode stops where it is and is not logged (a BaseException, so
    that no "one broken episode never stops the run" handler swallows it)."""


class Budget:
    """What a run may spend (USD, agent + partners + judges), shared by its episodes: checked before
    every agent and partner call, charged after. ``spent`` starts at what earlier invocations spent."""

    def __init__(self, limit: float | None, spent: float = 0.0) -> None:
        self.limit, self.spent = limit, spent

    @property
    def reached(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def check(self) -> None:
        if self.reached:
            raise BudgetReached

    def charge(self, cost_usd: float) -> None:
        self.spent += cost_usd


async def rollout(
    task: Task | str,
    agents: Agent | Mapping[str, Agent],
    seed: int,
    index: int = 0,
    *,
    style: str = "chat",
    max_turns: int | None = None,
    judges: list[Judge] | None = None,
    run_id: str = "",
    epoch: int = 0,
    key: str | None = None,
    model_id: str | None = None,
    prompts: dict[str, str] | None = None,
    agent_seed: int | None = None,
    budget: Budget | None = None,
    max_episode_tokens: int | None = None,
    max_episode_seconds: float | None = None,
) -> Episode:
    """Play one episode to its end and return it. Never raises for task, agent or judge failures:
    they land in ``Episode.error`` (turns so far kept).

    ``task``: a task instance (fresh, for this episode) or a registered name. ``agents``: the agent, or
    a mapping of role -> agent with ``"agent"`` and one entry per partner role of the task (roles
    left out get the task's default partner). The task's own end terminates the episode; its step cap
    or ``max_turns`` truncates it (``Episode.truncated``). ``prompts``, when given, collects the
    system prompt (chat) or header (text) the episode showed, by ``Episode.prompt_id``. ``agent_seed``
    seeds the agent's own stream when it should differ from the task's (replays of one start).
    ``budget``: the run's money, checked before every call (``BudgetReached`` ends the episode
    unlogged). ``max_episode_tokens`` (agent tokens in + out) and ``max_episode_seconds`` cut an
    episode short: truncated, ``info.cut_by`` naming the limit."""
    if isinstance(task, str):
        from lmrl.tasks import make_task

        task = make_task(task)
    roles = dict(agents) if isinstance(agents, Mapping) else {"agent": agents}
    agent = roles.pop("agent")
    partners = roles
    owned: list[Agent] = []
    if task.roles and set(task.roles) - set(partners):
        from lmrl.agents import make_agent

        for role in set(task.roles) - set(partners):
            partners[role] = make_agent(task.roles[role])
            owned.append(partners[role])
    episode = Episode(
        run_id=run_id,
        key=key or episode_key(task.name, model_id or agent.spec, index, epoch),
        task=task.name,
        task_version=task.version,
        index=index,
        epoch=epoch,
        seed=seed,
        models={"agent": agent.spec, **{role: a.spec for role, a in partners.items()}},
        started_at=time.time(),
    )
    started = time.perf_counter()
    task.budget = budget
    limits = (max_episode_tokens, max_episode_seconds)
    with episode_scope(seed, epoch) as cached:  # with --cache, model calls are keyed on this episode
        try:
            with anyio.move_on_after(max_episode_seconds or float("inf")) as clock:
                await _play(
                    task, agent, partners, seed, index, style, max_turns, episode, prompts, agent_seed, limits
                )  # fmt: skip
            if clock.cancelled_caught and not episode.error:  # out of time mid-call: the turns so far stand
                _cut(episode, "max_episode_seconds")
                if not episode.final_observation and episode.turns:
                    episode.final_observation = episode.turns[-1].observation
        finally:
            with anyio.CancelScope(shield=True):
                for partner in owned:
                    with contextlib.suppress(Exception):
                        await partner.aclose()
        if judges and episode.error is None:
            from lmrl.judges import score_episode

            await score_episode(episode, judges)
            if budget is not None:
                budget.charge(sum(float(j.get("cost_usd") or 0.0) for j in episode.judges.values()))
    if cached is not None and cached.hits:
        episode.info["cache_hits"] = cached.hits
    episode.wall_s = time.perf_counter() - started
    return episode


async def _play(
    task: Task,
    agent: Agent,
    partners: dict[str, Agent],
    seed: int,
    index: int,
    style: str,
    max_turns: int | None,
    episode: Episode,
    prompts: dict[str, str] | None,
    agent_seed: int | None = None,
    limits: tuple[int | None, float | None] = (None, None),
) -> None:
    rng = agent_rng(seed if agent_seed is None else agent_seed)
    try:
        if task.roles:
            task.attach_partners(partners, seed)
        observation = task.reset(seed, index)
        history = [Segment("observation", observation)]
        # What frames every turn, by id; the runner keeps each distinct text once (prompts.json).
        text = task.system_prompt() if style == "chat" else task.text_header
        episode.prompt_id = hashlib.sha256(text.encode()).hexdigest()[:16]
        if prompts is not None:
            prompts[episode.prompt_id] = text
        cap = task.max_steps if max_turns is None else min(task.max_steps, max_turns)
        budget: Budget | None = getattr(task, "budget", None)
        for turn in range(1, cap + 1):
            if budget is not None:
                budget.check()
            completion = await agent.act(Prompt(task, history, style, rng))  # type: ignore[arg-type]
            if budget is not None:
                budget.charge(completion.cost_usd)
            parsed = task.parse(completion.text)
            action = action_of(parsed)
            result = await task.astep(action)
            reason = parsed.reason if isinstance(parsed, Invalid) else result.invalid_reason
            if reason is None and result.invalid:
                reason = "not-allowed"
            # The loop's own cap cuts an episode the task did not end: truncated, as a time limit.
            truncated = result.truncated or (turn == cap and not result.done)
            episode.add_turn(
                Turn(
                    observation=observation,
                    raw_output=completion.text,
                    action=action,
                    invalid=action is None or result.invalid,
                    invalid_reason=reason,
                    invalid_detail=parsed.detail if isinstance(parsed, Invalid) else "",
                    reward=result.reward,
                    done=result.terminated or truncated,
                    terminated=result.terminated,
                    truncated=truncated,
                    info=result.info,
                    tokens_in=completion.tokens_in,
                    tokens_out=completion.tokens_out,
                    cost_usd=completion.cost_usd,
                    latency_s=completion.latency_s,
                    token_ids=completion.token_ids,
                    logprobs=completion.logprobs,
                )
            )
            observation = result.observation
            if truncated and not result.done and cap < task.max_steps:
                # Cut below the task's own cap (``max_turns``): a partial return, not the protocol's.
                episode.info["cut_by"] = "max_turns"
            if result.done or truncated:
                break
            if limits[0] is not None and episode.tokens_in + episode.tokens_out >= limits[0]:
                episode.final_observation = observation
                _cut(episode, "max_episode_tokens")
                break
            history += next_segments(task, episode.turns[-1], observation)
        episode.final_observation = observation
        episode.success = task.success
        episode.info = {**task.episode_info(), **episode.info}
    except Exception as error:  # one broken episode never stops the run
        episode.error = one_line(error)
        with contextlib.suppress(Exception):
            episode.info = task.episode_info()
    finally:
        episode.role_usage = getattr(task, "role_usage", {})
        with anyio.CancelScope(shield=True):
            try:
                await task.aclose()
            except Exception as error:
                episode.error = episode.error or one_line(error)


def _cut(episode: Episode, limit: str) -> None:
    """End an episode the task did not end at a per-episode limit: truncated, the limit named."""
    episode.truncated, episode.terminated = True, False
    if episode.turns:
        last = episode.turns[-1]
        last.truncated, last.done = True, True
    episode.info["cut_by"] = limit


def next_segments(task: Task, turn: Turn, observation: str) -> list[Segment]:
    """What a turn adds to the history the agent sees next: its action (the raw reply when it was not
    understood) and the next observation, with the one-line note after an invalid reply."""
    text = turn.action if turn.action is not None else turn.raw_output.strip()
    note = task.invalid_note(turn.invalid_reason, turn.invalid_detail) if turn.invalid_reason else None
    return [Segment("action", text, raw=turn.raw_output), Segment("observation", observation, note=note)]


def episode_history(task: Task, episode: Episode) -> list[Segment]:
    """The whole history of a finished episode as the agent saw it, ending with the final observation
    (``task.render(history, style)`` gives the prompts; training reads episodes the same way)."""
    history = [Segment("observation", episode.turns[0].observation if episode.turns else "")]
    for i, turn in enumerate(episode.turns):
        following = (
            episode.turns[i + 1].observation if i + 1 < len(episode.turns) else episode.final_observation
        )
        history += next_segments(task, turn, following)
    return history


def play_policy(
    task: Task | str, policy: str | Policy, seeds: list[tuple[int, int]], **options: Any
) -> list[Episode]:
    """Play a scripted ``policy`` (a built-in name or a ``Policy`` function) for each (seed, index) in
    one event loop (measurements and tests); a fresh task per episode when ``task`` is a name, else
    ``task`` is reused (reset each time)."""
    from lmrl.agents import ScriptedAgent

    if isinstance(policy, str):
        agent = ScriptedAgent(policy)
    else:
        agent = ScriptedAgent(getattr(policy, "__name__", "custom"), function=policy)

    async def play_all() -> list[Episode]:
        return [await rollout(task, agent, seed, index, **options) for seed, index in seeds]

    return run_sync(play_all)


def run_sync(function: Callable[[], Awaitable[T]]) -> T:
    """``anyio.run(function)``, also from code that an event loop is already running (a test, a
    notebook): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop here: the usual case
        return anyio.run(function)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, function).result()


def episode_stats(episodes: list[Episode]) -> dict[str, float]:
    """Success rate, mean and std of the return and of the length (population std, as the paper's
    dataset tables): what policy measurements report."""
    returns = [e.return_ for e in episodes]
    lengths = [e.length for e in episodes]
    return {
        "episodes": len(episodes),
        "success": sum(e.success for e in episodes) / len(episodes),
        "mean_return": statistics.fmean(returns),
        "std_return": statistics.pstdev(returns),
        "mean_length": statistics.fmean(lengths),
        "std_length": statistics.pstdev(lengths),
    }
