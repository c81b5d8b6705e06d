"""Statistics with no SciPy dependency: t intervals, seeded (cluster) bootstrap intervals and a paired
randomization test."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

# Two-sided 95% Student-t quantiles for 1..30 degrees of freedom; beyond that a series in 1/df.
_T95 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


def t95(df: int) -> float:
    if df < 1:
        return math.nan
    if df <= len(_T95):
        return _T95[df - 1]
    z = 1.959964
    # Cornish-Fisher expansion of the t quantile; error < 1e-3 for df > 30.
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t interval); half-width is NaN for fewer than 2 values."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, t95(n - 1) * math.sqrt(var / n)


# --- bootstrap (numpy, vectorized) -------------------------------------------------------------------

N_BOOT = 2000  # resamples per interval: percentile bounds stable to ~0.1 of a standard error


def stable_seed(seed: int, *parts: str) -> int:
    """A seed for one interval that depends on what it is about, not on the order intervals are computed
    in (adding a model to a report leaves every other interval unchanged)."""
    return (seed * 1_000_003 + zlib.crc32("\x1f".join(parts).encode())) % 2**32


def cluster_indices(n_clusters: int, rng: np.random.Generator, n_boot: int = N_BOOT) -> np.ndarray:
    """(n_boot, n_clusters) indices of clusters drawn with replacement: one resample per row."""
    return rng.integers(0, n_clusters, size=(n_boot, n_clusters), dtype=np.int32)


def bootstrap_ratio(
    sums: np.ndarray, counts: np.ndarray, indices: np.ndarray, level: float = 0.95
) -> tuple[float, float, float]:
    """(estimate, low, high): percentile bootstrap of sum(sums) / sum(counts) over resampled clusters.

    A cluster is a seed (all epochs of one episode) or one episode; ``sums``/``counts`` are per cluster.
    With counts = episodes per cluster this is the mean per episode; with counts = turns it is a rate
    per turn (invalid actions). Resampling whole clusters keeps epochs of one seed together, so
    repeated epochs do not pass for independent evidence."""
    sums = np.asarray(sums, dtype=float)
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if len(sums) == 0 or total == 0:
        return math.nan, math.nan, math.nan
    estimate = float(sums.sum() / total)
    if len(sums) < 2:
        return estimate, math.nan, math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = sums[indices].sum(axis=1) / counts[indices].sum(axis=1)
    resampled = resampled[np.isfinite(resampled)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return estimate, float(low), float(high)


def bootstrap_mean(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence[Any] | np.ndarray | None = None,
    seed: int = 0,
    n_boot: int = N_BOOT,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """(mean, low, high) of ``values``, resampling ``clusters`` (e.g. seeds) when given, else values."""
    values = np.asarray(values, dtype=float)
    sums, counts = cluster_sums(values, clusters)
    rng = np.random.default_rng(seed)
    return bootstrap_ratio(sums, counts, cluster_indices(len(sums), rng, n_boot), level)


def cluster_sums(
    values: np.ndarray, clusters: Sequence[Any] | np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums and counts of ``values`` (each value its own cluster when ``clusters`` is None)."""
    values = np.asarray(values, dtype=float)
    if clusters is None:
        return values, np.ones_like(values)
    codes, _ = pd.factorize(pd.Series(clusters), sort=False)
    return np.bincount(codes, weights=values), np.bincount(codes).astype(float)


def sign_flip_test(
    differences: np.ndarray, clusters: np.ndarray | None = None, seed: int = 0, n_perm: int = 10_000
) -> float:
    """Two-sided p-value of a paired randomization test: under "no difference" each pair's (or each
    seed's) difference is as likely to be +d as -d. Exact in small samples, no normality assumed."""
    sums, _ = cluster_sums(np.asarray(differences, dtype=float), clusters)
    if len(sums) == 0:
        return math.nan
    observed = abs(sums.sum())
    if observed == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    count, done = 0, 0
    for start in range(0, n_perm, 2000):  # chunks bound the memory for many clusters
        size = min(2000, n_perm - start)
        # one random bit per sign: 8 signs from each random byte
        bits = np.unpackbits(rng.integers(0, 256, size=(size, (len(sums) + 7) // 8), dtype=np.uint8), axis=1)
        signs = bits[:, : len(sums)].astype(np.float64) * 2 - 1
        count += int((np.abs(signs @ sums) >= observed - 1e-9 * max(1.0, observed)).sum())
        done += size
    return (count + 1) / (done + 1)  # the observed labelling counts as one permutation
