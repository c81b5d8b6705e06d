"""The concurrent episode runner.

Episodes are keyed ``task/model/index/epoch``; each key's seed is derived from the run seed, so a rerun
reproduces every episode. A fixed pool of ``concurrency`` workers pulls pending keys, plays them and
hands finished episodes to the durable log. A failing episode is logged with its error and the run
goes on; Ctrl-C cancels the workers and everything finished so far is already on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

if sys.version_info < (3, 11):  # anyio's dependency there
    from exceptiongroup import BaseExceptionGroup

import lmrl
from lmrl.agents import Agent, AgentOptions, make_agent
from lmrl.agents.base import check_options
from lmrl.agents.endpoint_limits import endpoint_limits
from lmrl.cache import CacheError, ResponseCache, use_cache
from lmrl.episode import Episode, episode_key
from lmrl.judges import Judge
from lmrl.rollout import Budget, BudgetReached, derive_seed, rollout
from lmrl.run_history import first_difference, generation_settings, record_invocation, spent
from lmrl.rundir import (
    EPISODES,
    LOCK,
    MANIFEST,
    PROMPTS,
    EpisodeLog,
    PromptLedger,
    RunDirError,
    RunLock,
    RunLockHeld,
    git_revision,
    read_manifest,
    read_records,
    repair_log,
    write_manifest,
)
from lmrl.task import STYLES, InvalidTaskOption, Task, TaskUnavailable
from lmrl.tasks import make_task, resolve_task, task_class, task_source


class RunConfigError(ValueError):
    """Bad run configuration; the CLI prints it as one line and exits 2."""


class BudgetSpent(RunConfigError):
    """The run has already spent its ``max_cost``: nothing is played (the CLI exits 3)."""


@dataclass
class RunConfig:
    out: Path
    tasks: list[str]
    models: list[str]
    episodes: int = 25
    epochs: int = 1
    concurrency: int = 32
    seed: int = 0
    style: str = "chat"
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    agent_options: AgentOptions = field(default_factory=AgentOptions)
    retry_errors: bool = False
    max_turns: int | None = None  # lower the tasks' own step caps (quick looks at expensive models)
    roles: dict[str, str] = field(default_factory=dict)  # partner role -> agent spec (else the default)
    # partner role -> its own options (endpoint, sampling); roles never inherit the agent's options.
    role_options: dict[str, AgentOptions] = field(default_factory=dict)
    command: list[str] | None = None  # the command line that made it, a --config file merged in
    # Every epoch replays epoch 0's start (the task's seed) with its own agent stream: the groups of
    # episodes sharing an initial state that group-baseline RL (GRPO/RLOO) compares.
    same_starts: bool = False
    cache: Path | None = None  # the response cache's directory (``--cache``); None: every call is made
    max_cost: float | None = None  # USD for the whole run (every invocation), agent + partners + judges
    max_episode_tokens: int | None = None  # agent tokens in + out; beyond, the episode is cut (truncated)
    max_episode_seconds: float | None = None  # wall time of one episode; beyond, it is cut (truncated)
    fail_on_error: float | None = None  # stop after N errored episodes (N >= 1) or a fraction above (0, 1)

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun into the same directory to continue rather than clash."""
        return {
            "seed": self.seed,
            "style": self.style,
            "task_options": {t: self.task_options.get(t, {}) for t in sorted(self.tasks)},
            "max_turns": self.max_turns,
            "roles": dict(sorted(self.roles.items())),
            **({"same_starts": True} if self.same_starts else {}),
        }


@dataclass
class RunResult:
    run_dir: Path
    planned: int
    skipped: int
    quarantined: int = 0  # lines of episodes.jsonl that were not episodes, moved aside on resume
    stopped_by: str | None = None  # the budget (--max-cost, --fail-on-error) that stopped the run early
    spent_usd: float = 0.0  # what this invocation spent (agent, partners, judges)
    finished: int = 0
    errors: int = 0
    wall_s: float = 0.0
    turns: int = 0

    @property
    def complete(self) -> bool:
        return self.skipped + self.finished == self.planned


@dataclass(frozen=True, slots=True)
class EpisodeSpec:
    task: str
    model: str
    index: int
    epoch: int
    seed: int
    agent_seed: int | None = None  # the agent's stream when it is not the task's (``same_starts``)

    @property
    def key(self) -> str:
        return episode_key(self.task, self.model, self.index, self.epoch)


MAX_PLANNED = 10_000_000  # episodes one run may plan: beyond, split the work into several runs


def planned_count(config: RunConfig) -> int:
    return config.episodes * config.epochs * len(config.tasks) * len(config.models)


def plan(config: RunConfig) -> list[EpisodeSpec]:
    return list(iter_plan(config))


def iter_plan(config: RunConfig) -> Iterator[EpisodeSpec]:
    """The run's episodes in order, made one at a time: a large run never holds its plan in memory."""
    if config.same_starts:
        yield from (
            EpisodeSpec(
                task,
                model,
                index,
                epoch,
                derive_seed(config.seed, task, index, 0),
                derive_seed(config.seed, task, index, epoch) if epoch else None,
            )  # fmt: skip
            for epoch in range(config.epochs)
            for index in range(config.episodes)
            for task in config.tasks
            for model in config.models
        )
        return
    yield from (
        EpisodeSpec(task, model, index, epoch, derive_seed(config.seed, task, index, epoch))
        for epoch in range(config.epochs)
        for index in range(config.episodes)
        for task in config.tasks
        for model in config.models
    )


def build_manifest(
    config: RunConfig,
    agents: dict[str, Agent],
    tasks: dict[str, Task],
    partners: dict[tuple[str, str], Agent] | None = None,
) -> dict[str, Any]:
    import importlib.metadata as md

    def version(dist: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    return {
        "run_id": config.out.name,
        "lmrl_version": lmrl.__version__,
        "git_revision": git_revision(),
        "created_at": time.time(),
        "python": platform.python_version(),
        "packages": {d: version(d) for d in ("litellm", "anyio", "torch", "transformers", "chess")},
        "identity": config.identity(),
        "command": config.command,
        "config": {
            "tasks": config.tasks,
            "models": config.models,
            "episodes": config.episodes,
            "epochs": config.epochs,
            "concurrency": config.concurrency,
            "seed": config.seed,
            "style": config.style,
            "max_turns": config.max_turns,
            "roles": config.roles,
        },
        "tasks": {
            name: {
                "version": task.version,
                "source": task_source(name),
                "description": task.description,
                "max_steps": task.max_steps,
                "options": task.options(),
                "anchors": {
                    "min": task.anchors.min,
                    "avg": task.anchors.avg,
                    "max": task.anchors.max,
                    "source": task.anchors.source,
                },
            }
            for name, task in tasks.items()
        },
        "models": {spec: agent.describe() for spec, agent in agents.items()},
        "roles": {f"{role}={spec}": agent.describe() for (role, spec), agent in (partners or {}).items()},
        # API endpoints' adaptive concurrency limits; the runner rewrites it with the history at the end
        "endpoint_limits": endpoint_limits([*agents.values(), *(partners or {}).values()]),
    }


class Runner:
    """Validates everything before touching disk, then plays the pending episodes."""

    cache: ResponseCache | None = None  # open while a run with ``config.cache`` plays (hit counts after)

    def __init__(self, config: RunConfig, judges: list[Judge] | None = None) -> None:
        self.config = config
        self.judges = judges or []
        self._validate()
        self.templates: dict[str, Task] = {}
        for name in config.tasks:
            try:
                self.templates[name] = make_task(name, **config.task_options.get(name, {}))
            except InvalidTaskOption as error:
                raise RunConfigError(str(error)) from None
        self.agents: dict[str, Agent] = {
            spec: make_agent(spec, config.agent_options, style=config.style) for spec in config.models
        }
        for agent in self.agents.values():
            agent.check_tasks([task_class(name) for name in config.tasks])
        check_options(config.agent_options, list(self.agents.values()), "the evaluated models")
        # One agent per (role, spec): each role gets its own concurrency limit and usage ledger.
        self.partner_agents: dict[tuple[str, str], Agent] = {}
        self.partners: dict[str, dict[str, Agent]] = {}
        declared = {role for name in config.tasks for role in task_class(name).roles}
        for flag, given in (("--role", config.roles), ("--role-option", config.role_options)):
            unknown = set(given) - declared
            if unknown:
                raise RunConfigError(
                    f"{flag} {sorted(unknown)[0]}: no task in this run has that role "
                    f"(roles here: {', '.join(sorted(declared)) or 'none'})"
                )
        for name in config.tasks:
            cls = task_class(name)
            self.partners[name] = {}
            for role, default in cls.roles.items():
                role_spec = config.roles.get(role, default)
                key = (role, role_spec)
                if key not in self.partner_agents:
                    options = config.role_options.get(role, AgentOptions())
                    self.partner_agents[key] = make_agent(role_spec, options, style="chat")
                    check_options(options, [self.partner_agents[key]], f"role {role}")
                partner = self.partner_agents[key]
                partner.check_tasks([cls])
                self.partners[name][role] = partner

    def _validate(self) -> None:
        c = self.config
        if not c.tasks:
            raise RunConfigError("no task given (--task NAME; `lmrl tasks` lists them)")
        if not c.models:
            raise RunConfigError("no model given (--model SPEC, e.g. scripted/optimal or openai/gpt-4o-mini)")
        try:  # names, or the user's own task files (path/to/my_task.py:MyTask), resolved to names
            c.tasks = [resolve_task(name) for name in c.tasks]
        except InvalidTaskOption as error:
            raise RunConfigError(str(error)) from None
        checks = [
            (c.episodes >= 1, f"--episodes must be at least 1 (got {c.episodes})"),
            (c.epochs >= 1, f"--epochs must be at least 1 (got {c.epochs})"),
            (c.max_cost is None or c.max_cost > 0, f"--max-cost must be positive (got {c.max_cost})"),
            (
                c.max_episode_tokens is None or c.max_episode_tokens >= 1,
                "--max-episode-tokens must be at least 1",
            ),
            (
                c.max_episode_seconds is None or c.max_episode_seconds > 0,
                "--max-episode-seconds must be positive",
            ),
            (c.fail_on_error is None or c.fail_on_error > 0, "--fail-on-error must be a count or a fraction"),
            (
                planned_count(c) <= MAX_PLANNED,
                f"this run would plan {planned_count(c):,} episodes (--episodes x --epochs x tasks x "
                f"models); one run takes at most {MAX_PLANNED:,}: split it into several runs",
            ),
            (c.concurrency >= 1, f"--concurrency must be at least 1 (got {c.concurrency})"),
            (c.style in STYLES, f"--style must be one of {', '.join(STYLES)} (got {c.style!r})"),
            (c.max_turns is None or c.max_turns >= 1, f"--max-turns must be at least 1 (got {c.max_turns})"),
            (len(set(c.tasks)) == len(c.tasks), "a task is given twice"),
            (len(set(c.models)) == len(c.models), "a model is given twice"),
        ]
        for ok, message in checks:
            if not ok:
                raise RunConfigError(message)
        if c.out.exists() and not c.out.is_dir():
            raise RunConfigError(f"--out {c.out} exists and is not a directory")
        # Nothing is written before every check passed, so find out now whether it could be.
        existing = c.out.absolute()
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise RunConfigError(
                f"--out {c.out}: cannot create or write it ({existing} is not a writable directory)"
            )

    def settings(self) -> dict[str, dict[str, Any]]:
        """Each model's settings in this invocation: its generation options and its partners'."""
        c = self.config
        roles = {role: generation_settings(c.role_options.get(role, AgentOptions())) for role in c.roles}
        roles.update({role: generation_settings(o) for role, o in c.role_options.items()})
        agent = generation_settings(c.agent_options)
        return {spec: {"agent": agent, **({"roles": roles} if roles else {})} for spec in c.models}

    def _check_settings(self, manifest: dict[str, Any]) -> None:
        """A model already in the run keeps the settings its episodes were played with."""
        recorded = manifest.get("settings", {})
        for spec, now in self.settings().items():
            before = recorded.get(spec, {}).get("settings")
            if before is None or before == now:
                continue
            where, old, new = first_difference(before, now)
            raise RunConfigError(
                f"{self.config.out} played {spec} with {where}={json.dumps(old)}, not {json.dumps(new)}; "
                "a run keeps one setting per model: use another --out for the new setting "
                "(lmrl report compares runs side by side)"
            )

    def _open_run_dir(self) -> set[str]:
        """Check an existing run directory is compatible; return the keys already finished."""
        out = self.config.out
        self._previous: dict[str, Any] = {}
        if not (out / "manifest.json").exists():
            if out.exists() and any(p.name != LOCK for p in out.iterdir()):
                raise RunConfigError(f"--out {out} is not empty and is not an lmrl run directory")
            return set()
        try:
            manifest = read_manifest(out)
        except RunDirError as error:
            raise RunConfigError(str(error)) from None
        if manifest.get("identity") != self.config.identity():
            raise RunConfigError(
                f"{out} holds a run with a different seed, style or task options; "
                "use another --out or the original settings"
            )
        self._check_settings(manifest)
        self._previous = manifest
        self._quarantined = repair_log(out / EPISODES).quarantined
        records = read_records(out / EPISODES)
        if self.config.retry_errors:
            return {r["key"] for r in records if not r.get("error")}
        return {r["key"] for r in records}

    async def run(
        self,
        on_progress: Callable[[Episode], None] | None = None,
        on_start: Callable[[int, int], None] | None = None,
    ) -> RunResult:
        for agent in self._all_agents():
            await agent.preflight()
        out = self.config.out
        created = not out.exists()
        lock = RunLock(out)
        try:
            lock.acquire()
        except RunLockHeld as error:
            raise RunConfigError(str(error)) from None
        try:
            return await self._run_locked(on_progress, on_start)
        except BaseExceptionGroup as group:  # a failed write (disk full) inside the task groups
            failed = _first_leaf(group, OSError)
            if failed is None:
                raise
            raise failed from None
        except RunConfigError:
            if created and not (out / MANIFEST).exists():  # refused before writing: leave nothing behind
                lock.release()
                shutil.rmtree(out, ignore_errors=True)
            raise
        finally:
            lock.release()

    async def _run_locked(
        self,
        on_progress: Callable[[Episode], None] | None,
        on_start: Callable[[int, int], None] | None,
    ) -> RunResult:
        self._quarantined = 0
        finished = self._open_run_dir()
        planned = planned_count(self.config)
        skipped = sum(1 for s in iter_plan(self.config) if s.key in finished) if finished else 0
        pending = (s for s in iter_plan(self.config) if s.key not in finished)
        result = RunResult(self.config.out, planned=planned, skipped=skipped)
        result.quarantined = self._quarantined
        spent_before = spent(getattr(self, "_previous", {}), read_records(self.config.out / EPISODES))
        if self.config.max_cost is not None and spent_before >= self.config.max_cost:
            raise BudgetSpent(
                f"{self.config.out} has spent ${spent_before:.4f} of --max-cost ${self.config.max_cost:g}; "
                "raise --max-cost to continue"
            )
        self.budget = Budget(self.config.max_cost, spent_before)
        started = time.perf_counter()
        try:
            async with contextlib.AsyncExitStack() as resources:
                # Shared task resources (engine pools) open before anything is written, so a missing
                # engine leaves no run directory behind; they close at the end, Ctrl-C included.
                shared: dict[str, Any] = {}
                for name in self.config.tasks:
                    opener = task_class(name).open_shared(self.config.task_options.get(name, {}))
                    try:
                        shared[name] = await resources.enter_async_context(opener)
                    except TaskUnavailable as error:
                        raise RunConfigError(str(error)) from None
                try:  # --cache: API calls found on disk make no request
                    self.cache = resources.enter_context(use_cache(self.config.cache))
                except CacheError as error:
                    raise RunConfigError(str(error)) from None
                manifest = build_manifest(self.config, self.agents, self.templates, self.partner_agents)
                manifest["judges"] = [judge.key for judge in self.judges]
                self._record_settings(manifest, result)
                write_manifest(self.config.out, manifest)
                if on_start:
                    on_start(result.planned, result.skipped)
                try:
                    await self._play(pending, shared, result, on_progress)
                finally:  # the limits' history is complete only now (Ctrl-C included); judges' too
                    manifest["endpoint_limits"] = endpoint_limits(self._all_agents())
                    result.spent_usd = self.budget.spent - spent_before
                    manifest["invocations"][-1].update(
                        spent_usd=result.spent_usd, stopped_by=result.stopped_by
                    )
                    write_manifest(self.config.out, manifest)
        finally:
            result.wall_s = time.perf_counter() - started
            with anyio.CancelScope(shield=True):
                for agent in self._all_agents():
                    await agent.aclose()
                for kind in {type(agent) for agent in self._all_agents()}:
                    await kind.close_shared()
        return result

    def _record_settings(self, manifest: dict[str, Any], result: RunResult) -> None:
        c = self.config
        invocation = {
            "command": c.command, "tasks": c.tasks, "models": c.models, "episodes": c.episodes,
            "epochs": c.epochs, "planned": result.planned, "already_finished": result.skipped,
            "quarantined": result.quarantined,
        }  # fmt: skip
        self.config_ids = record_invocation(
            manifest, getattr(self, "_previous", {}), self.settings(), invocation
        )

    def _all_agents(self) -> list[Agent]:
        judge_agents = [j.agent for j in self.judges if getattr(j, "agent", None) is not None]  # LLM judges
        return [*self.agents.values(), *self.partner_agents.values(), *judge_agents]

    async def _rollout(self, task: Task, spec: EpisodeSpec, shown: dict[str, str]) -> Episode:
        c = self.config
        return await rollout(
            task,
            {"agent": self.agents[spec.model], **self.partners[spec.task]},
            spec.seed,
            spec.index,
            style=c.style,
            max_turns=c.max_turns,
            judges=self.judges,
            run_id=c.out.name,
            epoch=spec.epoch,
            key=spec.key,
            prompts=shown,
            agent_seed=spec.agent_seed,
            budget=self.budget,
            max_episode_tokens=c.max_episode_tokens,
            max_episode_seconds=c.max_episode_seconds,
        )

    def _too_many_errors(self, result: RunResult) -> bool:
        """``--fail-on-error``: N errored episodes (N >= 1), or more than that fraction of the episodes
        played so far once at least 10 have finished (one early failure is not yet a rate)."""
        limit = self.config.fail_on_error
        if not limit or not result.errors:
            return False
        if limit >= 1:
            return result.errors >= limit
        return result.finished >= 10 and result.errors / result.finished > limit

    async def _play(
        self,
        pending: Iterator[EpisodeSpec],
        shared: dict[str, Any],
        result: RunResult,
        on_progress: Callable[[Episode], None] | None,
    ) -> None:
        log = EpisodeLog(self.config.out / EPISODES)
        queue: Iterator[EpisodeSpec] = iter(pending)

        ledger = PromptLedger(self.config.out / PROMPTS)

        async def worker(stop: anyio.CancelScope) -> None:
            for spec in queue:  # one shared iterator: each spec is taken by exactly one worker
                shown: dict[str, str] = {}
                task = make_task(spec.task, **self.config.task_options.get(spec.task, {}))
                task.shared = shared[spec.task]
                try:
                    episode = await self._rollout(task, spec, shown)
                except BudgetReached:  # unlogged: a rerun with a higher --max-cost plays it
                    result.stopped_by = result.stopped_by or (
                        f"--max-cost {self.config.max_cost:g}: ${self.budget.spent:.4f} spent"
                    )
                    stop.cancel()
                    return
                ledger.add(spec.task, spec.model, self.config.style, shown)
                episode.config_id = self.config_ids.get(spec.model)
                log.append(episode)
                result.finished += 1
                result.errors += episode.error is not None
                result.turns += episode.length
                if on_progress:
                    on_progress(episode)
                if self._too_many_errors(result):
                    result.stopped_by = result.stopped_by or (
                        f"--fail-on-error {self.config.fail_on_error:g}: {result.errors} of "
                        f"{result.finished} episodes ended with an error"
                    )
                    stop.cancel()
                    return
                # A scripted episode may never wait on anything: without this, one worker would play
                # every episode before the writer (or a SIGTERM's cancellation) got a turn.
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as outer:
            with _cancel_on_sigterm(outer.cancel_scope):
                outer.start_soon(log.run)
                async with anyio.create_task_group() as workers:
                    for _ in range(min(self.config.concurrency, max(result.planned - result.skipped, 1))):
                        workers.start_soon(worker, workers.cancel_scope)
                outer.cancel_scope.cancel()  # all played: stop the writer (it flushes)
        ledger.record_models({spec: agent.describe() for spec, agent in self.agents.items()})


@contextlib.contextmanager
def _cancel_on_sigterm(scope: anyio.CancelScope) -> Iterator[None]:
    """While the episodes play, SIGTERM cancels ``scope``: the workers stop, the writer flushes, and the
    run ends resumable. A plain Python handler swapped with the one before it (the CLI's, which raises
    KeyboardInterrupt): a signal at any moment meets one of the two, never the default action that an
    event loop's own signal handling restores when it lets go."""
    import asyncio
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread has handlers
        yield
        return
    loop = asyncio.get_running_loop()

    def cancel(signum: int, frame: Any) -> None:
        try:
            loop.call_soon_threadsafe(scope.cancel)
        except RuntimeError:  # the loop is closing: end like Ctrl-C instead
            raise KeyboardInterrupt from None

    previous = signal.signal(signal.SIGTERM, cancel)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _first_leaf(group: BaseExceptionGroup, kind: type[BaseException]) -> BaseException | None:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found = _first_leaf(error, kind)
            if found is not None:
                return found
        elif isinstance(error, kind):
            return error
    return None
