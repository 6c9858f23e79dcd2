from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from annotation import services
from annotation.models import Assignment, AuditEvent, Judgment, Strength
from tests.factories import (
    BatchFactory,
    ComparisonFactory,
    ProjectFactory,
    SafetyProjectFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def judge(user, assignment, side="left", strength=Strength.BETTER, **extra):
    return services.judgment_submit(
        annotator=user,
        comparison_id=assignment.comparison_id,
        chosen_side=side,
        strength=strength,
        **extra,
    )


@pytest.mark.db_sensitive
@pytest.mark.django_db(transaction=True)
def test_comparison_goes_to_at_most_n_distinct_annotators():
    batch = BatchFactory(project=ProjectFactory(judgments_per_comparison=2))
    comparison = ComparisonFactory(batch=batch)
    first, second, third = UserFactory(), UserFactory(), UserFactory()
    assert services.assignment_next(annotator=first, project=batch.project).comparison == comparison
    assert services.assignment_next(annotator=second, project=batch.project).comparison == comparison
    assert services.assignment_next(annotator=third, project=batch.project) is None


@pytest.mark.db_sensitive
@pytest.mark.django_db(transaction=True)
def test_annotator_never_gets_the_same_comparison_twice():
    batch = BatchFactory()
    comparison = ComparisonFactory(batch=batch)
    user = UserFactory()
    judge(user, services.assignment_next(annotator=user, project=batch.project))
    assert services.assignment_next(annotator=user, project=batch.project) is None
    assert Judgment.objects.filter(comparison=comparison).count() == 1


def test_skipped_comparison_is_never_served_again_to_that_annotator():
    batch = BatchFactory()
    comparison = ComparisonFactory(batch=batch)
    user, other = UserFactory(), UserFactory()
    assignment = services.assignment_next(annotator=user, project=batch.project)
    services.assignment_skip(annotator=user, comparison_id=comparison.pk, reason="Not my language")
    assert services.assignment_next(annotator=user, project=batch.project) is None
    assert services.assignment_next(annotator=other, project=batch.project).comparison == comparison
    assignment.refresh_from_db()
    assert assignment.skip_reason == "Not my language"


def test_skip_without_reason_is_refused():
    batch = BatchFactory()
    comparison = ComparisonFactory(batch=batch)
    user = UserFactory()
    services.assignment_next(annotator=user, project=batch.project)
    with pytest.raises(services.AnnotationError, match="reason"):
        services.assignment_skip(annotator=user, comparison_id=comparison.pk, reason="  ")
    assert Assignment.objects.get().status == Assignment.Status.OPEN


@pytest.mark.db_sensitive
@pytest.mark.django_db(transaction=True)
def test_reloading_returns_the_comparison_already_held():
    batch = BatchFactory()
    ComparisonFactory.create_batch(3, batch=batch)
    user = UserFactory()
    first = services.assignment_next(annotator=user, project=batch.project)
    assert services.assignment_next(annotator=user, project=batch.project) == first
    assert Assignment.objects.filter(annotator=user).count() == 1


@pytest.mark.db_sensitive
@pytest.mark.django_db(transaction=True)
def test_expired_lease_returns_the_comparison_to_the_pool():
    batch = BatchFactory(project=ProjectFactory(judgments_per_comparison=1))
    comparison = ComparisonFactory(batch=batch)
    slow, fast = UserFactory(), UserFactory()
    held = services.assignment_next(annotator=slow, project=batch.project)
    assert services.assignment_next(annotator=fast, project=batch.project) is None
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.assignment_next(annotator=fast, project=batch.project).comparison == comparison


def test_late_submit_after_expiry_is_kept_when_there_is_still_room():
    batch = BatchFactory(project=ProjectFactory(judgments_per_comparison=1))
    ComparisonFactory(batch=batch)
    user = UserFactory()
    held = services.assignment_next(annotator=user, project=batch.project)
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    judge(user, held)
    assert Judgment.objects.filter(annotator=user).count() == 1


@pytest.mark.db_sensitive
@pytest.mark.django_db(transaction=True)
def test_late_submit_is_refused_when_others_completed_the_comparison():
    batch = BatchFactory(project=ProjectFactory(judgments_per_comparison=1))
    ComparisonFactory(batch=batch)
    slow, fast = UserFactory(), UserFactory()
    held = services.assignment_next(annotator=slow, project=batch.project)
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    judge(fast, services.assignment_next(annotator=fast, project=batch.project))
    with pytest.raises(services.AnnotationError, match="ran out"):
        judge(slow, held)
    assert Judgment.objects.count() == 1


@pytest.mark.db_sensitive
@pytest.mark.django_db(transaction=True)
def test_open_leases_are_capped_across_projects(settings):
    settings.MARGIN_MAX_OPEN_LEASES = 2
    user = UserFactory()
    batches = [BatchFactory() for _ in range(3)]
    for batch in batches:
        ComparisonFactory(batch=batch)
    services.assignment_next(annotator=user, project=batches[0].project)
    services.assignment_next(annotator=user, project=batches[1].project)
    with pytest.raises(services.AnnotationError, match="already hold 2"):
        services.assignment_next(annotator=user, project=batches[2].project)


def test_choice_and_safety_are_stored_against_a_and_b_whatever_the_order_shown():
    batch = BatchFactory(project=SafetyProjectFactory())
    ComparisonFactory(batch=batch)
    user = UserFactory()
    assignment = services.assignment_next(annotator=user, project=batch.project)
    Assignment.objects.filter(pk=assignment.pk).update(a_on_left=False)  # B shown on the left
    judgment = judge(user, assignment, side="left", left_safe=True, right_safe=False,
                     strength=Strength.SIGNIFICANTLY_BETTER, rationale="  clearer  ")
    assert judgment.choice == "b"
    assert (judgment.response_a_safe, judgment.response_b_safe) == (False, True)
    assert judgment.a_on_left is False
    assert judgment.strength == Strength.SIGNIFICANTLY_BETTER
    assert judgment.rationale == "clearer"
    assert judgment.seconds_spent >= 0
    assert AuditEvent.objects.filter(verb="judgment_submit", object_id=judgment.pk).exists()


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"side": ""}, "Pick the better response"),
        ({"side": "middle"}, "Pick the better response"),
        ({"strength": "much_better"}, "Unknown strength"),
        ({"left_safe": None, "right_safe": True}, "safe or unsafe"),
    ],
)
def test_invalid_judgment_is_refused_and_stores_nothing(fields, message):
    batch = BatchFactory(project=SafetyProjectFactory())
    ComparisonFactory(batch=batch)
    user = UserFactory()
    assignment = services.assignment_next(annotator=user, project=batch.project)
    values = {"side": "left", "strength": Strength.BETTER, "left_safe": True, "right_safe": True}
    values.update(fields)
    with pytest.raises(ValidationError, match=message):
        judge(user, assignment, values.pop("side"), values.pop("strength"), **values)
    assert Judgment.objects.count() == 0
    assert Assignment.objects.get().status == Assignment.Status.OPEN


def test_judging_a_comparison_not_assigned_is_refused():
    batch = BatchFactory()
    comparison = ComparisonFactory(batch=batch)
    with pytest.raises(services.AnnotationError, match="not assigned to you"):
        services.judgment_submit(annotator=UserFactory(), comparison_id=comparison.pk,
                                 chosen_side="left", strength=Strength.BETTER)
    assert Judgment.objects.count() == 0


@pytest.mark.db_sensitive
@pytest.mark.django_db(transaction=True)
def test_double_submit_makes_one_judgment():
    batch = BatchFactory()
    ComparisonFactory(batch=batch)
    user = UserFactory()
    assignment = services.assignment_next(annotator=user, project=batch.project)
    judge(user, assignment)
    with pytest.raises(services.AnnotationError, match="already judged"):
        judge(user, assignment, side="right")
    assert Judgment.objects.get().choice in ("a", "b")
    assert Judgment.objects.count() == 1


def test_closed_batch_takes_no_judgments_and_serves_nothing():
    batch = BatchFactory()
    ComparisonFactory.create_batch(2, batch=batch)
    user = UserFactory()
    assignment = services.assignment_next(annotator=user, project=batch.project)
    services.batch_close(batch=batch)
    with pytest.raises(services.AnnotationError, match="closed"):
        judge(user, assignment)
    assert services.assignment_next(annotator=user, project=batch.project) is None


def test_undo_removes_the_last_judgment_and_serves_it_again():
    batch = BatchFactory()
    ComparisonFactory.create_batch(2, batch=batch)
    user = UserFactory()
    first = services.assignment_next(annotator=user, project=batch.project)
    judge(user, first)
    second = services.assignment_next(annotator=user, project=batch.project)
    judge(user, second, side="right")
    reopened = services.judgment_undo_last(annotator=user, project=batch.project)
    assert reopened.comparison == second.comparison
    assert reopened.status == Assignment.Status.OPEN
    assert list(Judgment.objects.values_list("comparison", flat=True)) == [first.comparison_id]
    assert services.assignment_next(annotator=user, project=batch.project) == reopened
    judge(user, reopened, side="left")
    assert Judgment.objects.count() == 2


def test_undo_is_refused_once_the_batch_is_closed():
    batch = BatchFactory()
    ComparisonFactory(batch=batch)
    user = UserFactory()
    judge(user, services.assignment_next(annotator=user, project=batch.project))
    services.batch_close(batch=batch)
    with pytest.raises(services.AnnotationError, match="closed"):
        services.judgment_undo_last(annotator=user, project=batch.project)
    assert Judgment.objects.count() == 1


def test_comparison_reserved_for_its_author_is_not_served_to_others():
    batch = BatchFactory()
    author, other = UserFactory(), UserFactory()
    ComparisonFactory(batch=batch, reserved_for=author, judgments_wanted=1)
    assert services.assignment_next(annotator=other, project=batch.project) is None
    assert services.assignment_next(annotator=author, project=batch.project) is not None


def test_batches_are_numbered_per_project():
    project = ProjectFactory()
    assert [services.batch_open(project=project).number for _ in range(3)] == [1, 2, 3]
    assert services.batch_open(project=ProjectFactory()).number == 1
