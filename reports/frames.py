"""Episode records -> tidy, typed pandas DataFrames: one row per episode, per turn, per judge score.

No JSON strings where a column fits: task facts (``info``) become ``info.<key>`` columns (nested keys
dotted), judge scores ``judge:<name>`` float columns (a judge that failed everywhere still has its
column, all NaN, and ``judge_failed:<name>`` says so), invalid actions ``invalid:<reason>`` counts and
partner costs ``cost_usd:<role>``. A value that has no single type across rows is written as text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from lmrl.episode import Episode

EPISODE_COLUMNS = [
    "run_id",
    "key",
    "task",
    "task_version",
    "model",
    "index",
    "epoch",
    "seed",
    "return",
    "success",
    "length",
    "terminated",
    "truncated",
    "cut_by_max_turns",
    "errored",
    "invalid_count",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "wall_s",
    "started_at",
    "error",
    "prompt_id",
]
_INT = ["index", "epoch", "seed", "length", "invalid_count", "tokens_in", "tokens_out"]
_BOOL = ["success", "terminated", "truncated", "cut_by_max_turns", "errored"]
_FLOAT = ["return", "cost_usd", "wall_s", "started_at"]


def _cut_v1(episode: Episode) -> bool:
    """Schema 1 marked only the loop's own cap, which (with the tasks' caps ending episodes themselves
    back then) means ``--max-turns``."""
    return episode.schema_version < 2 and bool(episode.info.get("truncated"))


def episode_row(episode: Episode, invalid_reasons: list[str | None] | None = None) -> dict[str, Any]:
    """One episode as a flat row (the turns summarized: invalid counts by reason). ``invalid_reasons``
    (one per invalid turn) stands in for the turns when the episode was read without them."""
    row: dict[str, Any] = {
        "run_id": episode.run_id,
        "key": episode.key,
        "task": episode.task,
        "task_version": episode.task_version,
        "model": episode.models.get("agent", ""),
        "index": episode.index,
        "epoch": episode.epoch,
        "seed": episode.seed,
        "return": float(episode.return_),
        "success": bool(episode.success),
        "length": episode.length,
        "terminated": bool(episode.terminated),
        # A failed episode stopped because of the failure, not a step cap: it is an error, not truncated.
        "truncated": bool(episode.truncated) and episode.error is None,
        "cut_by_max_turns": episode.error is None
        and (episode.info.get("cut_by") == "max_turns" or _cut_v1(episode)),
        "errored": episode.error is not None,
        "invalid_count": episode.invalid_count,
        "tokens_in": episode.tokens_in,
        "tokens_out": episode.tokens_out,
        "cost_usd": float(episode.cost_usd),
        "wall_s": float(episode.wall_s),
        "started_at": float(episode.started_at),
        "error": episode.error,
        "prompt_id": episode.prompt_id,
    }
    for role, spec in episode.models.items():
        if role != "agent":
            row[f"model:{role}"] = spec
    for role, usage in episode.role_usage.items():
        row[f"cost_usd:{role}"] = float(usage.get("cost_usd") or 0.0)
        row[f"tokens:{role}"] = int((usage.get("tokens_in") or 0) + (usage.get("tokens_out") or 0))
    if invalid_reasons is None:
        invalid_reasons = [turn.invalid_reason for turn in episode.turns if turn.invalid]
    for reason in invalid_reasons:
        name = f"invalid:{reason or 'unspecified'}"
        row[name] = row.get(name, 0) + 1
    for name, entry in episode.judges.items():
        score = entry.get("score")
        row[f"judge:{name}"] = math.nan if score is None else float(score)
        row[f"judge_failed:{name}"] = bool(entry.get("error"))
        if entry.get("cost_usd") is not None:  # judges that record their cost
            row[f"cost_usd:judge:{name}"] = float(entry["cost_usd"])
    row.update(flatten(episode.info, "info."))
    return row


def flatten(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Nested dicts -> dotted keys; lists stay lists (Parquet list columns)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _with_columns(rows: list[dict[str, Any]], fixed: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """``rows`` as a frame: the ``fixed`` columns first (added empty where no row has them), then the
    rows' other columns, sorted; returns the frame and those other columns."""
    frame = pd.DataFrame(rows)
    for column in fixed:
        if column not in frame:
            frame[column] = pd.Series(dtype=object)
    extra = sorted(c for c in frame.columns if c not in fixed)
    return frame[fixed + extra], extra


def episodes_frame(episodes: Iterable[Episode]) -> pd.DataFrame:
    return typed_episodes([episode_row(e) for e in episodes])


def typed_episodes(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows from ``episode_row`` -> the typed frame (dynamic columns filled where an episode lacks them)."""
    frame, extra = _with_columns(rows, EPISODE_COLUMNS)
    frame[_INT] = frame[_INT].fillna(0).astype("int64")
    frame[_BOOL] = frame[_BOOL].fillna(False).astype(bool)
    frame[_FLOAT] = frame[_FLOAT].astype(float)
    for column in extra:
        if column.startswith(("invalid:", "tokens:")):
            frame[column] = frame[column].fillna(0).astype("int64")
        elif column.startswith(("cost_usd:", "judge:")):
            frame[column] = frame[column].astype(float).fillna(0.0 if column.startswith("cost") else math.nan)
        elif column.startswith("judge_failed:"):
            frame[column] = frame[column].astype("boolean")  # NA: the judge did not apply
        else:
            frame[column] = settle(frame[column])
    return frame


def settle(column: pd.Series) -> pd.Series:
    """One type per column: numbers stay numbers (ints widen to floats), booleans stay booleans, lists
    of one scalar type stay lists; anything mixed becomes text (JSON for containers)."""
    kinds = {_kind(v) for v in column if v is not None and not (isinstance(v, float) and math.isnan(v))}
    if kinds <= {"bool"}:
        return column.astype("boolean") if kinds else column
    if kinds <= {"int", "float"}:
        if "float" in kinds:
            return column.astype(float)
        return column.astype("Int64" if column.isna().any() else "int64")  # NA where a task lacks the key
    if kinds <= {"str"}:
        return column
    if len(kinds) == 1 and next(iter(kinds)).startswith("list"):
        return column
    return column.map(_as_text)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        inner = {_kind(v) for v in value}
        if inner <= {"int"} or inner <= {"float", "int"} or inner <= {"str"} or inner <= {"bool"}:
            # empty lists join any list column; ints inside floats widen (Parquet takes either)
            return "list"
    return "other"


def _as_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


TURN_COLUMNS = [
    "run_id",
    "key",
    "task",
    "model",
    "index",
    "epoch",
    "seed",
    "turn",
    "observation",
    "raw_output",
    "action",
    "invalid",
    "invalid_reason",
    "invalid_detail",
    "reward",
    "done",
    "terminated",
    "truncated",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "latency_s",
]


def _ids(e: Episode) -> dict[str, Any]:
    """The columns that name an episode's row in the turns and judges frames."""
    return {"run_id": e.run_id, "key": e.key, "task": e.task, "model": e.models.get("agent", "")}


def turns_frame(episodes: Iterable[Episode]) -> pd.DataFrame:
    rows = [
        {
            **_ids(e),
            "index": e.index,
            "epoch": e.epoch,
            "seed": e.seed,
            "turn": i,
            "observation": t.observation,
            "raw_output": t.raw_output,
            "action": t.action,
            "invalid": bool(t.invalid),
            "invalid_reason": t.invalid_reason,
            "invalid_detail": t.invalid_detail,
            "reward": float(t.reward),
            "done": bool(t.done),
            "terminated": bool(t.terminated),
            "truncated": bool(t.truncated),
            "tokens_in": t.tokens_in,
            "tokens_out": t.tokens_out,
            "cost_usd": float(t.cost_usd),
            "latency_s": float(t.latency_s),
            **flatten(t.info, "info."),
        }
        for e in episodes
        for i, t in enumerate(e.turns)
    ]
    frame, extra = _with_columns(rows, TURN_COLUMNS)
    for column in extra:
        frame[column] = settle(frame[column])
    return frame


JUDGE_COLUMNS = [
    "run_id",
    "key",
    "task",
    "model",
    "judge",
    "judge_model",
    "score",
    "failed",
    "rationale",
    "error",
]


def judges_frame(episodes: Iterable[Episode]) -> pd.DataFrame:
    """One row per (episode, judge): the score, whether it failed, the rationale and the error."""
    rows = [
        {
            **_ids(e),
            "judge": name,
            "judge_model": entry.get("model"),
            "score": math.nan if entry.get("score") is None else float(entry["score"]),
            "failed": bool(entry.get("error")),
            "rationale": entry.get("rationale"),
            "error": entry.get("error"),
        }
        for e in episodes
        for name, entry in e.judges.items()
    ]
    return pd.DataFrame(rows, columns=JUDGE_COLUMNS)
