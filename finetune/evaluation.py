"""Evaluating a checkpoint during training: the harness plays it (same runner, same tasks) into an
ordinary run directory, on seeds the training data never used; and the training log as a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class RunInterrupted(KeyboardInterrupt):
    """A run the harness stopped before its last episode (SIGTERM): what it played is saved and a rerun
    resumes it, but its scores are not the run's and training must not go on from them. It ends a
    command as Ctrl-C does (``lmrl train`` exits 130)."""


def play_all(config: Any) -> Any:
    """Play a ``RunConfig`` to its end and return the ``RunResult``; ``RunInterrupted`` when the run
    stopped early, so that no caller scores or trains on part of a run as if it were all of it."""
    from lmrl.rollout import run_sync
    from lmrl.runner import Runner

    return require_complete(run_sync(Runner(config).run))


def require_complete(result: Any) -> Any:
    """The ``RunResult`` itself, or ``RunInterrupted`` when its run stopped before its last episode."""
    if not result.complete:
        raise RunInterrupted(
            f"{result.run_dir}: stopped after {result.skipped + result.finished} of {result.planned} episodes"
        )
    return result


def evaluate(
    checkpoint: Path,
    task: str,
    episodes: int,
    seed: int,
    run_dir: Path,
    style: str = "text",
    options: dict[str, Any] | None = None,
    task_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Mean return (95% CI), normalized score and success rate of ``local/<checkpoint>`` on ``episodes``
    episodes of ``task`` (in the ``style`` it was trained on, run seed ``seed``), played with the local
    agent ``options`` (``beta``, ``rerank``, ...) and the task's ``task_options``."""
    from lmrl.agents import AgentOptions
    from lmrl.reports import episodes_frame, summarize
    from lmrl.rundir import load_episodes, read_manifest
    from lmrl.runner import RunConfig

    spec = f"local/{checkpoint.resolve()}"
    config = RunConfig(
        out=run_dir, tasks=[task], models=[spec], episodes=episodes, concurrency=min(64, episodes),
        seed=seed, style=style, agent_options=AgentOptions(extra=dict(options or {})),
        task_options={task: dict(task_options)} if task_options else {},
    )  # fmt: skip
    play_all(config)
    manifest = read_manifest(run_dir)
    anchors = {name: t["anchors"] for name, t in manifest["tasks"].items()}
    row = summarize(episodes_frame(load_episodes(run_dir)), anchors).iloc[0]
    return {
        "episodes": int(row["episodes"]),
        "mean_return": float(row["mean_return"]),
        "ci95": float(row["ci95"]),
        "normalized": float(row["normalized"]),
        "success": float(row["success_rate"]),
        "run": str(run_dir),
    }


def plot_log(log_path: Path, png_path: Path) -> None:
    """Loss (left) and evaluation score (right) against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    losses = [(r["step"], r["loss"]) for r in records if "loss" in r]
    scores = [(r["step"], r["eval"]["normalized"]) for r in records if "eval" in r]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    if losses:
        left.plot(*zip(*losses, strict=True), color="tab:blue")
    left.set(xlabel="step", ylabel="loss", title="training loss")
    if scores:
        right.plot(*zip(*scores, strict=True), marker="o", color="tab:green")
    right.set(xlabel="step", ylabel="normalized score", title="evaluation")
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
