"""No object is reachable by guessing its id: another annotator's judgment, comparison, lease,
pair job or dialogue is a 404, and a POST to it changes nothing."""

import pytest
from django.urls import reverse

from annotation.models import Assignment, Comparison, Demonstration, Dialogue, Judgment, Turn
from margin.models import Job
from tests.factories import ResponseFactory
from tests.security.conftest import client_for, escaped, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def intruder(world):
    return client_for(world["intruder"])


def test_another_annotators_judgment_is_404_and_its_note_never_shown(world, intruder):
    url = reverse("annotation:my_judgment", args=[world["judgment"].pk])
    response = intruder.get(url)
    assert response.status_code == 404
    mine = intruder.get(reverse("annotation:my_judgments")).content.decode()
    assert url not in mine and escaped("rationale") not in mine
    # the owner does see it, so the 404 above is about who asks
    assert escaped("rationale") in client_for(world["owner"]).get(url).content.decode()


@pytest.mark.parametrize("action,data", [
    ("judge", {"choice": "right", "strength": "significantly_better", "rationale": "mine now"}),
    ("skip", {"reason": "I cannot judge this topic"}),
])
def test_judging_or_skipping_another_annotators_leased_comparison_is_404(world, intruder, action, data):
    comparison = world["assignment"].comparison_id
    before = snapshot()
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        response = intruder.post(reverse(f"annotation:{action}", args=[comparison]), data, **headers)
        assert response.status_code == 404
    assert snapshot() == before
    assignment = Assignment.objects.get(pk=world["assignment"].pk)
    assert assignment.status == Assignment.Status.OPEN and assignment.annotator == world["owner"]
    assert not Judgment.objects.filter(comparison_id=comparison).exists()


def test_posting_a_new_answer_to_an_already_judged_comparison_is_404(world, intruder):
    judgment = world["judgment"]
    stored = (judgment.annotator, judgment.choice, judgment.strength)
    response = intruder.post(reverse("annotation:judge", args=[judgment.comparison_id]),
                             {"choice": "right", "strength": "slightly_better"})
    assert response.status_code == 404
    judgment.refresh_from_db()
    assert (judgment.annotator, judgment.choice, judgment.strength) == stored
    assert Judgment.objects.filter(comparison_id=judgment.comparison_id, annotator=world["intruder"]).count() == 0


@pytest.fixture
def written(world):
    """The owner's own prompt, its generated pair reserved for them, judged by them."""
    from annotation import services

    owner, project = world["owner"], world["project"]
    dialogue = Dialogue.objects.create(project=project, author=owner)
    Turn.objects.create(dialogue=dialogue, index=0, role=Turn.Role.USER, content="owner's prompt")
    comparison = Comparison.objects.create(
        batch=world["batch"], dialogue=dialogue, context_length=1, reserved_for=owner,
        response_a=ResponseFactory(dialogue=dialogue), response_b=ResponseFactory(dialogue=dialogue),
    )
    job = Job.objects.create(kind=Job.Kind.GENERATE_PAIR, created_by=owner, state=Job.State.SUCCEEDED,
                             params={"dialogue_id": dialogue.pk}, result={"comparison_id": comparison.pk})
    return {"dialogue": dialogue, "comparison": comparison, "job": job, "services": services}


def test_another_annotators_generated_pair_is_404_and_not_leased(world, intruder, written):
    before = snapshot()
    response = intruder.get(reverse("annotation:pair_status", args=[written["job"].pk]))
    assert response.status_code == 404
    assert snapshot() == before
    assert not Assignment.objects.filter(comparison=written["comparison"]).exists()
    # it was the owner's to take
    owner = client_for(world["owner"])
    assert owner.get(reverse("annotation:pair_status", args=[written["job"].pk])).status_code == 286


def test_continuing_another_annotators_dialogue_is_404(world, intruder, written):
    owner = world["owner"]
    services = written["services"]
    assignment = services.assignment_take_reserved(annotator=owner, comparison=written["comparison"])
    services.judgment_submit(annotator=owner, comparison_id=assignment.comparison_id,
                             chosen_side="left", strength="better")
    before = snapshot()
    response = intruder.post(reverse("annotation:continue", args=[written["comparison"].pk]),
                             {"prompt": "and now tell me a secret"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 404
    assert snapshot() == before
    assert written["dialogue"].turns.count() == 1


def test_undo_takes_back_only_the_askers_own_judgment(world, intruder):
    before = snapshot()
    response = intruder.post(reverse("annotation:undo", args=[world["project"].pk]))
    assert response.status_code == 422
    assert "no judgment of yours to undo" in response.content.decode()
    assert snapshot() == before
    assert Judgment.objects.filter(pk=world["judgment"].pk).exists()


def test_a_demonstration_cannot_answer_another_annotators_prompt(world, intruder, written):
    url = reverse("annotation:demonstrate", args=[world["project"].pk])
    before = snapshot()
    response = intruder.post(url, {"dialogue_id": written["dialogue"].pk, "text": "my answer"})
    assert response.status_code == 422
    assert "not open to you" in response.content.decode()
    assert snapshot() == before
    assert not Demonstration.objects.filter(dialogue=written["dialogue"]).exists()
    assert "owner&#x27;s prompt" not in intruder.get(url).content.decode()


def test_an_inactive_project_is_closed_to_annotators(world, intruder):
    project = world["project"]
    project.is_active = False
    project.save(update_fields=["is_active"])
    owner = client_for(world["owner"])
    before = snapshot()
    for name in ("compare", "write", "demonstrate"):
        assert owner.get(reverse(f"annotation:{name}", args=[project.pk])).status_code == 404
    assert owner.post(reverse("annotation:write", args=[project.pk]), {"prompt": "hello"}).status_code == 404
    assert owner.post(reverse("annotation:undo", args=[project.pk])).status_code == 404
    assert snapshot() == before
    assert escaped("project") not in intruder.get(reverse("annotation:home")).content.decode()
