"""Small statistics helpers (no numpy needed for the numbers in the table)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation; None if empty."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ys against xs; None with fewer than 3 points."""
    n = len(xs)
    if n < 3 or n != len(ys):
        return None
    mx = sum(xs) / n
    my = sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def lag_summary(lags_s: Sequence[float]) -> dict[str, float | None]:
    """Median, 95th, 99th percentile and max of lags, in milliseconds."""

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000.0, 1)

    return {
        "lag_median_ms": ms(percentile(lags_s, 50)),
        "lag_p95_ms": ms(percentile(lags_s, 95)),
        "lag_p99_ms": ms(percentile(lags_s, 99)),
        "lag_max_ms": ms(max(lags_s) if lags_s else None),
    }
