"""The per task x model table of ``lmrl show`` (and of training evaluations): a wide view of the same
tidy metrics that ``summary.csv`` and the HTML report hold (one computation, several views)."""

from __future__ import annotations

import pandas as pd

from lmrl.reports.metrics import compute_metrics, wide
from lmrl.reports.stats import N_BOOT

SUMMARY_COLUMNS = [
    "task",
    "model",
    "episodes",
    "errors",
    "truncated",
    "cut_by_max_turns",
    "mean_return",
    "ci95",
    "ci_low",
    "ci_high",
    "normalized",
    "normalized_low",
    "normalized_high",
    "success_rate",
    "invalid_rate",
    "mean_turns",
    "turns_to_solve",
    "tokens",
    "cost_usd",
]


def summarize(
    frame: pd.DataFrame,
    anchors: dict[str, dict[str, float]],
    seed: int = 0,
    n_boot: int = N_BOOT,
    tidy: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (task, model). Errored episodes are counted (``errors``) but left out of every
    statistic; ``ci95`` is the half-width of the bootstrap 95% interval of the mean return.

    ``anchors`` maps task -> {"min", "avg", "max"}; ``normalized`` is the paper's score of the mean return.
    ``tidy`` (from ``compute_metrics``) is used as is when given, so that a caller computes once.
    """
    if tidy is None:
        tidy = compute_metrics(frame, anchors, seed, n_boot)
    table = wide(tidy)
    if table.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    table = table.rename(
        columns={"errored": "errors", "mean_return_low": "ci_low", "mean_return_high": "ci_high"}
    )
    table["ci95"] = (table["ci_high"] - table["ci_low"]) / 2
    table["tokens"] = table["tokens_in"] + table["tokens_out"]
    table["cost_usd"] = table["cost_usd_total"]
    for column in ("episodes", "errors", "truncated", "cut_by_max_turns", "tokens"):
        table[column] = table[column].astype("int64")
    for column in SUMMARY_COLUMNS:
        if column not in table:
            table[column] = float("nan")
    judges = [
        c
        for c in table.columns
        if c.startswith(("judge:", "judge_failures:")) and not c.endswith(("_low", "_high"))
    ]
    return table[SUMMARY_COLUMNS + sorted(judges)]
