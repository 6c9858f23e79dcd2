"""Limits of the write-a-prompt flow: no undo under a continued dialogue (issue 15 item 4), and a
quota of pairs generating at once per annotator (issue 15 item 6)."""

import pytest
from django.urls import reverse

from annotation import services
from annotation.models import Comparison, Dialogue, Judgment, Strength, Turn
from margin.models import Job
from tests.factories import BatchFactory, ComparisonFactory, DialogueFactory, UserFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def _judge_own_pair(author, comparison, side="a"):
    """Lease the pair generated for `author` and pick response `side` whatever order it shows."""
    held = services.assignment_take_reserved(annotator=author, comparison=comparison)
    shown_left = "a" if held.a_on_left else "b"
    return services.judgment_submit(
        annotator=author, comparison_id=comparison.pk,
        chosen_side="left" if side == shown_left else "right", strength=Strength.BETTER,
    )


@pytest.fixture
def continued():
    """An author judged their pair (A), continued the dialogue, and got the next pair."""
    batch = BatchFactory()
    author = UserFactory()
    dialogue = DialogueFactory(project=batch.project, author=author)
    first = ComparisonFactory(
        batch=batch, dialogue=dialogue, reserved_for=author, judgments_wanted=1
    )
    _judge_own_pair(author, first, side="a")
    services.dialogue_continue(annotator=author, comparison_id=first.pk, prompt="Tell me more.")
    second = ComparisonFactory(
        batch=batch, dialogue=dialogue, context_length=3, reserved_for=author, judgments_wanted=1
    )
    return author, first, second


def test_undo_of_a_continued_judgment_is_refused_and_the_context_keeps_its_choice(continued):
    author, first, second = continued
    project = first.batch.project
    with pytest.raises(services.AnnotationError, match="You continued this dialogue"):
        services.judgment_undo_last(annotator=author, project=project)
    _judge_own_pair(author, second, side="b")
    services.judgment_undo_last(annotator=author, project=project)  # the newest pair: not continued
    assert not Judgment.objects.filter(comparison=second).exists()
    with pytest.raises(services.AnnotationError, match="You continued this dialogue"):
        services.judgment_undo_last(annotator=author, project=project)
    assert Judgment.objects.get(comparison=first).choice == "a"
    context = first.dialogue.turns.get(index=1)
    assert context.role == Turn.Role.ASSISTANT and context.content == first.response_a.text


def test_undo_after_continue_says_why_on_the_page(client, continued):
    author, first, _second = continued
    client.force_login(author)
    response = client.post(reverse("annotation:undo", args=[first.batch.project.pk]), **HX)
    html = response.content.decode()
    assert response.status_code == 422
    assert "You continued this dialogue from your last judgment" in html
    assert Judgment.objects.filter(comparison=first).exists()


def test_undo_of_another_annotators_judgment_on_a_continued_dialogue_still_works(continued):
    """Only the author's choice became context: someone else judging the same pair may undo."""
    author, first, _second = continued
    Comparison.objects.filter(pk=first.pk).update(reserved_for=None, judgments_wanted=2)
    other = UserFactory()
    held = services.assignment_next(annotator=other, project=first.batch.project)
    assert held.comparison == first
    services.judgment_submit(annotator=other, comparison_id=first.pk, chosen_side="left",
                             strength=Strength.BETTER)
    services.judgment_undo_last(annotator=other, project=first.batch.project)
    assert not Judgment.objects.filter(comparison=first, annotator=other).exists()


# --- quota of pairs generating ------------------------------------------------------------------


def test_pairs_generating_are_capped_per_annotator(settings):
    settings.MARGIN_MAX_OPEN_GENERATIONS = 2
    batch = BatchFactory()
    author = UserFactory()
    jobs = [
        services.dialogue_start(annotator=author, project=batch.project, prompt=f"Prompt {n}")
        for n in range(2)
    ]
    with pytest.raises(services.AnnotationError, match="You have 2 pairs generating; judge"):
        services.dialogue_start(annotator=author, project=batch.project, prompt="One too many")
    assert Dialogue.objects.filter(author=author).count() == 2 and Job.objects.count() == 2
    # Someone else is not held back by this annotator's jobs.
    services.dialogue_start(annotator=UserFactory(), project=batch.project, prompt="Mine")
    # A finished generation frees its place; a running one still counts.
    Job.objects.filter(pk=jobs[0].pk).update(state=Job.State.SUCCEEDED)
    Job.objects.filter(pk=jobs[1].pk).update(state=Job.State.RUNNING)
    services.dialogue_start(annotator=author, project=batch.project, prompt="Now there is room")
    with pytest.raises(services.AnnotationError, match="You have 2 pairs generating"):
        services.dialogue_start(annotator=author, project=batch.project, prompt="Full again")


def test_continuing_counts_against_the_same_quota(settings, continued):
    settings.MARGIN_MAX_OPEN_GENERATIONS = 2  # the fixture's continuation is generating: 1
    author, first, second = continued
    services.dialogue_start(annotator=author, project=first.batch.project, prompt="Another")
    _judge_own_pair(author, second)
    turns = Turn.objects.count()
    with pytest.raises(services.AnnotationError, match="You have 2 pairs generating"):
        services.dialogue_continue(annotator=author, comparison_id=second.pk, prompt="And then?")
    assert Turn.objects.count() == turns and Job.objects.count() == 2


def test_write_page_says_to_judge_the_pairs_generating_first(client, settings):
    settings.MARGIN_MAX_OPEN_GENERATIONS = 1
    batch = BatchFactory()
    author = UserFactory()
    client.force_login(author)
    url = reverse("annotation:write", args=[batch.project.pk])
    assert client.post(url, {"prompt": "First"}, **HX).status_code == 200
    refused = client.post(url, {"prompt": "Second"}, **HX)
    html = refused.content.decode()
    assert refused.status_code == 422 and "You have 1 pair generating; judge them first" in html
    assert "Second" in html  # what was typed comes back
    assert Dialogue.objects.filter(author=author).count() == 1 and Job.objects.count() == 1
