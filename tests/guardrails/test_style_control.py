"""Style-controlled Bradley-Terry: a version that wins only by writing longer loses its lead."""

import math

import pytest

from dashboard.stats import bradley_terry_style_with_ci, bradley_terry_with_ci, style_counts

SHORT, LONG = "A short answer.", "A much longer answer that goes on and on about the same thing."


def test_style_counts_reads_markdown_elements():
    text = "# Title\n\nSome **bold** and **more**.\n- one\n* two\n1. three\nplain"
    assert style_counts(text) == (len(text), 1, 3, 2)


def test_a_version_that_wins_by_length_loses_its_lead_under_style_control():
    # Four battles of equal-length answers split 2 : 2. Four more where the longer response won
    # every time: A wrote the longer answer in three of them. A leads 5 : 3 overall.
    wins = [(0, 1), (0, 1), (1, 0), (1, 0)] + [(0, 1)] * 3 + [(1, 0)]
    winner_texts, loser_texts = [SHORT] * 4 + [LONG] * 4, [SHORT] * 8
    plain = {row["name"]: row["rating"] for row in bradley_terry_with_ci(["A", "B"], wins, bootstrap=20)}
    # Plain BT by hand: theta_A - theta_B = ln(5 / 3) = 0.511, i.e. 400 / ln 10 x 0.511 = 88.7
    # Elo points (the 0.01 ridge takes a point or two off).
    assert plain["A"] - plain["B"] == pytest.approx(400 / math.log(10) * math.log(5 / 3), abs=3)
    style = bradley_terry_style_with_ci(["A", "B"], wins, [style_counts(t) for t in winner_texts],
                                        [style_counts(t) for t in loser_texts], bootstrap=20)
    controlled = {row["name"]: row for row in style["rows"]}
    assert controlled["A"]["rating"] - controlled["B"]["rating"] < (plain["A"] - plain["B"]) / 3
    assert style["coefficients"]["length"] > 1  # the longer side wins: length carries the effect
    assert controlled["A"]["low"] <= controlled["A"]["rating"] <= controlled["A"]["high"]


def test_without_battles_there_is_nothing_to_rank():
    assert bradley_terry_style_with_ci(["A"], [], [], []) == {"rows": [], "coefficients": {}}


@pytest.mark.django_db
def test_leaderboard_page_shows_both_tables(client):
    from django.urls import reverse

    from annotation.models import Judgment
    from rlhf.models import PolicyVersion
    from tests.factories import ComparisonFactory, StaffFactory

    a, b = PolicyVersion.objects.create(name="V-A"), PolicyVersion.objects.create(name="V-B")
    for i in range(4):
        comparison = ComparisonFactory(response_a__policy_version=a, response_b__policy_version=b,
                                       response_a__text=LONG if i < 3 else SHORT, response_b__text=SHORT if i < 3 else LONG)
        Judgment.objects.create(comparison=comparison, external_annotator="r", choice="a" if i < 3 else "b",
                                strength="better")
    client.force_login(StaffFactory(username="boss"))
    html = client.get(reverse("dashboard:leaderboard")).content.decode()
    assert 'id="leaderboard"' in html and 'id="leaderboard-style"' in html and 'data-style="length"' in html
