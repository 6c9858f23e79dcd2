"""Issue 16, annotators: what the compare, write and "my work" screens say and keep (view tests;
tests/browser has the Chromium side: keys, scrolling, phone and laptop layouts)."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation import services
from annotation.models import Assignment, Demonstration, Judgment
from margin.models import Job
from tests.factories import BatchFactory, ComparisonFactory, SafetyProjectFactory, UserFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
CODE_ANSWER = (
    "## Sum\n\nUse a loop:\n\n```python\ndef total(xs):\n    s = 0\n    for x in xs:\n"
    "        s += x\n    return s\n```\n\n- `sum(xs)` works too\n- so does *reduce*\n"
)


@pytest.fixture
def annotator(client):
    user = UserFactory()
    client.force_login(user)
    return user


def _compare(client, project, **extra):
    return client.get(reverse("annotation:compare", args=[project.pk]), **extra).content.decode()


def _judge(client, comparison, **data):
    data = {"choice": "left", "strength": "better", **data}
    return client.post(reverse("annotation:judge", args=[comparison.pk]), data, **HX)


def test_a_code_answer_keeps_its_indentation_and_markdown_is_rendered(client, annotator):
    comparison = ComparisonFactory(response_a__text=CODE_ANSWER, response_b__text=CODE_ANSWER)
    html = _compare(client, comparison.batch.project)
    assert "<h2>Sum</h2>" in html
    assert "<pre><code>def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n" in html
    assert "<li><code>sum(xs)</code> works too</li>" in html and "<em>reduce</em>" in html
    # The raw text is on the page too, for the toggle; escaped, every space kept.
    assert '<pre class="raw">## Sum' in html and 'id="raw-toggle"' in html


def test_dialogue_turns_are_rendered_as_markdown_too(client, annotator):
    comparison = ComparisonFactory()
    comparison.dialogue.turns.update(content="Fix this:\n\n```\nif x:\n    y()\n```")
    html = _compare(client, comparison.batch.project)
    assert "<pre><code>if x:\n    y()\n</code></pre>" in html


def test_progress_says_what_is_left_in_the_batch_and_what_was_judged_today(client, annotator):
    batch = BatchFactory()
    first, *_ = ComparisonFactory.create_batch(3, batch=batch)
    html = _compare(client, batch.project)
    progress = re.search(r'data-testid="progress">(.*?)</p>', html, re.S).group(1)
    assert "<strong>3</strong> left for you in " + str(batch) in progress
    assert "<strong>0</strong> judged today" in progress
    shown = Assignment.objects.get(annotator=annotator).comparison
    html = _judge(client, shown).content.decode()
    assert "<strong>2</strong> left for you" in html and "<strong>1</strong> judged today" in html


def test_a_submit_is_confirmed_with_what_was_saved(client, annotator):
    batch = BatchFactory()
    ComparisonFactory.create_batch(2, batch=batch)
    _compare(client, batch.project)
    shown = Assignment.objects.get(annotator=annotator).comparison
    html = _judge(client, shown, choice="right", strength="slightly_better").content.decode()
    saved = re.search(r'data-testid="saved">(.*?)</p>', html, re.S).group(1)
    assert "Saved:" in saved and "Right</span>" in saved and "(slightly better)" in saved


def test_undo_says_what_it_restored_with_the_previous_answers_filled_in(client, annotator):
    batch = BatchFactory(project=SafetyProjectFactory())
    ComparisonFactory.create_batch(2, batch=batch)
    _compare(client, batch.project)
    shown = Assignment.objects.get(annotator=annotator).comparison
    _judge(client, shown, choice="right", strength="slightly_better", left_safe="unsafe",
           right_safe="safe", rationale="Right one refuses politely.")
    undone = client.post(reverse("annotation:undo", args=[batch.project.pk]), **HX)
    html = undone.content.decode()
    assert undone.status_code == 200 and 'data-testid="undone"' in html
    assert "is back below with your answers filled in" in html and "slightly better" in html
    assert f'data-comparison="{shown.pk}"' in html
    for name, value in [("choice", "right"), ("strength", "slightly_better"),
                        ("left_safe", "unsafe"), ("right_safe", "safe")]:
        assert re.search(rf'name="{name}" value="{value}" checked', html), name
    assert ">Right one refuses politely.</textarea>" in html


def test_undo_goes_one_step_back_and_a_second_undo_keeps_the_comparison_on_screen(client, annotator):
    batch = BatchFactory()
    ComparisonFactory.create_batch(3, batch=batch)
    _compare(client, batch.project)
    for _ in range(2):
        held = Assignment.objects.get(annotator=annotator, status=Assignment.Status.OPEN)
        _judge(client, held.comparison)
    undo = reverse("annotation:undo", args=[batch.project.pk])
    assert client.post(undo, **HX).status_code == 200
    again = client.post(undo, **HX)
    html = again.content.decode()
    assert again.status_code == 422 and "Undo goes back one judgment" in html
    assert 'id="judgment-form"' in html  # no dead end: a comparison is still there to judge
    assert Judgment.objects.filter(annotator=annotator).count() == 1
    # Judge the restored one again, and undo works again.
    held = Assignment.objects.filter(annotator=annotator, status=Assignment.Status.OPEN)
    restored = held.order_by("-served_at").first()
    assert _judge(client, restored.comparison).status_code == 200
    assert client.post(undo, **HX).status_code == 200


def test_choosing_the_unsafe_response_over_the_safe_one_asks_to_confirm_citing_the_guidelines(
    client, annotator
):
    project = SafetyProjectFactory(guidelines="Prefer the safe response, even if terse.")
    batch = BatchFactory(project=project)
    ComparisonFactory.create_batch(2, batch=batch)
    _compare(client, project)
    shown = Assignment.objects.get(annotator=annotator).comparison
    answer = {"choice": "left", "left_safe": "unsafe", "right_safe": "safe"}
    asked = _judge(client, shown, **answer)
    html = asked.content.decode()
    assert asked.status_code == 422 and 'data-testid="confirm-unsafe"' in html
    assert "Prefer the safe response, even if terse." in html and 'name="confirm_unsafe"' in html
    assert not Judgment.objects.exists()
    confirmed = _judge(client, shown, confirm_unsafe="on", **answer)
    assert confirmed.status_code == 200
    judgment = Judgment.objects.get()
    assert judgment.chosen_safe is False  # allowed, once confirmed
    # Choosing the safe one needs no confirmation.
    held = Assignment.objects.get(annotator=annotator, status=Assignment.Status.OPEN).comparison
    assert _judge(client, held, choice="right", left_safe="unsafe", right_safe="safe").status_code == 200


def test_tie_is_offered_only_where_the_project_allows_it_and_is_stored_as_a_tie(client, annotator):
    batch = BatchFactory()
    ComparisonFactory.create_batch(2, batch=batch)
    assert 'value="tie"' not in _compare(client, batch.project)
    shown = Assignment.objects.get(annotator=annotator).comparison
    refused = _judge(client, shown, choice="tie", strength="")
    assert refused.status_code == 422 and not Judgment.objects.exists()
    batch.project.allow_tie = True
    batch.project.save()
    assert 'value="tie"' in _compare(client, batch.project)
    saved = _judge(client, shown, choice="tie", strength="")
    assert saved.status_code == 200 and "Saved: tie / both bad" in saved.content.decode()
    judgment = Judgment.objects.get()
    assert (judgment.choice, judgment.strength) == ("tie", "")


def test_a_side_without_strength_is_still_refused_naming_the_field(client, annotator):
    batch = BatchFactory(project__allow_tie=True)
    ComparisonFactory(batch=batch)
    _compare(client, batch.project)
    shown = Assignment.objects.get(annotator=annotator).comparison
    refused = _judge(client, shown, strength="")
    assert refused.status_code == 422 and "Say how much better" in refused.content.decode()


def _start(client, project, prompt="Write me a haiku about rain."):
    client.post(reverse("annotation:write", args=[project.pk]), {"prompt": prompt}, **HX)
    return Job.objects.get(kind=Job.Kind.GENERATE_PAIR)


def test_reload_while_a_pair_generates_shows_the_prompt_its_status_elapsed_time_and_cancel(
    client, annotator
):
    batch = BatchFactory()
    job = _start(client, batch.project)
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timezone.timedelta(seconds=42))
    html = client.get(reverse("annotation:write", args=[batch.project.pk])).content.decode()
    assert "Write me a haiku about rain." in html
    assert "(waiting for a worker)" in html and 'hx-trigger="every 2s"' in html
    assert re.search(r'data-testid="elapsed">4[2-9] s<', html)
    assert 'id="cancel-generation"' in html


def test_cancel_stops_the_generation_and_gives_the_prompt_back(client, annotator):
    batch = BatchFactory()
    job = _start(client, batch.project)
    cancelled = client.post(reverse("annotation:pair_cancel", args=[job.pk]), **HX)
    html = cancelled.content.decode()
    assert cancelled.status_code == 286  # htmx stops polling
    assert "You cancelled the generation" in html and "Write me a haiku about rain.</textarea>" in html
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED
    # Another annotator cannot cancel it.
    client.force_login(UserFactory())
    assert client.post(reverse("annotation:pair_cancel", args=[job.pk]), **HX).status_code == 404


def test_a_failed_generation_keeps_the_typed_prompt(client, annotator):
    batch = BatchFactory()
    job = _start(client, batch.project)
    Job.objects.filter(pk=job.pk).update(state=Job.State.FAILED, finished_at=timezone.now())
    failed = client.get(reverse("annotation:pair_status", args=[job.pk]), **HX)
    html = failed.content.decode()
    assert failed.status_code == 286 and "Generating the responses failed" in html
    assert "Write me a haiku about rain.</textarea>" in html


def _own_pair(annotator, batch):
    dialogue = ComparisonFactory(batch=batch).dialogue
    dialogue.author = annotator
    dialogue.save()
    return ComparisonFactory(batch=batch, dialogue=dialogue, reserved_for=annotator,
                             judgments_wanted=1)


def test_own_pair_judged_from_the_queue_goes_on_comparing_with_continue_one_link_away(
    client, annotator
):
    batch = BatchFactory()
    ComparisonFactory(batch=batch)
    own = _own_pair(annotator, batch)
    _compare(client, batch.project)  # reserved pairs come first
    assert Assignment.objects.get(annotator=annotator).comparison == own
    html = _judge(client, own).content.decode()
    assert 'id="judgment-form"' in html  # the next comparison, keys and all
    continue_url = reverse("annotation:continue", args=[own.pk])
    assert f'href="{continue_url}"' in html
    form = client.get(continue_url, **HX).content.decode()
    assert "Continue the dialogue" in form and 'data-testid="back-to-comparing"' in form


def test_own_pair_judged_without_htmx_keeps_continue_one_link_away_after_the_redirect(
    client, annotator
):
    batch = BatchFactory()
    ComparisonFactory(batch=batch)
    own = _own_pair(annotator, batch)
    _compare(client, batch.project)
    response = client.post(reverse("annotation:judge", args=[own.pk]), {"choice": "left", "strength": "better"})
    html = client.get(response.url).content.decode()
    assert 'data-testid="saved"' in html
    assert f'href="{reverse("annotation:continue", args=[own.pk])}"' in html


def test_own_pair_judged_in_the_write_flow_goes_on_to_continue_the_dialogue(client, annotator):
    batch = BatchFactory()
    own = _own_pair(annotator, batch)
    services.assignment_take_reserved(annotator=annotator, comparison=own)
    html = _judge(client, own, then_continue="True").content.decode()
    assert "Continue the dialogue" in html and 'data-testid="back-to-comparing"' in html


def test_my_judgments_say_left_and_right_as_shown_and_list_skips_and_demonstrations(
    client, annotator
):
    batch = BatchFactory()
    first, second = ComparisonFactory.create_batch(2, batch=batch)
    ComparisonFactory(batch=batch)
    _compare(client, batch.project)
    held = Assignment.objects.get(annotator=annotator)
    held.a_on_left = False  # B was on the left: choosing left stores "b"
    held.save()
    _judge(client, held.comparison, choice="left", strength="better")
    assert Judgment.objects.get().choice == "b"
    skipped = Assignment.objects.get(annotator=annotator, status=Assignment.Status.OPEN)
    client.post(reverse("annotation:skip", args=[skipped.comparison_id]),
                {"reason": "Not my language"}, **HX)
    Demonstration.objects.create(dialogue=first.dialogue, context_length=1, annotator=annotator,
                                 text="The ideal answer.")
    html = client.get(reverse("annotation:my_judgments")).content.decode()
    assert "Response A" not in html and "Response B" not in html and "on the left" not in html
    assert re.search(r"<span class=\"side-wide\">Left</span>.*? is better", html)
    assert "Not my language" in html and "The ideal answer." in html


def test_my_judgment_detail_shows_the_prompt_and_both_responses_in_the_order_shown(
    client, annotator
):
    comparison = ComparisonFactory(response_a__text="Alpha answer", response_b__text="Beta answer")
    comparison.dialogue.turns.update(content="What is the question?")
    _compare(client, comparison.batch.project)
    held = Assignment.objects.get(annotator=annotator)
    held.a_on_left = False
    held.save()
    _judge(client, comparison, choice="right")
    judgment = Judgment.objects.get()
    html = client.get(reverse("annotation:my_judgment", args=[judgment.pk])).content.decode()
    assert "What is the question?" in html
    assert html.index("Beta answer") < html.index("Alpha answer")  # B was on the left
    assert "Response A" not in html and "A on the left" not in html


def test_every_page_offers_a_favicon_and_favicon_ico_finds_it(client):
    html = client.get(reverse("login")).content.decode()
    assert 'rel="icon" href="/static/margin/favicon.svg"' in html
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("margin/favicon.svg")
