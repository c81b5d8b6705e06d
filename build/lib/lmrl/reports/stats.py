"""Small statistics helpers with no SciPy dependency."""

from __future__ import annotations

import math
from collections.abc import Sequence

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
