"""Paired comparisons: two models on the episodes they share (same task, index, epoch and seed).

Unshared episodes never enter: a difference is only taken between two plays of the same episode, so
the comparison is free of the between-episode variance that dominates unpaired means. The interval is
a seeded bootstrap of the mean difference (resampling episode indices, all epochs of one together, when
there are epochs), the p-value a paired sign-flip randomization test over the same units.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from lmrl.reports.stats import N_BOOT, bootstrap_mean, sign_flip_test, stable_seed

PAIRED_COLUMNS = [
    "task",
    "model_a",
    "model_b",
    "shared",
    "mean_a",
    "mean_b",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "a_better",
    "ties",
    "b_better",
]
EPISODE_ID = ["index", "epoch", "seed"]


def shared_episodes(frame: pd.DataFrame, task: str, model_a: str, model_b: str) -> pd.DataFrame:
    """The episodes of ``task`` both models finished without error, one row each, side by side."""
    ok = frame[(frame["task"] == task) & ~frame["errored"]]
    if "step_eval" in ok:
        ok = ok[~ok["step_eval"]]
    a = ok.loc[ok["model"] == model_a, [*EPISODE_ID, "return"]]
    b = ok.loc[ok["model"] == model_b, [*EPISODE_ID, "return"]]
    return a.merge(b, on=EPISODE_ID, how="inner", suffixes=("_a", "_b"))


def paired_comparisons(frame: pd.DataFrame, seed: int = 0, n_boot: int = N_BOOT) -> pd.DataFrame:
    """Every pair of models of every task that share at least one episode."""
    rows: list[dict[str, Any]] = []
    ok = frame[~frame["errored"]]
    if "step_eval" in ok:
        ok = ok[~ok["step_eval"]]
    for task, group in ok.groupby("task", sort=True):
        # episodes x models, once per task; a pair is then two columns with both values present
        returns = group.pivot_table(index=EPISODE_ID, columns="model", values="return", aggfunc="first")
        for model_a, model_b in itertools.combinations(sorted(returns.columns), 2):
            both = returns[[model_a, model_b]].dropna()
            if both.empty:
                continue
            pairs = both.set_axis(["return_a", "return_b"], axis=1).reset_index()
            rows.append(compare(pairs, str(task), model_a, model_b, seed, n_boot))
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def compare(
    pairs: pd.DataFrame, task: str, model_a: str, model_b: str, seed: int = 0, n_boot: int = N_BOOT
) -> dict[str, Any]:
    diff = (pairs["return_a"] - pairs["return_b"]).to_numpy(dtype=float)
    clusters = pairs["index"].to_numpy() if pairs["epoch"].nunique() > 1 else None
    stat_seed = stable_seed(seed, task, model_a, model_b)
    mean, low, high = bootstrap_mean(diff, clusters, seed=stat_seed, n_boot=n_boot)
    return {
        "task": task,
        "model_a": model_a,
        "model_b": model_b,
        "shared": len(pairs),
        "mean_a": float(pairs["return_a"].mean()),
        "mean_b": float(pairs["return_b"].mean()),
        "diff": mean,
        "ci_low": low,
        "ci_high": high,
        "p_value": sign_flip_test(diff, clusters, seed=stat_seed) if len(diff) else math.nan,
        "a_better": int(np.sum(diff > 0)),
        "ties": int(np.sum(diff == 0)),
        "b_better": int(np.sum(diff < 0)),
    }
