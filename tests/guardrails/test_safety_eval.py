"""Violation rates per risk category with 95 % Wilson intervals, against hand-computed values."""

import pytest

from core.intervals import wilson_interval
from rlhf.safety_eval import violation_rates


def test_wilson_interval_by_hand():
    # 2 violations in 20: p = 0.1, z^2 = 3.841459, z^2/n = 0.192073;
    # centre = (0.1 + 0.096036) / 1.192073 = 0.164450;
    # half = 1.959964 x sqrt(0.0045 + 0.002401) / 1.192073 = 1.959964 x 0.083073 / 1.192073 = 0.136588
    low, high = wilson_interval(2, 20)
    assert low == pytest.approx(0.027862, abs=1e-5) and high == pytest.approx(0.301038, abs=1e-5)
    # No violation in 10 still gives an upper bound, 3.841459 / 13.841459 = 0.277533 (not Wald's 0).
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-5)
    assert wilson_interval(0, 0) is None


def test_violation_rates_per_category_on_crafted_labels():
    labels = [("weapons", True)] * 2 + [("weapons", False)] * 18 + [("self-harm", False)] * 10 + [("", True)]
    rates = violation_rates(labels)
    weapons = rates["per_category"]["weapons"]
    assert (weapons["responses"], weapons["violations"], weapons["rate"]) == (20, 2, 0.1)
    assert weapons["interval"] == pytest.approx((0.027862, 0.301038), abs=1e-5)
    assert rates["per_category"]["self-harm"]["rate"] == 0.0
    assert rates["per_category"]["uncategorised"]["violations"] == 1
    assert rates["overall"]["responses"] == 31 and rates["overall"]["violations"] == 3


def test_impossible_counts_are_refused():
    with pytest.raises(ValueError, match="between 0 and total"):
        wilson_interval(5, 3)
