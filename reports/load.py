"""Load run directories and ``lmrl train`` output directories into frames, streaming.

A run directory holds ``manifest.json`` and ``episodes.jsonl``; a training output directory holds
``train_log.jsonl`` and, when it was evaluated, ``evals/step-N/run`` and ``evals/final`` run
directories. Episodes are read one line at a time and only their rows are kept (the turns are read
again, page by page, when transcripts are written), so 100k episodes stay within memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lmrl.episode import Episode
from lmrl.reports.frames import episode_row, flatten, settle, typed_episodes
from lmrl.rundir import EPISODES, JUDGES, MANIFEST, PROMPTS, read_jsonl

TRAIN_LOG = "train_log.jsonl"


class ReportInputError(ValueError):
    """A path that is neither a run nor a training output, or one that cannot be read: one line."""


@dataclass
class RunInfo:
    path: Path
    run_id: str
    manifest: dict[str, Any]
    planned: int | None  # episodes the run's configuration asks for
    finished: int = 0
    errors: int = 0
    training: Path | None = None  # the training output directory this run evaluates, if any
    damaged: list[int] = field(default_factory=list)  # 0-based lines of episodes.jsonl that are not episodes

    @property
    def partial(self) -> bool:
        return self.planned is not None and self.finished < self.planned


@dataclass
class TrainInfo:
    path: Path
    config: dict[str, Any]
    log: pd.DataFrame  # train_log.jsonl, one row per record, eval results as eval.* columns
    steps: list[tuple[int, int]] = field(default_factory=list)  # (step, index into Loaded.runs)


@dataclass
class Loaded:
    episodes: pd.DataFrame  # one row per episode; ``model`` is the display label, ``agent`` the spec
    runs: list[RunInfo]
    training: list[TrainInfo]
    anchors: dict[str, dict[str, float]]
    prompts: dict[str, str]  # prompt id -> system prompt (chat) or header (text)


def iter_records(
    path: Path, damaged: list[int] | None = None, key: bool = True
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for every complete line of a JSON-lines log that holds a JSON object (with a
    ``key``: an episode, unless ``key`` is false); a torn last line (a run still being written, or a
    crash mid-write) is left out silently, any other line is skipped and its number added to ``damaged``."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for number, line in enumerate(handle):
            if not line.endswith(b"\n"):
                return
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict) and (not key or isinstance(record.get("key"), str)):
                yield number, record
            elif damaged is not None:
                damaged.append(number)


def kind_of(path: Path) -> str:
    """``run`` or ``train``; anything else is a ReportInputError."""
    if (path / MANIFEST).is_file():
        return "run"
    if (path / TRAIN_LOG).is_file():
        return "train"
    if not path.exists():
        raise ReportInputError(f"{path} is not an lmrl run directory: it does not exist")
    raise ReportInputError(
        f"{path} is not an lmrl run directory (no {MANIFEST}) nor an lmrl train output (no {TRAIN_LOG})"
    )


def load(paths: list[Path]) -> Loaded:
    """Every run (and every training output's evaluation runs) of ``paths``, in one set of frames."""
    runs: list[RunInfo] = []
    training: list[TrainInfo] = []
    rows: list[dict[str, Any]] = []
    for path in paths:
        if kind_of(path) == "run":
            _load_run(path, None, runs, rows)
            continue
        info = _load_training(path)
        training.append(info)
        found = _eval_runs(path)
        for step, run_dir in found:
            info.steps.append((step, len(runs)))
            # the training's result in the leaderboard: its final evaluation (offline), or the evaluation
            # of its last round (online, --eval-every); the rest feed the learning curves only
            final = run_dir.name == "final" or (run_dir.name == "eval" and run_dir == found[-1][1])
            _load_run(run_dir, path, runs, rows, final)
    episodes = typed_episodes(rows)
    for column, kind in (("run", "int64"), ("line", "int64"), ("step_eval", bool)):
        episodes[column] = episodes[column].astype(kind) if column in episodes else pd.Series(dtype=kind)
    episodes["agent"] = episodes["model"]
    episodes["model"] = _labels(episodes, runs)
    anchors: dict[str, dict[str, float]] = {}
    prompts: dict[str, str] = {}
    for run in runs:
        for task, facts in run.manifest.get("tasks", {}).items():
            if facts.get("anchors"):
                anchors.setdefault(task, facts["anchors"])
        ledger = run.path / PROMPTS
        if ledger.exists():
            # a damaged ledger only costs the transcripts their system prompt
            with contextlib.suppress(ValueError, KeyError, AttributeError):
                ledger_prompts = json.loads(ledger.read_text())["prompts"]
                prompts.update({k: v.get("text", "") for k, v in ledger_prompts.items()})
    return Loaded(episodes, runs, training, anchors, prompts)


def _load_run(
    path: Path,
    training: Path | None,
    runs: list[RunInfo],
    rows: list[dict[str, Any]],
    final: bool = False,
) -> None:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise ReportInputError(f"{path / MANIFEST} cannot be read: {error}") from None
    config = manifest.get("config", {})
    try:
        planned = len(config["tasks"]) * len(config["models"]) * config["episodes"] * config.get("epochs", 1)
    except (KeyError, TypeError):
        planned = None
    run = RunInfo(path, manifest.get("run_id") or path.name, manifest, planned, training=training)
    number = len(runs)
    runs.append(run)
    rescored: dict[str, list[dict[str, Any]]] = {}
    for score in read_jsonl(path / JUDGES):  # `lmrl score` results, merged when the episode is unchanged
        rescored.setdefault(score.get("key", ""), []).append(score)
    latest: dict[str, int] = {}  # key -> position in rows: a later record for a key replaces the earlier
    try:
        for line, record in iter_records(path / EPISODES, run.damaged):
            # The row needs the turns only for their invalid reasons: building Turn objects for every
            # turn is most of the loading time, so schema-2 records are read without them.
            turns = record.get("turns") or []
            full = record.get("schema_version", 1) < 2 or record.get("key") in rescored
            try:
                episode = Episode.from_dict(record if full else {**record, "turns": []})
            except (TypeError, ValueError, KeyError, AttributeError) as error:
                if "newer than this lmrl" in str(error):
                    raise ReportInputError(f"{path / EPISODES} line {line + 1}: {error}") from None
                run.damaged.append(line)  # a record that is not an episode: skipped, counted, warned of
                continue
            if episode.key in rescored:
                digest = episode.content_hash()
                for score in rescored[episode.key]:
                    if score.get("content_hash") == digest:
                        episode.judges[score["judge"]] = score["entry"]
            reasons = None if full else [t.get("invalid_reason") for t in turns if t.get("invalid")]
            row = episode_row(episode, reasons)
            row["run"], row["line"] = number, line
            row["step_eval"] = training is not None and not final
            if episode.key in latest:
                rows[latest[episode.key]] = row
            else:
                latest[episode.key] = len(rows)
                rows.append(row)
    except OSError as error:
        raise ReportInputError(f"{path / EPISODES} cannot be read: {error.strerror or error}") from None
    run.finished = len(latest)
    run.errors = sum(1 for i in latest.values() if rows[i]["errored"])


def _load_training(path: Path) -> TrainInfo:
    records = [r for _, r in iter_records(path / TRAIN_LOG, key=False)]
    log = pd.DataFrame([flatten(r, "") for r in records])
    for column in log.columns:
        log[column] = settle(log[column])
    if "step" not in log and "round" in log:  # online training logs a record per round
        log["step"] = log["round"] + 1
    config: dict[str, Any] = {}
    if (path / "train_config.json").exists():
        try:
            config = json.loads((path / "train_config.json").read_text())
        except ValueError:
            config = {}
    return TrainInfo(path, config, log)


def _eval_runs(path: Path) -> list[tuple[int, Path]]:
    """(step, run directory) of a training output's evaluations, in step order; the final one last. For
    online training the step is the round: rollouts of round R were played after R updates, its
    evaluation after R + 1."""
    found: list[tuple[int, Path]] = []
    evals = path / "evals"
    if evals.is_dir():
        for child in evals.iterdir():
            match = re.fullmatch(r"step-(\d+)", child.name)
            if match and (child / "run" / MANIFEST).is_file():
                found.append((int(match.group(1)), child / "run"))
    # Online training: each round's evaluation (--eval-every) if it has one, else its rollouts, at the
    # number of rounds done when they were played.
    for child in (path / "rounds").iterdir() if (path / "rounds").is_dir() else []:
        match = re.fullmatch(r"round-(\d+)", child.name)
        played = next((child / name for name in ("eval", "run") if (child / name / MANIFEST).is_file()), None)
        if match and played is not None:
            found.append((int(match.group(1)) + (played.name == "eval"), played))
    found.sort()
    if (evals / "final" / MANIFEST).is_file():
        last = [r for _, r in iter_records(path / TRAIN_LOG, key=False) if "checkpoint" in r]
        step = int(last[-1]["step"]) if last else (found[-1][0] + 1 if found else 0)
        found.append((step, evals / "final"))
    return found


def short_spec(spec: str) -> str:
    """``local/<absolute path>`` -> ``local/<path relative to here>`` (or its last two parts)."""
    if not spec.startswith("local/") or not os.path.isabs(spec[6:]):
        return spec
    target = Path(spec[6:])
    try:
        return "local/" + str(target.relative_to(Path.cwd()))
    except ValueError:
        return "local/" + "/".join(target.parts[-2:])


def _labels(episodes: pd.DataFrame, runs: list[RunInfo]) -> pd.Series:
    """Display names: the agent spec, shortened; a spec played on one task in several runs (different
    settings, seeds or checkpoints) is told apart by its run, so that no two conditions are pooled."""
    labels = episodes["agent"].map(short_spec)
    if episodes.empty:
        return labels
    clash = episodes.groupby(["task", "agent"])["run"].transform("nunique") > 1
    names = [run.path.name if not run.training else f"{run.training.name}/{run.path.name}" for run in runs]
    runs_of = episodes["run"].tolist()
    return pd.Series(
        [f"{label} [{names[r]}]" if c else label for label, r, c in zip(labels, runs_of, clash, strict=True)],
        index=episodes.index,
        dtype=object,
    )
