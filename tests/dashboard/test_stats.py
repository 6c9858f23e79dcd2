"""Agreement statistics and ratings against numbers worked out by hand on crafted labels."""

import math

import pytest

from dashboard import stats
from tests.dashboard.conftest import CRAFTED

ROWS = [(unit, choice, strength) for unit, labels in enumerate(CRAFTED) for choice, strength in labels]


def test_direction_only_statistics_match_hand_arithmetic():
    # Units a a a | a a b | b b b | b a b | a a a; 15 labels, 9 a and 6 b.
    report = stats.agreement_report(ROWS)["direction"]
    # Agreeing pairs per unit 3 + 1 + 3 + 1 + 3 out of 5 x 3 pairs.
    assert report["pairwise_agreement"] == pytest.approx(11 / 15)
    # Fleiss: P-bar = (1 + 1/3 + 1 + 1/3 + 1) / 5 = 11/15; Pe = 0.6^2 + 0.4^2 = 0.52.
    assert report["fleiss_kappa"] == pytest.approx((11 / 15 - 0.52) / (1 - 0.52))  # 4/9
    # Gwet's AC1, q = 2: pe = 2 x 0.6 x 0.4 = 0.48.
    assert report["gwet_ac1"] == pytest.approx((11 / 15 - 0.48) / (1 - 0.48))  # 19/39
    # Krippendorff: coincidences o_aa = 7, o_bb = 4, o_ab = o_ba = 2; n_a = 9, n_b = 6, n = 15;
    # alpha = 1 - (n - 1) * (o_ab + o_ba) / (2 n_a n_b) = 1 - 14 * 4 / 108 (ordinal = nominal
    # with two values).
    assert report["krippendorff_alpha"] == pytest.approx(1 - 14 * 4 / 108)  # 13/27
    assert report["units"] == 5 and report["judgments"] == 15


def test_strength_aware_statistics_match_hand_arithmetic():
    # Codes -4 -4 -3 | -2 -2 +1 | +3 +3 +3 | +1 -1 +1 | -1 -1 -1.
    report = stats.agreement_report(ROWS)["strength"]
    assert report["pairwise_agreement"] == pytest.approx(9 / 15)
    # Marginals: -4: 2, -3: 1, -2: 2, -1: 4, +1: 3, +3: 3 -> sum p^2 = 43/225; P-bar = 3/5.
    assert report["fleiss_kappa"] == pytest.approx((3 / 5 - 43 / 225) / (1 - 43 / 225))  # 46/91
    # AC1 over the eight-step scale (q = 8): pe = (1 - 43/225) / 7 = 26/225.
    assert report["gwet_ac1"] == pytest.approx((3 / 5 - 26 / 225) / (1 - 26 / 225))  # 109/199
    # Ordinal alpha: observed sum o_ck d2 = 2 x (2.25 + 42.25 + 12.25) = 113.5 (pairs -4/-3,
    # -2/+1, -1/+1); expected sum n_c n_k d2 over ordered pairs = 8100 (worked out in the docs).
    assert report["krippendorff_alpha"] == pytest.approx(1 - 14 * 113.5 / 8100)  # 0.8038


def test_imported_ties_and_missing_strengths_are_handled():
    rows = [
        (1, "tie", ""), (1, "a", ""),  # PandaLM-style tie beside an HH-style label
        (2, "b", ""), (2, "b", "better"),
        (3, "a", "better"),  # alone: shows no agreement either way
    ]
    report = stats.agreement_report(rows)
    # Direction: units [0, -1] and [+1, +1] -> one of two pairs agrees.
    assert report["direction"]["units"] == 2
    assert report["direction"]["pairwise_agreement"] == pytest.approx(0.5)
    # Strength-aware: a side without a strength is missing, a tie is 0: units [0] and [+3]
    # keep one label each, so no unit is left.
    assert report["strength"]["units"] == 0
    assert report["strength"]["pairwise_agreement"] is None
    assert report["strength"]["krippendorff_alpha"] is None
    for value in report["direction"].values():
        assert value is None or math.isfinite(value)


def test_fleiss_uses_units_with_the_common_number_of_judgments():
    units = [[1, 1, 1], [1, -1, -1], [1, 1]]
    kappa, used = stats.fleiss_kappa(units)
    assert used == 2
    # p(+1) = 4/6, p(-1) = 2/6: Pe = 5/9; P-bar = (1 + 1/3) / 2 = 2/3 -> kappa = 1/4.
    assert kappa == pytest.approx((2 / 3 - 5 / 9) / (1 - 5 / 9))


def test_bradley_terry_orders_versions_and_brackets_the_point_estimate():
    # x beats y 8 of 10 times: log-odds ln 4 = 1.386 -> 1.386 x 400 / ln 10 = 241 rating points.
    wins = [(0, 1)] * 8 + [(1, 0)] * 2
    rows = stats.bradley_terry_with_ci(["x", "y"], wins, bootstrap=100)
    assert [row["name"] for row in rows] == ["x", "y"]
    assert rows[0]["rating"] - rows[1]["rating"] == pytest.approx(400 * math.log(4) / math.log(10), abs=5)
    for row in rows:
        assert row["low"] <= row["rating"] <= row["high"]
    assert rows[0]["win_rate"] == pytest.approx(0.8) and rows[0]["comparisons"] == 10


def test_bootstrap_intervals_bracket_the_statistics_and_are_seeded():
    from dashboard.stats import bootstrap_intervals, gwet_ac1, pairwise_agreement

    units = [[-1, -1]] * 9 + [[-1, 1]] * 3  # pairwise agreement 9/12
    first = bootstrap_intervals(units, [-1, 1])
    assert first == bootstrap_intervals(units, [-1, 1])  # same page, same numbers
    low, high = first["pairwise_interval"]
    assert 0 <= low <= pairwise_agreement(units) == 0.75 <= high <= 1
    low, high = first["ac1_interval"]
    assert low <= gwet_ac1(units, [-1, 1]) <= high
