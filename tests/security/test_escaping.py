"""User text is escaped in every template: each page that shows a stored text field shows the
escaped payload and never the raw one (the world fixture stores it in every text field)."""

import pytest
from django.urls import reverse

from tests.security.conftest import SCRIPT, client_for, escaped, evil, payload_leaks

pytestmark = pytest.mark.django_db


def annotator_pages(world):
    project = world["project"].pk
    return [
        (reverse("annotation:home"), ["project"]),
        (reverse("annotation:compare", args=[project]),
         ["project", "guidelines", "prompt", "response-a", "response-b"]),
        (reverse("annotation:write", args=[project]), ["project"]),
        (reverse("annotation:demonstrate", args=[project]), ["project", "prompt"]),
        (reverse("annotation:my_judgments"), ["project"]),
        (reverse("annotation:my_judgment", args=[world["judgment"].pk]), ["rationale", "project"]),
        (reverse("annotation:pair_status", args=[world["pair_job"].pk]), ["project"]),
    ]


def staff_pages(world):
    project, judged = world["project"].pk, world["judgment"].comparison_id
    return [
        (reverse("dashboard:index"), ["project"]),
        (reverse("dashboard:project", args=[project]), ["project", "guidelines", "skip-reason"]),
        (reverse("dashboard:annotators"), ["owner", "sleeper", "paused", "project"]),
        (reverse("dashboard:review", args=[project]), ["project"]),
        (reverse("dashboard:adjudicate", args=[judged]),
         ["prompt", "response-a", "response-b", "rationale", "sleeper-rationale", "external-rater",
          "owner", "sleeper", "project"]),
        (reverse("dashboard:jobs"), ["staff"]),
        (reverse("dashboard:job", args=[world["job"].pk]), ["job-log", "job-error"]),
        (reverse("dashboard:models"), ["rm", "policy", "project"]),
        (reverse("dataio:export"), ["project"]),
        (reverse("dataio:import"), ["project"]),
        (reverse("admin:annotation_judgment_change", args=[world["judgment"].pk]), ["rationale"]),
        (reverse("dashboard:reward_model", args=[world["reward_model"].pk]), ["rm"]),
        (reverse("dashboard:guardrails"), []),
        (reverse("admin:rlhf_safetyprompt_changelist"), ["safety-prompt", "risk-category"]),
    ]


def _check(client, url, labels):
    html = client.get(url).content.decode()
    assert not payload_leaks(html), f"raw payload on {url}"
    missing = [label for label in labels if escaped(label) not in html]
    assert not missing, f"{url} does not show these fields (escaped): {missing}"


def test_annotator_pages_show_stored_text_escaped(world):
    client = client_for(world["owner"])
    for url, labels in annotator_pages(world):
        _check(client, url, labels)


def test_staff_pages_show_stored_text_escaped(world):
    client = client_for(world["staff"])
    for url, labels in staff_pages(world):
        _check(client, url, labels)


def test_the_job_parameters_are_escaped(world):
    html = client_for(world["staff"]).get(reverse("dashboard:job", args=[world["job"].pk])).content.decode()
    assert "job-param:&lt;script&gt;alert(1)&lt;/script&gt;" in html and SCRIPT not in html


def test_text_typed_into_a_refused_form_comes_back_escaped(world):
    """A 422 re-renders what the annotator typed: the typed text must not run either."""
    client = client_for(world["owner"])
    comparison = world["assignment"].comparison_id
    response = client.post(reverse("annotation:judge", args=[comparison]),
                           {"rationale": evil("typed")}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    html = response.content.decode()
    assert not payload_leaks(html) and escaped("typed") in html
    response = client.post(reverse("annotation:write", args=[world["project"].pk]),
                           {"prompt": evil("typed") + "x" * 30000})
    assert response.status_code == 422 and not payload_leaks(response.content.decode())


def test_a_skip_reason_typed_by_an_annotator_is_escaped_on_the_dashboard(world):
    owner = client_for(world["owner"])
    comparison = world["assignment"].comparison_id
    response = owner.post(reverse("annotation:skip", args=[comparison]), {"reason": evil("typed-skip")})
    assert response.status_code == 302
    html = client_for(world["staff"]).get(reverse("dashboard:project", args=[world["project"].pk])).content.decode()
    assert not payload_leaks(html) and escaped("typed-skip") in html


def test_query_parameters_reflected_into_pages_are_escaped(world):
    client = client_for(world["staff"])
    for url in (reverse("dashboard:annotators"), reverse("dashboard:jobs"),
                reverse("dashboard:project", args=[world["project"].pk])):
        for params in ({"next": evil("q")}, {"state": evil("q"), "kind": evil("q"), "batch": evil("q")}):
            response = client.get(url, params)
            assert response.status_code == 200, url
            assert not payload_leaks(response.content.decode()), url
