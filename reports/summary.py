"""The per task x model summary table behind ``lmrl show``."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from reports.normalize import normalized_score
from reports.stats import mean_ci95

SUMMARY_COLUMNS = [
    "task",
    "model",
    "episodes",
    "errors",
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
    for (task, model), group in frame.groupby(["task", "model"], sort=True):
        ok = group[group["error"].isna()]
        mean, half = mean_ci95(ok["return"].tolist())
        a = anchors.get(task)
        turns = ok["length"].sum()
        rows.append(
            {
                "task": task,
                "model": model,
                "episodes": len(ok),
                "errors": len(group) - len(ok),
                "mean_return": mean,
                "ci95": half,
                "normalized": normalized_score(mean, a["min"], a["avg"], a["max"]) if a else math.nan,
                "success_rate": ok["success"].mean() if len(ok) else math.nan,
                "invalid_rate": ok["invalid_count"].sum() / turns if turns else math.nan,
                "mean_turns": ok["length"].mean() if len(ok) else math.nan,
                "tokens": int(group["tokens_in"].sum() + group["tokens_out"].sum()),
                "cost_usd": float(group["cost_usd"].sum()),
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
