"""Episode records -> pandas DataFrames (one row per episode, one row per turn)."""

from __future__ import annotations

import json
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
    "invalid_count",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "wall_s",
    "error",
    "judges",
    "info",
]


def _cut_v1(episode: Episode) -> bool:
    """Schema 1 marked only the loop's own cap, which (with the tasks' caps ending episodes themselves
    back then) means ``--max-turns``."""
    return episode.schema_version < 2 and bool(episode.info.get("truncated"))


def _row(episode: Episode) -> dict[str, Any]:
    return {
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
        "truncated": bool(episode.truncated),
        "cut_by_max_turns": episode.info.get("cut_by") == "max_turns" or _cut_v1(episode),
        "invalid_count": episode.invalid_count,
        "tokens_in": episode.tokens_in,
        "tokens_out": episode.tokens_out,
        "cost_usd": float(episode.cost_usd),
        "wall_s": float(episode.wall_s),
        "error": episode.error,
        "judges": json.dumps(episode.judges, sort_keys=True),
        "info": json.dumps(episode.info, sort_keys=True, default=str),
    }


def episodes_frame(episodes: Iterable[Episode]) -> pd.DataFrame:
    return pd.DataFrame([_row(e) for e in episodes], columns=EPISODE_COLUMNS)


def turns_frame(episodes: Iterable[Episode]) -> pd.DataFrame:
    rows = [
        {
            "key": e.key,
            "task": e.task,
            "model": e.models.get("agent", ""),
            "turn": i,
            "observation": t.observation,
            "raw_output": t.raw_output,
            "action": t.action,
            "invalid": t.invalid,
            "reward": float(t.reward),
            "done": t.done,
            "terminated": t.terminated,
            "truncated": t.truncated,
            "invalid_reason": t.invalid_reason,
            "tokens_in": t.tokens_in,
            "tokens_out": t.tokens_out,
            "cost_usd": float(t.cost_usd),
            "latency_s": float(t.latency_s),
            "info": json.dumps(t.info, sort_keys=True, default=str),
        }
        for e in episodes
        for i, t in enumerate(e.turns)
    ]
    return pd.DataFrame(rows)
