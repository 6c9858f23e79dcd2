"""A crafted project whose every dashboard number is worked out by hand in the tests."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Assignment, Judgment
from tests.factories import (
    BatchFactory,
    ComparisonFactory,
    JudgmentFactory,
    ProjectFactory,
    StaffFactory,
    UserFactory,
)

# Five comparisons, three annotators each: (choice, strength) of u1, u2, u3.
# Signed eight-step codes: C1 -4 -4 -3 | C2 -2 -2 +1 | C3 +3 +3 +3 | C4 +1 -1 +1 | C5 -1 -1 -1
CRAFTED = [
    [("a", "significantly_better"), ("a", "significantly_better"), ("a", "better")],
    [("a", "slightly_better"), ("a", "slightly_better"), ("b", "negligibly_better")],
    [("b", "better"), ("b", "better"), ("b", "better")],
    [("b", "negligibly_better"), ("a", "negligibly_better"), ("b", "negligibly_better")],
    [("a", "negligibly_better"), ("a", "negligibly_better"), ("a", "negligibly_better")],
]


@pytest.fixture
def staff(db):
    return StaffFactory(username="boss")


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def crafted(db):
    """Batch 1: the five comparisons above plus two gold ones (u1 right on its gold, u2 wrong),
    C1 judged two days ago, one skip; u1 spends 10, 20, ... 60 seconds on its six judgments."""
    project = ProjectFactory(name="Crafted", judgments_per_comparison=3)
    batch = BatchFactory(project=project, number=1)
    users = [UserFactory(username=f"u{i}") for i in (1, 2, 3)]
    comparisons = [ComparisonFactory(batch=batch) for _ in CRAFTED]
    for n, (comparison, labels) in enumerate(zip(comparisons, CRAFTED)):
        for user, (choice, strength) in zip(users, labels):
            JudgmentFactory(comparison=comparison, annotator=user, choice=choice,
                            strength=strength, seconds_spent=10.0 * (n + 1))
    gold_a = ComparisonFactory(batch=batch, is_gold=True, gold_choice="a")
    gold_b = ComparisonFactory(batch=batch, is_gold=True, gold_choice="b")
    JudgmentFactory(comparison=gold_a, annotator=users[0], choice="a", seconds_spent=60.0)
    JudgmentFactory(comparison=gold_b, annotator=users[1], choice="a", seconds_spent=60.0)
    Judgment.objects.filter(comparison=comparisons[0]).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    now = timezone.now()
    Assignment.objects.create(
        comparison=gold_a, annotator=users[2], status=Assignment.Status.SKIPPED, a_on_left=True,
        served_at=now, expires_at=now, skip_reason="I cannot judge this topic",
    )
    return {"project": project, "batch": batch, "users": users, "comparisons": comparisons,
            "golds": [gold_a, gold_b]}
