"""The annotator's forms (judge, skip, write a prompt, continue a dialogue, demonstrate, undo)
with bad input: a 422 whose page names the field, and no row changed. Cases already in
tests/annotation/test_views.py (missing choice, unknown strength, missing safety label, empty
prompt, a second submit) are not repeated here."""

import pytest
from django.conf import settings
from django.urls import reverse

from annotation.models import Judgment
from tests.badinput.conftest import HX, NUL, SCRIPT, assert_unchanged, db_snapshot
from tests.factories import BatchFactory, ComparisonFactory, DialogueFactory, JudgmentFactory

# db_sensitive: PostgreSQL refuses NUL characters and over-long text where SQLite stores them,
# so scripts/test runs this matrix on both.
pytestmark = [pytest.mark.django_db, pytest.mark.db_sensitive]
TOO_LONG = "x" * (settings.MARGIN_MAX_TEXT_CHARS + 1)
GOOD = {"choice": "left", "strength": "better"}

JUDGE_CASES = {
    "unknown choice label": ({"choice": "c"}, "choice", "Select a valid choice. c is not one of"),
    "choice sent twice, last one bad": ({"choice": ["left", "middle"]}, "choice", "Select a valid choice"),
    "strength of the wrong type": ({"strength": "3"}, "strength", "Unknown strength 3"),
    "rationale too long": ({"rationale": "r" * 4001}, "rationale", "at most 4000 characters"),
    "NUL byte in the rationale": ({"rationale": NUL}, "rationale", "Null characters are not allowed"),
    "script in the choice": ({"choice": SCRIPT}, "choice", "Select a valid choice"),
}


@pytest.mark.parametrize("case", JUDGE_CASES, ids=list(JUDGE_CASES))
def test_judge_refuses_bad_input(client, served, case):
    changes, field, message = JUDGE_CASES[case]
    before = db_snapshot()
    response = client.post(reverse("annotation:judge", args=[served.pk]), {**GOOD, **changes}, **HX)
    assert response.status_code == 422
    assert field in response.context["form"].errors
    page = response.content.decode()
    assert message in page, "the annotator is not shown what is wrong"
    assert "<script>alert" not in page
    assert_unchanged(before)


def test_rationale_error_is_shown_and_what_was_typed_comes_back(client, served):
    """The task screen has no error slot under the rationale box: its error comes as a banner
    that names the rationale, above the form."""
    before = db_snapshot()
    response = client.post(reverse("annotation:judge", args=[served.pk]),
                           {**GOOD, "rationale": "r" * 4001}, **HX)
    assert "Rationale: Ensure this value has at most 4000 characters (it has 4001)." in response.content.decode()
    assert_unchanged(before)


def test_judge_a_comparison_that_does_not_exist_is_404(client, served):
    before = db_snapshot()
    assert client.post(reverse("annotation:judge", args=[999_999]), GOOD, **HX).status_code == 404
    assert_unchanged(before)


def test_html_in_a_rationale_is_stored_as_typed_and_shown_escaped(client, served):
    response = client.post(reverse("annotation:judge", args=[served.pk]), {**GOOD, "rationale": SCRIPT}, **HX)
    assert response.status_code == 200
    judgment = Judgment.objects.get()
    assert judgment.rationale == SCRIPT
    page = client.get(reverse("annotation:my_judgment", args=[judgment.pk])).content.decode()
    assert "&lt;script&gt;" in page and "<script>alert" not in page


SKIP_CASES = {
    "reason too long": ({"reason": "r" * 501}, "at most 500 characters"),
    "NUL byte in the reason": ({"reason": NUL}, "Null characters are not allowed"),
    "only spaces": ({"reason": "   "}, "Say why you skip this comparison."),
}


@pytest.mark.parametrize("case", SKIP_CASES, ids=list(SKIP_CASES))
def test_skip_refuses_bad_input(client, served, case):
    data, message = SKIP_CASES[case]
    before = db_snapshot()
    response = client.post(reverse("annotation:skip", args=[served.pk]), data, **HX)
    assert response.status_code == 422 and message in response.content.decode()
    assert_unchanged(before)


PROMPT_CASES = {
    "prompt too long": ({"prompt": TOO_LONG}, f"at most {settings.MARGIN_MAX_TEXT_CHARS} characters"),
    "NUL byte in the prompt": ({"prompt": NUL}, "Null characters are not allowed"),
    "prompt missing": ({}, "Write a prompt first."),
}


@pytest.mark.parametrize("case", PROMPT_CASES, ids=list(PROMPT_CASES))
def test_write_refuses_bad_input(client, annotator, case):
    data, message = PROMPT_CASES[case]
    batch = BatchFactory()
    before = db_snapshot()
    response = client.post(reverse("annotation:write", args=[batch.project.pk]), data, **HX)
    assert response.status_code == 422
    assert "prompt" in response.context["form"].errors and message in response.content.decode()
    assert_unchanged(before)


@pytest.mark.parametrize("case", PROMPT_CASES, ids=list(PROMPT_CASES))
def test_continue_dialogue_refuses_bad_input(client, annotator, case):
    data, message = PROMPT_CASES[case]
    judgment = JudgmentFactory(annotator=annotator)
    before = db_snapshot()
    response = client.post(reverse("annotation:continue", args=[judgment.comparison.pk]), data, **HX)
    assert response.status_code == 422
    assert "prompt" in response.context["continue_form"].errors and message in response.content.decode()
    assert_unchanged(before)


def test_continue_a_comparison_the_annotator_did_not_judge_is_404(client, annotator):
    other = JudgmentFactory()
    before = db_snapshot()
    response = client.post(reverse("annotation:continue", args=[other.comparison.pk]), {"prompt": "More?"}, **HX)
    assert response.status_code == 404
    assert_unchanged(before)


DEMONSTRATION_CASES = {
    "text too long": ({"text": TOO_LONG}, f"at most {settings.MARGIN_MAX_TEXT_CHARS} characters"),
    "NUL byte in the text": ({"text": NUL}, "Null characters are not allowed"),
    "text missing": ({"text": ""}, "Write the answer you would want the model to give."),
    "dialogue id not a number": ({"dialogue_id": "abc"}, "Dialogue: Enter a whole number."),
    "dialogue id missing": ({"dialogue_id": ""}, "Dialogue: This field is required."),
    "dialogue id of no dialogue": ({"dialogue_id": "999999"}, "not open to you for a demonstration"),
    "dialogue id a list": ({"dialogue_id": ["1", "x"]}, "Dialogue: Enter a whole number."),
}


@pytest.mark.parametrize("case", DEMONSTRATION_CASES, ids=list(DEMONSTRATION_CASES))
def test_demonstrate_refuses_bad_input(client, annotator, case):
    changes, message = DEMONSTRATION_CASES[case]
    dialogue = DialogueFactory()
    before = db_snapshot()
    data = {"dialogue_id": str(dialogue.pk), "text": "A fine answer.", **changes}
    response = client.post(reverse("annotation:demonstrate", args=[dialogue.project.pk]), data, **HX)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert_unchanged(before)


def test_undo_with_nothing_to_undo_says_so(client, annotator):
    batch = BatchFactory()
    ComparisonFactory(batch=batch)
    client.get(reverse("annotation:compare", args=[batch.project.pk]))
    before = db_snapshot()
    response = client.post(reverse("annotation:undo", args=[batch.project.pk]), **HX)
    assert response.status_code == 422
    assert_unchanged(before)


def test_pages_of_a_project_that_does_not_exist_are_404(client, annotator):
    before = db_snapshot()
    for name in ("compare", "write", "demonstrate", "undo"):
        url = reverse(f"annotation:{name}", args=[999_999])
        response = client.post(url, {"prompt": "x", "text": "x", "dialogue_id": "1"}) if name != "compare" else client.get(url)
        assert response.status_code == 404, name
    assert_unchanged(before)


FORM = "application/x-www-form-urlencoded"


def test_invalid_utf8_in_a_posted_field_is_text_not_a_crash(client, served):
    """Browsers always send UTF-8; a client that does not gets its bytes read as replacement
    characters (Django decodes form data with errors="replace"), never a 500."""
    before = db_snapshot()
    body = b"choice=%FF%FE&strength=better&rationale=caf%E9"
    response = client.post(reverse("annotation:judge", args=[served.pk]), body, content_type=FORM, **HX)
    assert response.status_code == 422 and "Select a valid choice" in response.content.decode()
    assert_unchanged(before)
    body = b"choice=left&strength=better&rationale=caf%E9"
    response = client.post(reverse("annotation:judge", args=[served.pk]), body, content_type=FORM, **HX)
    assert response.status_code == 200 and Judgment.objects.get().rationale == "caf\ufffd"


@pytest.mark.parametrize("username", ["ann\x00", "a" * 10_000, SCRIPT, ""])
def test_login_form_refuses_bad_usernames_with_a_form_error(client, annotator, username):
    """The login page says only that the pair did not match (it names no field on purpose)."""
    client.logout()
    before = db_snapshot()
    response = client.post(reverse("login"), {"username": username, "password": "x"})
    page = response.content.decode()
    assert response.status_code == 200 and "did not match" in page and "<script>alert" not in page
    assert_unchanged(before)


def test_ids_past_any_integer_are_404_not_a_crash(client, served):
    """<int:...> in a URL takes any number of digits; SQLite cannot compare one past 2**63."""
    before = db_snapshot()
    huge = 10**30
    for name, data in (("judge", GOOD), ("skip", {"reason": "x"}), ("continue", {"prompt": "x"})):
        assert client.post(reverse(f"annotation:{name}", args=[huge]), data, **HX).status_code == 404, name
    for name in ("compare", "write", "demonstrate"):
        assert client.get(reverse(f"annotation:{name}", args=[huge])).status_code == 404, name
    assert client.get(reverse("annotation:my_judgment", args=[huge])).status_code == 404
    assert_unchanged(before)


def test_a_username_longer_than_any_account_is_refused_before_login_is_tried(client, db):
    """django-axes records each failed login with its username in a 255-character column;
    PostgreSQL refuses a longer value (a 500), so such a username must not get that far."""
    from axes.models import AccessAttempt

    response = client.post(reverse("login"), {"username": "a" * 10_000, "password": "x"})
    assert response.status_code == 200 and "did not match" in response.content.decode()
    assert not AccessAttempt.objects.filter(username__startswith="aaaa").exists()


def test_a_request_body_past_djangos_limit_is_a_400(client, annotator, settings):
    """Text far past every field's limit never reaches a form: Django refuses the body
    (DATA_UPLOAD_MAX_MEMORY_SIZE) with a 400."""
    batch = BatchFactory()
    before = db_snapshot()
    body = {"prompt": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    response = client.post(reverse("annotation:write", args=[batch.project.pk]), body, **HX)
    assert response.status_code == 400
    assert_unchanged(before)
