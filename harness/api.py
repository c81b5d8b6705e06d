"""The Python entry points re-exported by ``import lmrl``: run an evaluation, play one episode, load a run.

They are the command line's jobs as functions: ``run`` is ``lmrl run`` (same run directory, same
resume), ``load_run`` reads what ``lmrl show`` reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lmrl.agents import AgentOptions, make_agent
from lmrl.agents.base import options_from_settings
from lmrl.episode import Episode
from lmrl.rollout import rollout, run_sync
from lmrl.runner import RunConfig, Runner, RunResult


def _options(value: AgentOptions | Mapping[str, Any] | None) -> AgentOptions:
    if value is None or isinstance(value, AgentOptions):
        return value or AgentOptions()
    from lmrl.agents.local_settings import LocalSettings

    return options_from_settings(dict(value), LocalSettings.KEYS)


def run(
    tasks: str | Sequence[str],
    models: str | Sequence[str],
    *,
    episodes: int = 25,
    out: str | Path | None = None,
    epochs: int = 1,
    concurrency: int = 32,
    seed: int = 0,
    style: str = "chat",
    max_turns: int | None = None,
    task_options: Mapping[str, Mapping[str, Any]] | None = None,
    options: AgentOptions | Mapping[str, Any] | None = None,
    roles: Mapping[str, str] | None = None,
    role_options: Mapping[str, AgentOptions | Mapping[str, Any]] | None = None,
    judges: Sequence[str] = (),
    judge_options: Mapping[str, AgentOptions | Mapping[str, Any]] | None = None,
) -> RunResult:
    """Play ``episodes`` indices of every task with every model into the run directory ``out``
    (resumed when it exists) and return the counts. ``options`` are the evaluated models' options
    (``{"temperature": 0, "api_base": ...}`` or an ``AgentOptions``); roles and judges take their own.
    Raises ``RunConfigError``/``AgentConfigError`` (one-line messages) for settings that cannot work."""
    from lmrl.judges import make_judge

    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    models = [models] if isinstance(models, str) else list(models)
    config = RunConfig(
        out=Path(out) if out is not None else Path("runs") / f"{'+'.join(tasks)}_s{seed}",
        tasks=tasks,
        models=models,
        episodes=episodes,
        epochs=epochs,
        concurrency=concurrency,
        seed=seed,
        style=style,
        max_turns=max_turns,
        task_options={name: dict(values) for name, values in (task_options or {}).items()},
        agent_options=_options(options),
        roles=dict(roles or {}),
        role_options={role: _options(value) for role, value in (role_options or {}).items()},
    )
    built = [
        make_judge(spec, _options((judge_options or {}).get(spec.partition("=")[0].strip())))
        for spec in judges
    ]
    return run_sync(Runner(config, built).run)


def play(
    task: str,
    agent: str,
    seed: int = 0,
    index: int = 0,
    *,
    style: str = "chat",
    max_turns: int | None = None,
    options: AgentOptions | Mapping[str, Any] | None = None,
    task_options: Mapping[str, Any] | None = None,
) -> Episode:
    """One episode of ``task`` with the agent spec ``agent`` (``scripted/optimal``, ``openai/...``,
    ``local/...``), synchronously; partners are the task's defaults. For more control, ``await
    lmrl.rollout(...)`` with agents of your own."""
    from lmrl.tasks import make_task

    built = make_agent(agent, _options(options), style=style)

    async def play_one() -> Episode:
        try:
            return await rollout(
                make_task(task, **dict(task_options or {})),
                built,
                seed,
                index,
                style=style,
                max_turns=max_turns,
            )
        finally:
            await built.aclose()

    return run_sync(play_one)


def load_run(run_dir: str | Path) -> list[Episode]:
    """Every episode of a run directory (judge scores from ``lmrl score`` merged in)."""
    from lmrl.rundir import load_episodes

    return load_episodes(Path(run_dir))
