"""The staff dashboard's forms (project create and settings, annotator pause / exclude,
adjudication, batch open / close, job launch, cancel, retry) with bad input: a 422 whose page
names the field, or a 404 for an id that names nothing, and no row changed. Cases already in
tests/dashboard (empty name, unknown objective, share out of range, negative count, unknown
annotator action, learning_rate "fast" and other config bounds) are not repeated here."""

import re
from html import unescape

import pytest
from django.conf import settings
from django.urls import reverse

from annotation.models import Project
from margin.models import Job
from tests.badinput.conftest import NUL, SCRIPT, assert_unchanged, db_snapshot
from tests.factories import BatchFactory, ComparisonFactory, JudgmentFactory, ProjectFactory, UserFactory

# db_sensitive: PostgreSQL refuses NUL characters and over-long text where SQLite stores them,
# so scripts/test runs this matrix on both.
pytestmark = [pytest.mark.django_db, pytest.mark.db_sensitive]
TOO_LONG = "x" * (settings.MARGIN_MAX_TEXT_CHARS + 1)
PROJECT = {"name": "P", "objective": "safety", "guidelines": "G", "judgments_per_comparison": 2,
           "margin_scheme": "none", "lease_seconds": 600, "gold_share": 0,
           "attention_policy": "block", "qualification_golds": 0, "qualification_min_accuracy": 1}


def field_errors(html, name):
    """The error messages Django's as_div puts beside one field (its errorlist is tied to the
    input by aria-describedby)."""
    block = re.search(rf'<ul class="errorlist" id="id_{name}_error">(.*?)</ul>', html, re.S)
    assert block, f"no error shown for the field {name}"
    return [unescape(e) for e in re.findall(r"<li>([^<]*)</li>", block.group(1))]


PROJECT_CASES = {
    "NUL byte in the name": ("name", NUL, "Null characters are not allowed."),
    "name too long": ("name", "n" * 201, "at most 200 characters"),
    "guidelines too long": ("guidelines", TOO_LONG, f"at most {settings.MARGIN_MAX_TEXT_CHARS} characters"),
    "NUL byte in the guidelines": ("guidelines", NUL, "Null characters are not allowed."),
    "count not a number": ("judgments_per_comparison", "three", "Enter a whole number."),
    "count a fraction": ("judgments_per_comparison", "1.5", "Enter a whole number."),
    "count past any integer": ("lease_seconds", str(10**20), "less than or equal to"),
    "share not a number": ("gold_share", "nan", "Enter a number."),
    "share infinite": ("qualification_min_accuracy", "inf", "Enter a number."),
    "unknown margin scheme": ("margin_scheme", "huge", "Select a valid choice. huge is not one of"),
    "unknown attention policy": ("attention_policy", SCRIPT, "Select a valid choice."),
    "missing guidelines": ("guidelines", None, "This field is required."),
}


@pytest.mark.parametrize("case", PROJECT_CASES, ids=list(PROJECT_CASES))
def test_create_project_refuses_bad_input(staff_client, case):
    field, value, message = PROJECT_CASES[case]
    data = {**PROJECT, field: value} if value is not None else {k: v for k, v in PROJECT.items() if k != field}
    before = db_snapshot()
    response = staff_client.post(reverse("dashboard:project_create"), data)
    assert response.status_code == 422
    errors = field_errors(response.content.decode(), field)
    assert errors and message in errors[0], errors
    assert "<script>alert" not in response.content.decode()
    assert_unchanged(before)


def test_a_second_project_of_the_same_name_is_refused(staff_client):
    ProjectFactory(name="P")
    before = db_snapshot()
    response = staff_client.post(reverse("dashboard:project_create"), PROJECT)
    assert response.status_code == 422
    assert "Project with this Name already exists." in field_errors(response.content.decode(), "name")
    assert_unchanged(before)


@pytest.mark.parametrize("case", [c for c in PROJECT_CASES if PROJECT_CASES[c][0] != "name"])
def test_project_settings_refuse_bad_input_and_keep_the_old_values(staff_client, case):
    field, value, message = PROJECT_CASES[case]
    project = ProjectFactory(name="P", guidelines="Old rules")
    data = {k: v for k, v in PROJECT.items() if k not in ("name", "objective")}
    data = {**data, field: value} if value is not None else {k: v for k, v in data.items() if k != field}
    before = db_snapshot()
    response = staff_client.post(reverse("dashboard:project_settings", args=[project.pk]), data,
                                 HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    errors = field_errors(response.content.decode(), field)
    assert errors and message in errors[0], errors
    assert_unchanged(before)
    assert Project.objects.get().guidelines == "Old rules"


ANNOTATOR_CASES = {
    "reason too long": ({"action": "pause", "reason": "r" * 301}, "reason", "at most 300 characters"),
    "NUL byte in the reason": ({"action": "pause", "reason": NUL}, "reason", "Null characters are not allowed."),
    "action missing": ({"reason": "tired"}, "action", "This field is required."),
    "action of the wrong type": ({"action": "1"}, "action", "Select a valid choice. 1 is not one of"),
}


@pytest.mark.parametrize("case", ANNOTATOR_CASES, ids=list(ANNOTATOR_CASES))
def test_annotator_pause_and_exclude_refuse_bad_input(staff_client, case):
    data, field, message = ANNOTATOR_CASES[case]
    user = UserFactory()
    before = db_snapshot()
    response = staff_client.post(reverse("dashboard:annotator_update", args=[user.pk]), data)
    assert response.status_code == 422
    page = unescape(response.content.decode())
    assert f"* {field}" in page and message in page
    assert_unchanged(before)


ADJUDICATION_CASES = {
    "unknown choice label": ({"choice": "c"}, "choice", "Select a valid choice. c is not one of"),
    "unknown strength": ({"strength": "huge"}, "strength", "Select a valid choice. huge is not one of"),
    "note too long": ({"note": "n" * 2001}, "note", "at most 2000 characters"),
    "NUL byte in the note": ({"note": NUL}, "note", "Null characters are not allowed."),
    "choice missing": ({"choice": ""}, "choice", "Pick response A or B."),
}


@pytest.mark.parametrize("case", ADJUDICATION_CASES, ids=list(ADJUDICATION_CASES))
def test_adjudication_refuses_bad_input(staff_client, case):
    changes, field, message = ADJUDICATION_CASES[case]
    comparison = ComparisonFactory()
    JudgmentFactory(comparison=comparison, choice="a")
    JudgmentFactory(comparison=comparison, choice="b")
    before = db_snapshot()
    data = {"choice": "a", "strength": "better", "note": "", **changes}
    response = staff_client.post(reverse("dashboard:adjudicate", args=[comparison.pk]), data)
    assert response.status_code == 422
    errors = field_errors(response.content.decode(), field)
    assert errors and message in errors[0], errors
    assert_unchanged(before)


def test_ids_that_name_nothing_are_404_and_change_nothing(staff_client):
    closed = BatchFactory(is_open=False)
    before = db_snapshot()
    posts = [
        reverse("dashboard:project_settings", args=[999_999]),
        reverse("dashboard:batch_open", args=[999_999]),
        reverse("dashboard:batch_close", args=[999_999]),
        reverse("dashboard:batch_close", args=[closed.pk]),  # already closed
        reverse("dashboard:annotator_update", args=[999_999]),
        reverse("dashboard:adjudicate", args=[999_999]),
        reverse("dashboard:job_cancel", args=[999_999]),
        reverse("dashboard:job_retry", args=[999_999]),
    ]
    for url in posts:
        assert staff_client.post(url, {"action": "pause", "choice": "a", "strength": "better"}).status_code == 404, url
    assert_unchanged(before)


RM_CASES = {
    "NUL byte in a text field": ({"base_model": NUL}, "base_model", "Null characters are not allowed."),
    "text field too long": ({"margin_scheme": "m" * 501}, "margin_scheme", "at most 500 characters"),
    "integer field given a word": ({"batch_size": "eight"}, "batch_size", "Enter a whole number."),
    "integer field given a fraction": ({"max_length": "1.5"}, "max_length", "Enter a whole number."),
    "float field given infinity": ({"epochs": "inf"}, "epochs", "Enter a number."),
    "float field given NaN": ({"weight_decay": "nan"}, "weight_decay", "Enter a number."),
    "project of the wrong type": ({"project": "Helpful"}, "project", "Select a valid choice"),
    "project that does not exist": ({"project": "999999"}, "project", "Select a valid choice"),
    "project past any integer": ({"project": "9" * 30}, "project", "Select a valid choice"),
    "name too long": ({"name": "n" * 101}, "name", "at most 100 characters"),
    "NUL byte in the name": ({"name": NUL}, "name", "Null characters are not allowed."),
}


def launch_errors(html, name):
    block = re.search(rf'<label for="id_{name}">.*?</div>', html, re.S)
    assert block, f"no field {name}"
    return [unescape(e) for e in re.findall(r'<span class="error" role="alert">([^<]*)</span>', block.group(0))]


@pytest.mark.parametrize("case", RM_CASES, ids=list(RM_CASES))
def test_reward_model_launch_refuses_bad_input(staff_client, case):
    changes, field, message = RM_CASES[case]
    judgment = JudgmentFactory()
    before = db_snapshot()
    data = {"project": judgment.comparison.batch.project.pk, "name": "rm-1", **changes}
    response = staff_client.post(reverse("dashboard:job_launch", args=[Job.Kind.TRAIN_REWARD_MODEL]), data)
    assert response.status_code == 422
    errors = launch_errors(response.content.decode(), field)
    assert errors and message in errors[0], errors
    assert_unchanged(before)


POLICY_CASES = [
    (Job.Kind.PPO, {"iterations": "many"}, "iterations", "Enter a whole number."),
    (Job.Kind.PPO, {"policy": NUL}, "policy", "Null characters are not allowed."),
    (Job.Kind.REJECTION_SAMPLE, {"curve_temperatures": "0.7, warm"}, "curve_temperatures", "separated by commas"),
    (Job.Kind.REJECTION_SAMPLE, {"curve_temperatures": "0.7, nan"}, "curve_temperatures", "must be a finite number, got nan"),
    (Job.Kind.EVALUATE_POLICY, {"heldout_fraction": "half"}, "heldout_fraction", "Enter a number."),
    (Job.Kind.PUBLISH_SAMPLES, {"project": SCRIPT}, "project", "no project named"),
]


@pytest.mark.parametrize("kind, data, field, message", POLICY_CASES)
def test_policy_job_launch_refuses_bad_input(staff_client, kind, data, field, message):
    before = db_snapshot()
    response = staff_client.post(reverse("dashboard:job_launch", args=[kind]), data)
    assert response.status_code == 422
    page = response.content.decode()
    errors = launch_errors(page, field)
    assert errors and message in errors[0], errors
    assert "<script>alert" not in page
    assert_unchanged(before)
