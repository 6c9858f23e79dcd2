"""Staff upload and download pages: access, a real upload, a refused upload, escaping, CSRF."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from annotation.models import Judgment
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(StaffFactory())
    return client


def _upload(client, project, name, content, **fields):
    data = {"project": project.pk, "format": "margin", "file": SimpleUploadedFile(name, content), **fields}
    return client.post(reverse("dataio:import"), data)


def test_only_staff_reach_the_import_and_export_pages(client, helpful):
    for name in ("dataio:import", "dataio:export"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(UserFactory())
    for name in ("dataio:import", "dataio:export"):
        assert client.get(reverse(name)).status_code == 403
    response = _upload(client, helpful, "x.jsonl", b'{"messages": [{"role": "user", "content": "x"}]}\n')
    assert response.status_code == 403
    assert not helpful.dialogues.exists()


def test_a_refused_upload_lists_errors_escaped_and_stores_nothing(staff_client, helpful):
    bad = json.dumps({"messages": [{"role": "<script>alert(1)</script>", "content": "x"}]})
    response = _upload(staff_client, helpful, "bad.jsonl", (bad + "\n").encode())
    assert response.status_code == 422
    page = response.content.decode()
    assert "1 invalid record(s); nothing was imported" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert not helpful.dialogues.exists()


def test_imported_html_shows_as_text_on_the_annotators_page(client, helpful):
    html = "<img src=x onerror=alert(1)> Explain this tag"
    row = {"messages": [{"role": "user", "content": html}], "responses": [{"text": "<b>A</b>"}, {"text": "B"}]}
    staff = Client()
    staff.force_login(StaffFactory())
    assert _upload(staff, helpful, "h.jsonl", (json.dumps(row) + "\n").encode()).status_code == 200
    client.force_login(UserFactory())
    page = client.get(reverse("annotation:compare", args=[helpful.pk])).content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt; Explain this tag" in page
    assert "<img src=x" not in page and "&lt;b&gt;A&lt;/b&gt;" in page


def test_upload_form_errors_come_back_with_422(staff_client, helpful):
    response = staff_client.post(reverse("dataio:import"), {"project": helpful.pk, "format": "margin"})
    assert response.status_code == 422 and "This field is required" in response.content.decode()
    response = _upload(staff_client, helpful, "x.jsonl", b"{}\n", format="generic", mapping="prompt")
    assert response.status_code == 422 and "is not NAME=FIELD" in response.content.decode()


def test_an_upload_over_the_limit_is_refused(staff_client, helpful, settings):
    settings.MARGIN_UPLOAD_MAX_BYTES = 10
    response = _upload(staff_client, helpful, "x.jsonl", b'{"messages": [{"role": "user", "content": "x"}]}\n')
    assert response.status_code == 422 and "uploads stop at 10 bytes" in response.content.decode()
    assert not helpful.dialogues.exists()


def test_upload_needs_the_csrf_token(helpful):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(StaffFactory())
    response = _upload(strict, helpful, "x.jsonl", b'{"messages": [{"role": "user", "content": "x"}]}\n')
    assert response.status_code == 403
    assert not helpful.dialogues.exists()


def test_staff_download_a_trl_export(staff_client, helpful, tmp_path):
    row = {"messages": [{"role": "user", "content": "Hi"}], "responses": [{"text": "A"}, {"text": "B"}],
           "judgments": [{"annotator": "r1", "choice": "b", "strength": "better"}]}
    _upload(staff_client, helpful, "j.jsonl", (json.dumps(row) + "\n").encode())
    response = staff_client.get(reverse("dataio:export"), {"projects": helpful.pk, "kind": "trl", "output_format": "jsonl"})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="margin-trl.jsonl"')
    [line] = b"".join(response.streaming_content).decode().splitlines()
    assert json.loads(line)["chosen"] == [{"role": "assistant", "content": "B"}]
    response = staff_client.get(reverse("dataio:export"), {"projects": helpful.pk, "kind": "trl",
                                                            "output_format": "jsonl", "batches": "9"})
    assert response.status_code == 422 and "No batch 9" in response.content.decode()
    assert Judgment.objects.count() == 1
