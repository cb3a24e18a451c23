"""Known answers for the metrics and their intervals (scoring-math.md)."""

from __future__ import annotations

import math

import pytest

from scoring.domain.metrics import ces, csat, nps, wilson


def test_nps_and_its_interval_from_the_answer_variance() -> None:
    # 50 promoters, 30 passives, 20 detractors: NPS 30; variance .5 + .2 - .3² = .61; SE = sqrt(.61/100).
    m = nps({(0, 10, 10): 50, (0, 10, 7): 30, (0, 10, 3): 20})
    half = 1.959963984540054 * math.sqrt(0.61 / 100) * 100
    assert m.n == 100
    assert m.value == 30.0
    assert m.ci_low == pytest.approx(30 - half, abs=0.01)
    assert m.ci_high == pytest.approx(30 + half, abs=0.01)
    assert m.counts == {"promoters": 50, "passives": 30, "detractors": 20}


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
    assert m.ci_high == pytest.approx(5.5 + 1.959963984540054 * sd / 2, abs=0.01)
    assert m.counts == {"easy": 3, "not_easy": 1}
    single = ces({(1, 7, 6): 1})
    assert (single.value, single.ci_low) == (6.0, None)
