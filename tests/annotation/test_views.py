"""Annotator screens over HTTP: partials for htmx, whole pages otherwise, errors that keep input."""

import pytest
from django.urls import reverse

from annotation import services
from annotation.models import Assignment, Judgment, Strength
from tests.factories import (
    BatchFactory,
    ComparisonFactory,
    SafetyProjectFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def annotator(client):
    user = UserFactory()
    client.force_login(user)
    return user


@pytest.fixture
def safety_batch():
    return BatchFactory(project=SafetyProjectFactory(guidelines="Refusals of harm are safe."))


def test_compare_page_renders_whole_page_and_htmx_gets_only_the_task(client, annotator, safety_batch):
    ComparisonFactory(batch=safety_batch)
    url = reverse("annotation:compare", args=[safety_batch.project.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert b"<html" in page.content and b"Refusals of harm are safe." in page.content
    assert b"Response A text" in page.content and b"Response B text" in page.content
    partial = client.get(url, **HX)
    assert b"<html" not in partial.content and b'id="task"' in partial.content


def test_responses_are_blind_no_model_name_reaches_the_page(client, annotator):
    batch = BatchFactory()
    comparison = ComparisonFactory(batch=batch)
    comparison.response_a.model_name = "secret-model-v7"
    comparison.response_a.save()
    page = client.get(reverse("annotation:compare", args=[batch.project.pk]))
    assert b"secret-model-v7" not in page.content


def test_submit_swaps_in_the_next_comparison(client, annotator):
    batch = BatchFactory()
    first, second = ComparisonFactory(batch=batch), ComparisonFactory(batch=batch)
    client.get(reverse("annotation:compare", args=[batch.project.pk]))
    response = client.post(
        reverse("annotation:judge", args=[first.pk]),
        {"choice": "left", "strength": Strength.BETTER},
        **HX,
    )
    assert response.status_code == 200
    assert f'data-comparison="{second.pk}"'.encode() in response.content
    assert Judgment.objects.get().comparison == first


def test_plain_post_redirects_back_to_the_queue(client, annotator):
    batch = BatchFactory()
    comparison = ComparisonFactory(batch=batch)
    client.get(reverse("annotation:compare", args=[batch.project.pk]))
    response = client.post(
        reverse("annotation:judge", args=[comparison.pk]),
        {"choice": "right", "strength": Strength.SLIGHTLY_BETTER},
    )
    assert response.status_code == 302
    assert Judgment.objects.get().strength == Strength.SLIGHTLY_BETTER
    page = client.get(response.url)  # without htmx the confirmation comes after the redirect, once
    assert b'data-testid="saved"' in page.content and b"is better (slightly better)" in page.content
    assert b'data-testid="saved"' not in client.get(response.url).content


def test_plain_skip_says_skipped_after_the_redirect_and_only_on_its_project(client, annotator):
    batch, other = BatchFactory(), BatchFactory()
    first, second = ComparisonFactory(batch=batch), ComparisonFactory(batch=batch)
    ComparisonFactory(batch=other)
    here = reverse("annotation:compare", args=[batch.project.pk])
    client.get(here)
    response = client.post(reverse("annotation:skip", args=[first.pk]), {"reason": "Unreadable"})
    assert response.status_code == 302 and response.url == here
    page = client.get(here)
    assert b"Skipped. Here is the next comparison." in page.content
    assert f'data-comparison="{second.pk}"'.encode() in page.content
    client.post(reverse("annotation:skip", args=[second.pk]), {"reason": "Unreadable"})
    elsewhere = client.get(reverse("annotation:compare", args=[other.project.pk]))
    assert b'data-testid="saved"' not in elsewhere.content  # another project's page: not its banner


@pytest.mark.parametrize(
    "data, message",
    [
        ({"strength": "better"}, b"Pick the better response"),
        ({"choice": "left", "strength": "hugely"}, b"Unknown strength"),
        ({"choice": "left", "strength": "better", "left_safe": "safe"}, b"Label this response safe or unsafe"),
        ({"choice": "left", "strength": "better", "left_safe": "maybe", "right_safe": "safe"},
         b"Select a valid choice"),
    ],
)
def test_bad_judgment_gets_422_with_message_and_keeps_what_was_typed(
    client, annotator, safety_batch, data, message
):
    comparison = ComparisonFactory(batch=safety_batch)
    client.get(reverse("annotation:compare", args=[safety_batch.project.pk]))
    data = {**data, "rationale": "My careful <b>reasoning</b>"}
    response = client.post(reverse("annotation:judge", args=[comparison.pk]), data, **HX)
    assert response.status_code == 422
    assert message in response.content
    assert b"My careful &lt;b&gt;reasoning&lt;/b&gt;" in response.content
    assert not Judgment.objects.exists()


def test_judging_a_comparison_not_assigned_is_a_404_and_stores_nothing(client, annotator):
    batch = BatchFactory()
    comparison = ComparisonFactory(batch=batch)
    response = client.post(
        reverse("annotation:judge", args=[comparison.pk]), {"choice": "left", "strength": "better"}
    )
    assert response.status_code == 404
    assert not Judgment.objects.exists()


def test_posting_twice_stores_one_judgment_and_says_so(client, annotator):
    batch = BatchFactory()
    comparison = ComparisonFactory(batch=batch)
    client.get(reverse("annotation:compare", args=[batch.project.pk]))
    data = {"choice": "left", "strength": "better"}
    client.post(reverse("annotation:judge", args=[comparison.pk]), data, **HX)
    again = client.post(reverse("annotation:judge", args=[comparison.pk]), data, **HX)
    assert again.status_code == 422
    assert b"already judged" in again.content
    assert Judgment.objects.count() == 1


def test_skip_needs_a_reason_and_then_serves_the_next(client, annotator):
    batch = BatchFactory()
    first, second = ComparisonFactory(batch=batch), ComparisonFactory(batch=batch)
    client.get(reverse("annotation:compare", args=[batch.project.pk]))
    refused = client.post(reverse("annotation:skip", args=[first.pk]), {"reason": ""}, **HX)
    assert refused.status_code == 422 and b"Say why you skip" in refused.content
    done = client.post(reverse("annotation:skip", args=[first.pk]), {"reason": "Unreadable"}, **HX)
    assert f'data-comparison="{second.pk}"'.encode() in done.content
    assert Assignment.objects.get(comparison=first).status == Assignment.Status.SKIPPED


def test_undo_brings_the_last_comparison_back(client, annotator):
    batch = BatchFactory()
    comparison = ComparisonFactory(batch=batch)
    client.get(reverse("annotation:compare", args=[batch.project.pk]))
    client.post(reverse("annotation:judge", args=[comparison.pk]), {"choice": "left", "strength": "better"})
    response = client.post(reverse("annotation:undo", args=[batch.project.pk]), **HX)
    assert f'data-comparison="{comparison.pk}"'.encode() in response.content
    assert not Judgment.objects.exists()
    nothing = client.post(reverse("annotation:undo", args=[batch.project.pk]), **HX)
    assert nothing.status_code == 422 and b"no judgment of yours to undo" in nothing.content


def test_home_shows_what_is_waiting_and_done_today(client, annotator):
    batch = BatchFactory()
    ComparisonFactory.create_batch(3, batch=batch)
    assignment = services.assignment_next(annotator=annotator, project=batch.project)
    services.judgment_submit(annotator=annotator, comparison_id=assignment.comparison_id,
                             chosen_side="left", strength="better")
    page = client.get(reverse("annotation:home")).content.decode()
    assert batch.project.name in page
    assert '<td data-testid="waiting">2</td>' in page


def test_write_flow_shows_generating_then_the_pair(client, annotator, tiny_policy):
    from margin.models import Job
    from rlhf.pairs import generate_pair_run

    batch = BatchFactory()
    response = client.post(
        reverse("annotation:write", args=[batch.project.pk]), {"prompt": "Say hi"}, **HX
    )
    assert b"Generating two responses" in response.content and b'hx-trigger="every 2s"' in response.content
    job = Job.objects.get()
    status_url = reverse("annotation:pair_status", args=[job.pk])
    assert client.get(status_url, **HX).status_code == 200  # still generating: keep polling
    generate_pair_run(job_id=job.pk)
    done = client.get(status_url, **HX)
    assert done.status_code == 286  # htmx stops polling
    assert b'id="judgment-form"' in done.content
    assert b'name="then_continue" value="True"' in done.content  # after it: continue the dialogue
    # Another annotator cannot poll this job.
    client.force_login(UserFactory())
    assert client.get(status_url, **HX).status_code == 404


def test_write_with_empty_prompt_is_refused(client, annotator):
    batch = BatchFactory()
    response = client.post(reverse("annotation:write", args=[batch.project.pk]), {"prompt": ""}, **HX)
    assert response.status_code == 422 and b"Write a prompt first" in response.content


def test_demonstration_page_saves_and_offers_the_next_prompt(client, annotator):
    batch = BatchFactory()
    first, second = ComparisonFactory(batch=batch), ComparisonFactory(batch=batch)
    url = reverse("annotation:demonstrate", args=[batch.project.pk])
    page = client.get(url)
    assert first.dialogue.turns.first().content.encode() in page.content
    saved = client.post(url, {"dialogue_id": first.dialogue.pk, "text": "Ideal."}, **HX)
    assert b"Saved" in saved.content
    assert second.dialogue.turns.first().content.encode() in saved.content
    empty = client.post(url, {"dialogue_id": second.dialogue.pk, "text": ""}, **HX)
    assert empty.status_code == 422 and b"Write the answer" in empty.content
