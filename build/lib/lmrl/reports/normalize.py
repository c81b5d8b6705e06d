"""The paper's piecewise-linear normalization (LMRL-Gym App. E).

min possible return -> 0, dataset-average return -> 50, max return -> 100:
    raw >= avg:  50 + 50 * (raw - avg) / (max - avg)
    raw <  avg:  50 * (raw - min) / (avg - min)
Returns below ``min`` come out negative and above ``max`` exceed 100; we report them as they are.
"""

from __future__ import annotations

import math


def normalized_score(raw: float, minimum: float, average: float, maximum: float) -> float:
    if math.isnan(raw):
        return math.nan
    if raw >= average:
        return 50.0 + 50.0 * (raw - average) / (maximum - average)
    return 50.0 * (raw - minimum) / (average - minimum)
