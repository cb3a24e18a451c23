"""NPS, CSAT and CES from a score histogram, with honest 95 % intervals (scoring-math.md).

Counts are additive, so storage keeps a histogram per (scale, score) and every metric is derived here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from pulse_shared.events import SurveyType, category_of, classify

Z95 = 1.959963984540054

#: (scale_min, scale_max, score) -> number of answers
Histogram = Mapping[tuple[int, int, int], int]


@dataclass(frozen=True)
class Metric:
    """One metric over one set of answers."""

    metric: SurveyType
    n: int
    value: float | None
    ci_low: float | None
    ci_high: float | None
    counts: dict[str, int] = field(default_factory=dict)
    #: Variance of one answer's contribution (for significance tests between windows); None when unknown.
    unit_variance: float | None = None
    #: The number of answers that variance is divided by (NPS: the adjusted n + 3); None: ``n``.
    variance_n: int | None = None


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def nps(hist: Histogram) -> Metric:
    """NPS in points, -100..100, with the adjusted-Wald 95 % interval.

    Each answer is +1 / 0 / -1, so variance = pP + pD - (pP - pD)^2 and SE = sqrt(variance / n). Used as is
    (the Wald interval) it claims certainty it does not have on small samples: one detractor gives
    [-100, -100]. The interval is the *adjusted-Wald* interval evaluated by Rocks (2016, "Interval
    estimation for the 'net promoter score'", The American Statistician 70(4)) and recommended by Sauro &
    Lewis (measuringu.com/nps-confidence-intervals): add 3/4 of a promoter, 3/4 of a detractor and 3/2 of a
    passive, so n' = n + 3, and compute the shares, the variance and the interval (centred on pP' - pD')
    with n'. The point estimate is the plain NPS. Changes between windows use the same variance and n'.
    """
    counts = {"promoters": 0, "passives": 0, "detractors": 0}
    for (lo, hi, score), k in hist.items():
        counts[classify("nps", score, lo, hi) + "s"] += k
    n = sum(counts.values())
    if n == 0:
        return Metric("nps", 0, None, None, None, counts)
    value = (counts["promoters"] - counts["detractors"]) / n
    n_adj = n + 3
    p_p, p_d = (counts["promoters"] + 0.75) / n_adj, (counts["detractors"] + 0.75) / n_adj
    centre = p_p - p_d
    variance = max(0.0, p_p + p_d - centre**2)
    half = Z95 * math.sqrt(variance / n_adj)
    return Metric(
        "nps", n, _round(100 * value), _round(max(-100.0, 100 * (centre - half))),
        _round(min(100.0, 100 * (centre + half))), counts, variance, n_adj,
    )


def csat(hist: Histogram) -> Metric:
    """CSAT in percent satisfied (top-2-box of each survey's scale) with a Wilson score interval."""
    counts = {"satisfied": 0, "neutral": 0, "dissatisfied": 0}
    for (lo, hi, score), k in hist.items():
        counts[classify("csat", score, lo, hi)] += k
    n = sum(counts.values())
    if n == 0:
        return Metric("csat", 0, None, None, None, counts)
    p = counts["satisfied"] / n
    low, high = wilson(p, n)
    return Metric("csat", n, _round(100 * p), _round(100 * low), _round(100 * high), counts, p * (1 - p))


def wilson(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed over ``n`` trials."""
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def ces(hist: Histogram) -> Metric:
    """CES as the mean score with a normal interval (needs n >= 2), and the answers counted easy / neutral /
    difficult (the share of easy ones is ``easy / n``)."""
    n = sum(hist.values())
    counts = {"easy": 0, "neutral": 0, "difficult": 0}
    for (lo, hi, score), k in hist.items():
        counts[category_of("ces", classify("ces", score, lo, hi))] += k
    if n == 0:
        return Metric("ces", 0, None, None, None, counts)
    mean = sum(score * k for (_lo, _hi, score), k in hist.items()) / n
    if n < 2:
        return Metric("ces", n, _round(mean), None, None, counts)
    variance = sum(k * (score - mean) ** 2 for (_lo, _hi, score), k in hist.items()) / (n - 1)
    half = Z95 * math.sqrt(variance / n)
    # The normal interval can leave the scale (2.9 to 7.1 on 1-7 for a few spread answers): clamped to it.
    low = min(lo for (lo, _hi, _score) in hist)
    high = max(hi for (_lo, hi, _score) in hist)
    return Metric("ces", n, _round(mean), _round(max(low, mean - half)), _round(min(high, mean + half)), counts,
                  variance)


CALCULATORS = {"nps": nps, "csat": csat, "ces": ces}


@dataclass(frozen=True)
class Change:
    """The change of a metric against the previous equal window, with its 95 % interval."""

    delta: float | None
    ci_low: float | None
    ci_high: float | None
    significant: bool


def change(current: Metric, previous: Metric) -> Change:
    """Difference between two independent windows: SE_diff = sqrt(var_A / n_A + var_B / n_B); significant
    at 95 % when the interval of the difference excludes zero."""
    if current.value is None or previous.value is None:
        return Change(None, None, None, False)
    if current.unit_variance is None or previous.unit_variance is None:
        return Change(_round(current.value - previous.value), None, None, False)
    scale = 100.0 if current.metric in ("nps", "csat") else 1.0
    delta = current.value - previous.value
    se = scale * math.sqrt(current.unit_variance / (current.variance_n or current.n)
                           + previous.unit_variance / (previous.variance_n or previous.n))
    half = Z95 * se
    return Change(_round(delta), _round(delta - half), _round(delta + half), abs(delta) > half)


def compute(metric: SurveyType, hist: Histogram) -> Metric:
    """The metric of one survey type over ``hist``."""
    return CALCULATORS[metric](hist)
