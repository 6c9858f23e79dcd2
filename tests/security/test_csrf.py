"""CSRF on every POST endpoint, htmx ones included: without a token 403 and the database
unchanged; with the token htmx sends (the X-CSRFToken header from <body hx-headers>) it works."""

import pytest
from django.urls import reverse

from margin.models import Job
from tests.security.conftest import client_for, snapshot
from tests.security.test_permission_matrix import REFUSALS, matrix, outcome

pytestmark = pytest.mark.django_db


def post_cases(world):
    """Every POST in the matrix, with the role that may make it (the owner where annotators
    may, else staff, else anyone)."""
    cases = [case for rows in matrix(world).values() for case in rows if case.method == "post"]
    cases.sort(key=lambda case: case.last)
    for case in cases:
        role = next(r for r in ("owner", "staff", "anonymous") if case.expected[r] not in REFUSALS)
        yield case, role


def test_every_post_endpoint_refuses_a_request_without_a_token(world):
    checked = []
    for case, role in post_cases(world):
        client = client_for(world.get(role), enforce_csrf_checks=True)
        before = snapshot()
        for headers in ({"HTTP_HX_REQUEST": "true"}, {}):
            response = client.post(case.url, case.data, **headers)
            assert response.status_code == 403, f"{case.url} as {role}: {response.status_code}"
            assert "CSRF" in response.content.decode()
        assert snapshot() == before, f"{case.url} changed the database without a CSRF token"
        checked.append(case.url)
    # the sweep covered the annotator's htmx posts and the staff forms, not only a few
    for name, args in [("annotation:judge", [world["assignment"].comparison_id]),
                       ("annotation:undo", [world["project"].pk]),
                       ("dashboard:job_retry", [world["job"].pk]), ("dataio:import", [])]:
        assert reverse(name, args=args) in checked


def test_with_the_token_from_the_page_every_post_works(world):
    for case, role in post_cases(world):
        client = client_for(world.get(role), enforce_csrf_checks=True)
        page = client.get(reverse("login") if role == "anonymous" else reverse("annotation:home"))
        token = page.cookies["csrftoken"].value
        if role != "anonymous":
            # htmx sends the token from the page's <body hx-headers> on every request
            assert 'hx-headers=\'{"X-CSRFToken": "' in page.content.decode()
        # Log-out buttons are plain forms; everything else may come from htmx.
        htmx = {} if case.last >= 2 else {"HTTP_HX_REQUEST": "true"}
        response = client.post(case.url, case.data, HTTP_X_CSRFTOKEN=token, **htmx)
        ok, said = outcome(response, case.expected[role])
        assert ok, f"{case.url} as {role} with a token: expected {case.expected[role]}, got {said}"


def test_an_htmx_undo_with_the_token_takes_back_the_judgment(world):
    client = client_for(world["owner"], enforce_csrf_checks=True)
    undo = reverse("annotation:undo", args=[world["project"].pk])
    assert client.post(undo, HTTP_HX_REQUEST="true").status_code == 403
    token = client.get(reverse("annotation:compare", args=[world["project"].pk])).cookies["csrftoken"].value
    assert client.post(undo, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN="x" * 32).status_code == 403
    response = client.post(undo, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert not type(world["judgment"]).objects.filter(pk=world["judgment"].pk).exists()


def test_admin_changes_need_the_token_too(world):
    client = client_for(world["staff"], enforce_csrf_checks=True)
    job = world["job"]
    delete = reverse("admin:margin_job_delete", args=[job.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert Job.objects.filter(pk=job.pk).exists()
    token = client.get(delete).cookies["csrftoken"].value
    assert client.post(delete, {"post": "yes", "csrfmiddlewaretoken": token}).status_code == 302
    assert not Job.objects.filter(pk=job.pk).exists()
