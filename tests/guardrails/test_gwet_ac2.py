"""Gwet's AC2 with ordinal weights, checked against the worked example of Gwet's Handbook."""

import pytest

from dashboard.stats import agreement_report, gwet_ac1, gwet_ac2, ordinal_weights

# Gwet, Handbook of Inter-Rater Reliability, 4th ed. (2014), p. 120: 4 raters, 12 units, scale
# 1..5, ratings missing where a rater skipped a unit (irrCAC's data set `cac.raw4raters`).
GWET_P120 = [[1, 1, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
             [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [5, 5, 5], [1, 1], [3]]
SCALE = [1, 2, 3, 4, 5]


def test_ac1_matches_the_handbook_example():
    # The handbook (and irrCAC's gwet.ac1.raw) report pa 0.8182, pe 0.1903, AC1 0.7754 here.
    # The unit rated once (the last) counts towards pe only.
    assert gwet_ac1(GWET_P120, SCALE) == pytest.approx(0.775444, abs=1e-6)


def test_ordinal_weights_follow_gwet():
    # q = 5: w = 1 - C(d + 1, 2) / C(5, 2) = 1 - {1, 3, 6, 10} / 10 for distance d = 1..4.
    assert ordinal_weights(5)[0].tolist() == pytest.approx([1.0, 0.9, 0.7, 0.4, 0.0])
    # irrCAC's ordinal.weights(1:3): 1, 2/3, 0.
    assert ordinal_weights(3)[0].tolist() == pytest.approx([1.0, 2 / 3, 0.0])


def test_ac2_with_ordinal_weights_on_the_handbook_example():
    # By hand. Weighted agreement per unit with 2+ ratings, sum_k r_k (r*_k - 1) / (r (r - 1)):
    #   units in full agreement: 1.0 (8 of them: units 1, 3, 4, 5, 7, 9, 10, 11);
    #   {2,2,3,2}: r*_2 = 3 + 0.9 = 3.9, r*_3 = 1 + 2.7 = 3.7 -> (3 x 2.9 + 2.7) / 12 = 0.95; {1,1,2,1} the same;
    #   {1,2,3,4}: r* = 3.0, 3.5, 3.5, 3.0 -> (2 + 2.5 + 2.5 + 2) / 12 = 0.75.
    #   pa = (8 + 0.95 + 0.95 + 0.75) / 11 = 10.65 / 11 = 0.968182
    # pi_k over all 12 units: 3/12, 3.25/12, 3.5/12, 1.25/12, 1/12; sum pi(1 - pi) = 0.761285.
    # T_w = 5 + 2 x (4 x 0.9 + 3 x 0.7 + 2 x 0.4) = 18; pe = 18 / 20 x 0.761285 = 0.685156.
    # AC2 = (0.968182 - 0.685156) / (1 - 0.685156) = 0.89894
    assert gwet_ac2(GWET_P120, SCALE) == pytest.approx(0.89894, abs=5e-5)


def test_agreement_report_has_ac2_with_n_and_an_interval_or_too_few():
    rows = []
    for unit in range(12):  # two annotators, one step apart on half the comparisons
        rows += [(unit, "a", "better"), (unit, "a", "better" if unit % 2 else "significantly_better")]
    strength = agreement_report(rows)["strength"]
    assert strength["units"] == 12 and strength["gwet_ac2"] > strength["gwet_ac1"]
    low, high = strength["ac2_interval"]
    assert low <= strength["gwet_ac2"] <= high
    few = agreement_report(rows[:4])["strength"]
    assert few["too_few"] and "ac2_interval" not in few and few["gwet_ac2"] is not None
