"""Per task x model metrics with seeded bootstrap 95% intervals: the one computation behind ``lmrl show``,
``summary.csv`` and the HTML leaderboard.

The result is tidy: one row per (task, model, metric) with ``value``, ``ci_low``, ``ci_high`` and ``n``
(episodes behind the value). Errored episodes are counted (``errored``) and left out of every
statistic; truncated ones are counted apart and kept (a step cap is part of the protocol). Intervals
resample episodes; when a run has several epochs they resample episode indices instead, all epochs of an
index together (an epoch replays the same item - maze start, secret word - under a fresh episode seed, so
its epochs are not independent evidence).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from lmrl.reports.normalize import normalized_score
from lmrl.reports.stats import N_BOOT, bootstrap_ratio, cluster_indices, cluster_sums, stable_seed

TIDY_COLUMNS = ["task", "model", "metric", "value", "ci_low", "ci_high", "n"]


def compute_metrics(
    frame: pd.DataFrame,
    anchors: dict[str, dict[str, float]],
    seed: int = 0,
    n_boot: int = N_BOOT,
) -> pd.DataFrame:
    """The tidy metrics table of an episodes frame (``reports.frames`` / ``reports.load``)."""
    rows: list[dict[str, Any]] = []
    if "step_eval" in frame:  # evaluations during training feed the learning curves only
        frame = frame[~frame["step_eval"]]
    for (task, model), group in frame.groupby(["task", "model"], sort=True):
        rows += _group_metrics(str(task), str(model), group, anchors.get(str(task)), seed, n_boot)
    return pd.DataFrame(rows, columns=TIDY_COLUMNS)


def _group_metrics(
    task: str,
    model: str,
    group: pd.DataFrame,
    anchor: dict[str, float] | None,
    seed: int,
    n_boot: int,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(metric: str, value: float, low: float = math.nan, high: float = math.nan, n: int = 0) -> None:
        rows.append(_metric_row(task, model, metric, value, low, high, n))

    ok = group[~group["errored"]]
    n = len(ok)
    clustered = ok["epoch"].nunique() > 1
    clusters = episode_clusters(ok) if clustered else None
    _, counts = cluster_sums(np.ones(n), clusters)
    rng = np.random.default_rng(stable_seed(seed, task, model))
    indices = cluster_indices(len(counts), rng, n_boot)

    def ci(values: pd.Series | np.ndarray, per: np.ndarray | None = None) -> tuple[float, float, float]:
        sums, _ = cluster_sums(np.asarray(values, dtype=float), clusters)
        return bootstrap_ratio(sums, counts if per is None else per, indices)

    add("episodes", n, n=n)
    add("errored", int(group["errored"].sum()), n=len(group))
    add("truncated", int(ok["truncated"].sum()), n=n)
    cut = int(ok["cut_by_max_turns"].sum())
    add("cut_by_max_turns", cut, n=n)
    add("clustered_by_index", float(clustered), n=n)
    mean, low, high = ci(ok["return"])
    add("mean_return", mean, low, high, n)
    # Normalization is increasing in the return, so the interval of the normalized mean is the
    # normalized interval of the mean. Episodes cut below the task's own cap (--max-turns) have partial
    # returns: a normalized score would flatter them, so there is none.
    if anchor and not cut and n:
        a = (anchor["min"], anchor["avg"], anchor["max"])
        add("normalized", *(normalized_score(v, *a) for v in (mean, low, high)), n)
    else:
        add("normalized", math.nan, n=n)
    add("success_rate", *ci(ok["success"]), n)
    turns_per_cluster = cluster_sums(ok["length"].to_numpy(dtype=float), clusters)[0]
    add("mean_turns", *ci(ok["length"]), n)
    add("invalid_rate", *ci(ok["invalid_count"], turns_per_cluster), n)
    for column in sorted(c for c in ok.columns if c.startswith("invalid:")):
        add(f"invalid_rate:{column[8:]}", *ci(ok[column], turns_per_cluster), n)
    solved = ok.loc[ok["success"], "length"].to_numpy(dtype=float)
    rows += _subset_rows(task, model, "turns_to_solve", solved, ok[ok["success"]], clustered, seed, n_boot)
    if len(solved):
        for q in (25, 50, 75):
            add(f"turns_to_solve_p{q}", float(np.percentile(solved, q)), n=len(solved))
    for column in sorted(c for c in ok.columns if c.startswith("judge:")):
        name = column[6:]
        failed = group.get(f"judge_failed:{name}")
        if failed is None or not failed.notna().any():
            continue  # the judge never applied to this task
        scored = ok[column].notna()
        rows += _subset_rows(task, model, column, ok.loc[scored, column], ok[scored], clustered, seed, n_boot)
        add(f"judge_failures:{name}", int(failed.fillna(False).sum()), n=len(group))
    # Money and tokens count every episode played, the failed ones too: they were paid for.
    add("tokens_in", int(group["tokens_in"].sum()), n=len(group))
    add("tokens_out", int(group["tokens_out"].sum()), n=len(group))
    add("cost_usd", float(group["cost_usd"].sum()), n=len(group))
    for column in sorted(c for c in group.columns if c.startswith(("cost_usd:", "tokens:"))):
        role = column.split(":", 1)[1]
        used = f"model:{role}" not in group or group[f"model:{role}"].notna().any()
        if used and not (role.startswith("judge:") and group[column].isna().all()):
            add(column, float(group[column].sum()), n=len(group))
    total = float(
        group["cost_usd"].sum() + sum(group[c].sum() for c in group.columns if c.startswith("cost_usd:"))
    )
    add("cost_usd_total", total, n=len(group))
    add("cost_usd_per_episode", total / len(group) if len(group) else math.nan, n=len(group))
    return rows


def _subset_rows(
    task: str,
    model: str,
    metric: str,
    values: Any,
    episodes: pd.DataFrame,
    clustered: bool,
    seed: int,
    n_boot: int,
) -> list[dict[str, Any]]:
    """Mean and interval of a metric defined on some episodes only (solved ones, judged ones)."""
    values = np.asarray(values, dtype=float)
    sums, counts = cluster_sums(values, episode_clusters(episodes) if clustered else None)
    rng = np.random.default_rng(stable_seed(seed, task, model, metric))
    value, low, high = bootstrap_ratio(sums, counts, cluster_indices(len(sums), rng, n_boot))
    return [_metric_row(task, model, metric, value, low, high, len(values))]


def _metric_row(
    task: str, model: str, metric: str, value: float, low: float, high: float, n: int
) -> dict[str, Any]:
    """One row of the tidy metrics table."""
    return {
        "task": task, "model": model, "metric": metric, "value": value, "ci_low": low, "ci_high": high,
        "n": n,
    }  # fmt: skip


def episode_clusters(episodes: pd.DataFrame) -> np.ndarray:
    """The cluster of each episode when epochs repeat indices: its run and index."""
    run = episodes["run"].to_numpy(dtype=np.int64) if "run" in episodes else 0
    return episodes["index"].to_numpy(dtype=np.int64) + run * (1 << 40)


def wide(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, model), one column per metric value (``<metric>_low``/``_high`` for bounds)."""
    if tidy.empty:
        return pd.DataFrame(columns=["task", "model"])
    values = tidy.pivot(index=["task", "model"], columns="metric", values="value")
    lows = tidy.pivot(index=["task", "model"], columns="metric", values="ci_low").add_suffix("_low")
    highs = tidy.pivot(index=["task", "model"], columns="metric", values="ci_high").add_suffix("_high")
    order = list(dict.fromkeys(tidy["metric"]))
    values = values[[m for m in order if m in values.columns]]
    return pd.concat([values, lows, highs], axis=1).reset_index()
