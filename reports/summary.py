"""The per task x model summary table behind ``lmrl show``."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from lmrl.reports.normalize import normalized_score
from lmrl.reports.stats import mean_ci95

SUMMARY_COLUMNS = [
    "task",
    "model",
    "episodes",
    "errors",
    "truncated",
    "cut_by_max_turns",
    "mean_return",
    "ci95",
    "normalized",
    "success_rate",
    "invalid_rate",
    "mean_turns",
    "tokens",
    "cost_usd",
]


def summarize(frame: pd.DataFrame, anchors: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row per (task, model). Errored episodes are counted but left out of every statistic.

    ``anchors`` maps task -> {"min", "avg", "max"}; ``normalized`` is the paper's score of the mean return.
    """
    rows: list[dict[str, Any]] = []
    judge_keys: set[str] = set()
    for (task, model), group in frame.groupby(["task", "model"], sort=True):
        ok = group[group["error"].isna()]
        mean, half = mean_ci95(ok["return"].tolist())
        a = anchors.get(task)
        turns = ok["length"].sum()
        # Episodes cut below the task's own cap (--max-turns) have partial returns: a normalized score
        # would flatter them. Truncation by the task's own cap (the maze's 100 moves) is the protocol.
        cut = int(ok["cut_by_max_turns"].sum())
        rows.append(
            {
                "task": task,
                "model": model,
                "episodes": len(ok),
                "errors": len(group) - len(ok),
                "mean_return": mean,
                "ci95": half,
                "truncated": int(ok["truncated"].sum()),
                "cut_by_max_turns": cut,
                "normalized": normalized_score(mean, a["min"], a["avg"], a["max"])
                if a and not cut
                else math.nan,
                "success_rate": ok["success"].mean() if len(ok) else math.nan,
                "invalid_rate": ok["invalid_count"].sum() / turns if turns else math.nan,
                "mean_turns": ok["length"].mean() if len(ok) else math.nan,
                "tokens": int(group["tokens_in"].sum() + group["tokens_out"].sum()),
                "cost_usd": float(group["cost_usd"].sum()),
                **_judge_means(ok["judges"], judge_keys),
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS + [f"judge:{k}" for k in sorted(judge_keys)])


def _judge_means(judges: pd.Series, seen: set[str]) -> dict[str, float]:
    """Mean score per judge over the episodes it scored (missing scores - judge errors - left out)."""
    scores: dict[str, list[float]] = {}
    for text in judges:
        for key, entry in json.loads(text or "{}").items():
            if entry.get("score") is not None:
                scores.setdefault(key, []).append(float(entry["score"]))
    seen.update(scores)
    return {f"judge:{key}": sum(v) / len(v) for key, v in scores.items()}
