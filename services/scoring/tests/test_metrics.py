"""Known answers for the metrics and their intervals (scoring-math.md)."""

from __future__ import annotations

import math

import pytest

from scoring.domain.metrics import ces, change, csat, nps, wilson


def test_nps_and_its_interval_from_the_answer_variance() -> None:
    # 50 promoters, 30 passives, 20 detractors: NPS 30; variance .5 + .2 - .3² = .61; SE = sqrt(.61/100),
    # so the plain interval is 30 ± 15.31. The adjusted interval is within about a point at n = 100.
    m = nps({(0, 10, 10): 50, (0, 10, 7): 30, (0, 10, 3): 20})
    half = 1.959963984540054 * math.sqrt(0.61 / 100) * 100
    assert m.n == 100
    assert m.value == 30.0
    assert m.ci_low == pytest.approx(30 - half, abs=1.2)
    assert m.ci_high == pytest.approx(30 + half, abs=1.2)
    assert m.counts == {"promoters": 50, "passives": 30, "detractors": 20}
    # Exactly, adjusted-Wald (Rocks 2016; Sauro & Lewis): 3/4 of a promoter and of a detractor, 3/2 of a
    # passive, n' = 103: shares (50.75/103, 20.75/103), centred on 30/103.
    p_p, p_d = 50.75 / 103, 20.75 / 103
    exact = 1.959963984540054 * math.sqrt((p_p + p_d - (p_p - p_d) ** 2) / 103) * 100
    assert m.ci_low == pytest.approx(100 * (p_p - p_d) - exact, abs=0.01)
    assert m.ci_high == pytest.approx(100 * (p_p - p_d) + exact, abs=0.01)
    assert m.variance_n == 103


def test_the_change_of_nps_uses_the_adjusted_estimator_for_both_windows() -> None:
    now = nps({(0, 10, 10): 10, (0, 10, 3): 10})
    before = nps({(0, 10, 10): 15, (0, 10, 3): 5})
    moved = change(now, before)
    assert now.unit_variance is not None
    assert before.unit_variance is not None
    se = 100 * math.sqrt(now.unit_variance / 23 + before.unit_variance / 23)
    assert moved.delta == -50.0
    assert moved.ci_low == pytest.approx(-50 - 1.959963984540054 * se, abs=0.01)


def test_a_ces_interval_never_leaves_the_scale() -> None:
    # Two answers at the ends of 1-7: the normal interval (4 ± 8.3) is clamped to 1-7.
    spread = ces({(1, 7, 1): 1, (1, 7, 7): 1})
    assert (spread.ci_low, spread.ci_high) == (1.0, 7.0)


def test_small_samples_get_wide_intervals_not_false_certainty() -> None:
    one = nps({(0, 10, 2): 1})
    assert one.value == -100.0
    # Adjusted-Wald: centred on the adjusted shares, so it reaches close to -100 and far up (-98.5 to 48.5).
    assert one.ci_low == -98.5
    assert one.ci_high is not None
    assert one.ci_high > 0
    ten = nps({(0, 10, 10): 10})
    assert ten.value == 100.0
    assert ten.ci_low is not None
    assert ten.ci_low < 75


def test_no_answers_means_no_score_not_zero() -> None:
    for metric in (nps({}), csat({}), ces({})):
        assert metric.n == 0
        assert metric.value is None
        assert metric.ci_low is None


def test_wilson_interval_known_values() -> None:
    low, high = wilson(0.5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson(1.0, 5)
    assert high == 1.0
    assert round(low, 4) == 0.5655


def test_csat_is_the_top_two_boxes_of_each_surveys_scale() -> None:
    m = csat({(1, 5, 5): 3, (1, 5, 4): 3, (1, 5, 3): 2, (1, 5, 1): 2, (1, 7, 7): 1, (1, 7, 5): 1})
    assert m.n == 12
    assert m.counts == {"satisfied": 7, "neutral": 3, "dissatisfied": 2}
    assert m.value == pytest.approx(100 * 7 / 12, abs=0.01)
    assert m.ci_low is not None
    assert m.ci_high is not None
    assert m.ci_low < m.value < m.ci_high


def test_ces_mean_with_a_t_free_normal_interval_and_share_of_easy() -> None:
    m = ces({(1, 7, 7): 2, (1, 7, 5): 1, (1, 7, 3): 1})
    assert m.value == 5.5
    sd = math.sqrt(((7 - 5.5) ** 2 * 2 + (5 - 5.5) ** 2 + (3 - 5.5) ** 2) / 3)
    assert m.ci_low == pytest.approx(5.5 - 1.959963984540054 * sd / 2, abs=0.01)
    assert m.ci_high == 7.0  # 5.5 + 1.88 = 7.38 leaves the 1-7 scale: clamped
    assert m.counts == {"easy": 3, "neutral": 0, "difficult": 1}  # the names the API and alerts use
    single = ces({(1, 7, 6): 1})
    assert (single.value, single.ci_low) == (6.0, None)


def test_change_against_the_previous_window_and_its_significance() -> None:
    before = nps({(0, 10, 10): 300, (0, 10, 8): 400, (0, 10, 2): 300})  # NPS 0, n 1000
    after_big = nps({(0, 10, 10): 500, (0, 10, 8): 300, (0, 10, 2): 200})  # NPS 30
    after_small = nps({(0, 10, 10): 4, (0, 10, 8): 3, (0, 10, 2): 3})  # NPS 10, n 10
    big = change(after_big, before)
    assert big.delta == 30.0
    assert big.significant
    assert big.ci_low is not None
    assert big.ci_low > 0
    small = change(after_small, before)
    assert small.delta == 10.0
    assert not small.significant
    assert small.ci_low is not None
    assert small.ci_low < 0 < small.ci_high  # type: ignore[operator]
    assert change(nps({}), before).delta is None


def test_windows_and_buckets() -> None:
    from datetime import date

    from scoring.domain.windows import bucket_end, bucket_start, previous, window

    today = date(2026, 11, 23)
    w30 = window("30d", today)
    assert (w30.start, w30.end) == (date(2026, 10, 25), date(2026, 11, 24))
    p30 = previous(w30)
    assert (p30.start, p30.end) == (date(2026, 9, 25), date(2026, 10, 25))
    month = window("month", today)
    assert (month.start, previous(month).start, previous(month).end) == (
        date(2026, 11, 1), date(2026, 10, 1), date(2026, 11, 1))
    quarter = window("quarter", date(2026, 2, 14))
    assert (quarter.start, previous(quarter).start) == (date(2026, 1, 1), date(2025, 10, 1))
    assert bucket_start(today, "week") == date(2026, 11, 23)  # a Monday
    assert bucket_start(date(2026, 11, 29), "week") == date(2026, 11, 23)
    assert bucket_end(date(2026, 12, 1), "month") == date(2027, 1, 1)
