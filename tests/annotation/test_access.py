"""One access rule for every annotator service (issue 15 item 3): a paused annotator, or one who
failed the project's qualification round, can do no annotator work; one still in the round can
do only the round's work."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation import services
from annotation.models import (
    AnnotatorProfile,
    Assignment,
    AttentionPolicy,
    Demonstration,
    Dialogue,
    Judgment,
    Strength,
    Turn,
)
from margin.models import Job
from tests.factories import (
    BatchFactory,
    ComparisonFactory,
    DialogueFactory,
    ProjectFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
REFUSALS = {
    "paused": "Staff paused your annotation work (too fast)",
    "failed": "did not pass this project's qualification round",
}


def _lease(user, comparison, status=Assignment.Status.OPEN):
    now = timezone.now()
    return Assignment.objects.create(
        annotator=user, comparison=comparison, status=status, a_on_left=True,
        served_at=now, expires_at=now + timedelta(hours=1),
    )


def _judged(user, comparison, choice="a"):
    """A judgment as judgment_submit leaves it: on a submitted lease."""
    assignment = _lease(user, comparison, status=Assignment.Status.SUBMITTED)
    return Judgment.objects.create(
        comparison=comparison, annotator=user, assignment=assignment, choice=choice,
        strength=Strength.BETTER, a_on_left=True,
    )


@pytest.fixture
def project():
    """A project with a one-gold qualification round that needs the gold right."""
    project = ProjectFactory(
        qualification_golds=1, qualification_min_accuracy=1.0, gold_share=0.0,
        judgments_per_comparison=1,
    )
    BatchFactory(project=project)
    return project


def _comparison(project, **fields):
    return ComparisonFactory(batch=project.batches.get(), **fields)


def _block(user, project, how):
    """Leave `user` passed-and-paused, failed, or free (passed and not paused)."""
    gold = _comparison(project, is_gold=True, gold_choice="a")
    _judged(user, gold, choice="b" if how == "failed" else "a")
    if how == "paused":
        AnnotatorProfile.objects.create(user=user, is_paused=True, paused_reason="too fast")


# Each annotator service with what it needs to go through for an annotator who may work.
def _next(user, project):
    _comparison(project)
    return lambda: services.assignment_next(annotator=user, project=project)


def _submit(user, project):
    held = _lease(user, _comparison(project))
    return lambda: services.judgment_submit(
        annotator=user, comparison_id=held.comparison_id, chosen_side="left",
        strength=Strength.BETTER,
    )


def _skip(user, project):
    held = _lease(user, _comparison(project))
    return lambda: services.assignment_skip(
        annotator=user, comparison_id=held.comparison_id, reason="unclear"
    )


def _undo(user, project):
    _judged(user, _comparison(project))
    return lambda: services.judgment_undo_last(annotator=user, project=project)


def _take_reserved(user, project):
    reserved = _comparison(project, reserved_for=user, judgments_wanted=1)
    return lambda: services.assignment_take_reserved(annotator=user, comparison=reserved)


def _start(user, project):
    return lambda: services.dialogue_start(annotator=user, project=project, prompt="Hello?")


def _continue(user, project):
    dialogue = DialogueFactory(project=project, author=user)
    mine = _comparison(project, dialogue=dialogue, reserved_for=user, judgments_wanted=1)
    _judged(user, mine)
    return lambda: services.dialogue_continue(annotator=user, comparison_id=mine.pk, prompt="More?")


def _demonstrate(user, project):
    prompt = DialogueFactory(project=project)
    return lambda: services.demonstration_submit(
        annotator=user, project=project, dialogue_id=prompt.pk, text="The ideal answer."
    )


SERVICES = {
    "assignment_next": _next,
    "judgment_submit": _submit,
    "assignment_skip": _skip,
    "judgment_undo_last": _undo,
    "assignment_take_reserved": _take_reserved,
    "dialogue_start": _start,
    "dialogue_continue": _continue,
    "demonstration_submit": _demonstrate,
}


def _stored():
    """Everything an annotator service can write."""
    return (
        sorted(Assignment.objects.values_list("pk", "status", "expires_at")),
        sorted(Judgment.objects.values_list("pk", flat=True)),
        Dialogue.objects.count(), Turn.objects.count(), Job.objects.count(),
        Demonstration.objects.count(),
    )


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("how", ["paused", "failed"])
def test_blocked_annotator_can_do_no_annotator_work(project, service, how):
    user = UserFactory()
    call = SERVICES[service](user, project)
    _block(user, project, how)
    before = _stored()
    with pytest.raises(services.AnnotationAccessError, match=re.escape(REFUSALS[how])):
        call()
    assert _stored() == before


@pytest.mark.parametrize("service", SERVICES)
def test_an_annotator_who_passed_and_is_not_paused_can_do_it_all(project, service):
    user = UserFactory()
    call = SERVICES[service](user, project)
    _block(user, project, "free")
    call()  # the same set-up goes through: the refusals above come from the block alone


def test_failing_one_projects_round_leaves_other_projects_open(project):
    user = UserFactory()
    _block(user, project, "failed")
    elsewhere = ComparisonFactory()
    held = services.assignment_next(annotator=user, project=elsewhere.batch.project)
    assert held.comparison == elsewhere


def test_during_the_round_only_its_golds_are_worked_on(project):
    user = UserFactory()
    gold = _comparison(project, is_gold=True, gold_choice="a")
    services.assignment_next(annotator=user, project=project)
    with pytest.raises(services.AnnotationAccessError, match="Finish this project's qualification"):
        services.dialogue_start(annotator=user, project=project, prompt="Hello?")
    with pytest.raises(services.AnnotationAccessError, match=r"\(0 of 1 test comparisons judged\)"):
        services.demonstration_submit(
            annotator=user, project=project, dialogue_id=gold.dialogue_id, text="An answer."
        )
    # The gold itself may be skipped, judged and undone: that is the round.
    services.assignment_skip(annotator=user, comparison_id=gold.pk, reason="unclear")
    assert not Dialogue.objects.filter(author=user).exists()


def test_the_block_policy_stops_undo_and_writing_too(client, project):
    """A missed attention check under the block policy pauses the annotator: the undo that would
    take the missed answer back, and writing a prompt, are refused as well as new comparisons."""
    project.attention_policy = AttentionPolicy.BLOCK
    project.qualification_golds = 0
    project.save()
    check = _comparison(project, is_gold=True, is_attention_check=True, gold_choice="a")
    user = UserFactory()
    client.force_login(user)
    client.get(reverse("annotation:compare", args=[project.pk]))
    held = Assignment.objects.get(annotator=user, comparison=check)
    missed = "right" if held.a_on_left else "left"
    answer = {"choice": missed, "strength": "better"}
    client.post(reverse("annotation:judge", args=[check.pk]), answer, **HX)
    assert AnnotatorProfile.objects.get(user=user).is_paused

    undo = client.post(reverse("annotation:undo", args=[project.pk]), **HX)
    assert undo.status_code == 422 and "Staff paused your annotation work" in undo.content.decode()
    assert Judgment.objects.filter(annotator=user, comparison=check).exists()
    write = client.post(reverse("annotation:write", args=[project.pk]), {"prompt": "Hi"}, **HX)
    assert write.status_code == 422
    assert "Staff paused your annotation work" in write.content.decode()
    assert not Job.objects.exists()


# --- what a paused annotator sees ------------------------------------------------------------


@pytest.fixture
def annotator(client):
    user = UserFactory()
    client.force_login(user)
    return user


def test_paused_annotator_judging_a_held_comparison_sees_why_and_no_comparison(
    client, project, annotator
):
    held = _lease(annotator, _comparison(project))
    _block(annotator, project, "paused")
    response = client.post(
        reverse("annotation:judge", args=[held.comparison_id]),
        {"choice": "left", "strength": "better"},
        **HX,
    )
    html = response.content.decode()
    assert response.status_code == 422 and REFUSALS["paused"] in html
    assert 'id="judgment-form"' not in html
    assert not Judgment.objects.filter(comparison=held.comparison).exists()


def test_paused_annotator_skipping_sees_why(client, project, annotator):
    held = _lease(annotator, _comparison(project))
    _block(annotator, project, "paused")
    url = reverse("annotation:skip", args=[held.comparison_id])
    response = client.post(url, {"reason": "x"}, **HX)
    assert response.status_code == 422 and REFUSALS["paused"] in response.content.decode()
    held.refresh_from_db()
    assert held.status == Assignment.Status.OPEN


def test_paused_annotator_gets_the_reason_instead_of_the_write_and_demonstration_forms(
    client, project, annotator
):
    DialogueFactory(project=project)
    _block(annotator, project, "paused")
    for name in ("annotation:write", "annotation:demonstrate"):
        page = client.get(reverse(name, args=[project.pk]))
        html = page.content.decode()
        assert page.status_code == 200 and REFUSALS["paused"] in html and "<textarea" not in html
    demo = client.post(reverse("annotation:demonstrate", args=[project.pk]),
                       {"dialogue_id": Dialogue.objects.first().pk, "text": "Ideal."}, **HX)
    assert demo.status_code == 422 and REFUSALS["paused"] in demo.content.decode()
    assert not Demonstration.objects.exists()


def test_pair_ready_for_a_paused_annotator_says_why_instead_of_failing(client, project, annotator):
    reserved = _comparison(project, reserved_for=annotator, judgments_wanted=1)
    job = Job.objects.create(
        kind=Job.Kind.GENERATE_PAIR, state=Job.State.SUCCEEDED, created_by=annotator,
        params={"dialogue_id": reserved.dialogue_id}, result={"comparison_id": reserved.pk},
    )
    _block(annotator, project, "paused")
    response = client.get(reverse("annotation:pair_status", args=[job.pk]), **HX)
    assert response.status_code == 286 and REFUSALS["paused"] in response.content.decode()
    assert not Assignment.objects.filter(comparison=reserved).exists()
