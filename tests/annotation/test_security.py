"""Who may see what: login, staff-only admin, own work only, CSRF, escaping, deploy checks."""

import os
import subprocess
import sys

import pytest
from django.test import Client
from django.urls import reverse

from annotation import services
from annotation.models import Judgment, Turn
from tests.conftest import REPO
from tests.factories import BatchFactory, ComparisonFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged():
    """A comparison judged by one annotator, with a second comparison still open."""
    batch = BatchFactory()
    ComparisonFactory.create_batch(2, batch=batch)
    owner = UserFactory()
    assignment = services.assignment_next(annotator=owner, project=batch.project)
    judgment = services.judgment_submit(annotator=owner, comparison_id=assignment.comparison_id,
                                        chosen_side="left", strength="better")
    return judgment


def annotator_urls(judgment):
    project = judgment.comparison.batch.project.pk
    comparison = judgment.comparison_id
    return [
        reverse("annotation:home"),
        reverse("annotation:compare", args=[project]),
        reverse("annotation:write", args=[project]),
        reverse("annotation:demonstrate", args=[project]),
        reverse("annotation:my_judgments"),
        reverse("annotation:my_judgment", args=[judgment.pk]),
        reverse("annotation:judge", args=[comparison]),
        reverse("annotation:skip", args=[comparison]),
        reverse("annotation:undo", args=[project]),
        reverse("annotation:continue", args=[comparison]),
    ]


def test_anonymous_users_are_sent_to_login_everywhere(client, judged):
    for url in annotator_urls(judged):
        response = client.get(url)
        if response.status_code == 405:  # POST-only: check the POST too
            response = client.post(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("login")), url


def test_annotators_get_403_on_the_admin_and_staff_get_in(client, judged):
    client.force_login(judged.annotator)
    for url in (reverse("admin:index"), reverse("admin:annotation_judgment_changelist"),
                reverse("admin:margin_job_changelist")):
        assert client.get(url).status_code == 403, url
    client.force_login(StaffFactory(is_superuser=True))
    for url in (reverse("admin:index"), reverse("admin:annotation_judgment_changelist"),
                reverse("admin:annotation_comparison_change", args=[judged.comparison_id])):
        assert client.get(url).status_code == 200, url


def test_an_annotator_cannot_read_or_change_another_annotators_judgment(client, judged):
    other = UserFactory()
    client.force_login(other)
    assert client.get(reverse("annotation:my_judgment", args=[judged.pk])).status_code == 404
    mine = client.get(reverse("annotation:my_judgments")).content.decode()
    assert reverse("annotation:my_judgment", args=[judged.pk]) not in mine
    assert "You have not judged anything yet." in mine
    response = client.post(reverse("annotation:judge", args=[judged.comparison_id]),
                           {"choice": "right", "strength": "significantly_better"})
    assert response.status_code == 404
    judgment = Judgment.objects.get(pk=judged.pk)
    assert (judgment.choice, judgment.strength) == (judged.choice, judged.strength)
    assert client.post(reverse("annotation:continue", args=[judged.comparison_id]),
                       {"prompt": "hijack"}).status_code == 404


def test_csrf_is_enforced_on_htmx_posts(judged):
    client = Client(enforce_csrf_checks=True)
    client.force_login(judged.annotator)
    project = judged.comparison.batch.project
    undo = reverse("annotation:undo", args=[project.pk])
    assert client.post(undo, HTTP_HX_REQUEST="true").status_code == 403
    assert Judgment.objects.filter(pk=judged.pk).exists()
    page = client.get(reverse("annotation:compare", args=[project.pk]))
    token = page.cookies["csrftoken"].value
    assert '"X-CSRFToken": "' in page.content.decode()  # htmx sends it from <body hx-headers>
    ok = client.post(undo, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200
    assert not Judgment.objects.filter(pk=judged.pk).exists()


def test_user_text_is_escaped_so_a_stored_script_is_inert(client):
    batch = BatchFactory()
    comparison = ComparisonFactory(batch=batch)
    Turn.objects.filter(dialogue=comparison.dialogue).update(content="<script>alert(1)</script>")
    comparison.response_a.text = "<img src=x onerror=alert(2)>"
    comparison.response_a.save()
    client.force_login(UserFactory())
    page = client.get(reverse("annotation:compare", args=[batch.project.pk])).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)" in page
    assert "<img src=x" not in page


def test_deploy_checks_are_clean_with_production_settings(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DJANGO_SETTINGS_MODULE": "margin.settings_production",
        "SECRET_KEY": "x" * 64 + "-a-long-random-production-secret",
        "ALLOWED_HOSTS": "margin.example.org",
        "MARGIN_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(DJANGO_SETTINGS_MODULE="margin.settings_production", MARGIN_VAR_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr
