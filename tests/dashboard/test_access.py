"""Every dashboard URL is staff-only: anonymous users go to the login page, annotators get 403."""

import pytest
from django.urls import reverse

from margin.models import Job
from tests.factories import UserFactory


@pytest.fixture
def urls(crafted):
    project, batch = crafted["project"], crafted["batch"]
    job = Job.objects.create(kind=Job.Kind.TRAIN_REWARD_MODEL, state=Job.State.FAILED)
    annotator = crafted["users"][0]
    comparison = crafted["comparisons"][1]
    return [
        ("get", reverse("dashboard:index")),
        ("get", reverse("dashboard:project_create")),
        ("post", reverse("dashboard:project_create")),
        ("get", reverse("dashboard:project", args=[project.pk])),
        ("post", reverse("dashboard:project_settings", args=[project.pk])),
        ("post", reverse("dashboard:batch_open", args=[project.pk])),
        ("post", reverse("dashboard:batch_close", args=[batch.pk])),
        ("get", reverse("dashboard:review", args=[project.pk])),
        ("get", reverse("dashboard:adjudicate", args=[comparison.pk])),
        ("post", reverse("dashboard:adjudicate", args=[comparison.pk])),
        ("get", reverse("dashboard:annotators")),
        ("post", reverse("dashboard:annotator_update", args=[annotator.pk])),
        ("get", reverse("dashboard:leaderboard")),
        ("get", reverse("dashboard:models")),
        ("get", reverse("dashboard:jobs")),
        ("get", reverse("dashboard:job_launch", args=[Job.Kind.TRAIN_REWARD_MODEL])),
        ("post", reverse("dashboard:job_launch", args=[Job.Kind.TRAIN_REWARD_MODEL])),
        ("get", reverse("dashboard:job", args=[job.pk])),
        ("post", reverse("dashboard:job_cancel", args=[job.pk])),
        ("post", reverse("dashboard:job_retry", args=[job.pk])),
    ]


def _counts():
    from annotation.models import AnnotatorProfile, Batch, Project

    return (Project.objects.count(), Batch.objects.count(), Job.objects.count(),
            AnnotatorProfile.objects.count())


def test_anonymous_users_are_sent_to_login_everywhere(client, urls):
    before = _counts()
    for method, url in urls:
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    assert _counts() == before


def test_annotators_are_refused_everywhere(client, urls):
    client.force_login(UserFactory(username="curious"))
    before = _counts()
    for method, url in urls:
        assert getattr(client, method)(url).status_code == 403, url
    assert _counts() == before


def test_staff_reach_every_page(staff_client, urls):
    for method, url in urls:
        if method == "get":
            assert staff_client.get(url).status_code == 200, url


def test_dashboard_posts_need_a_csrf_token(staff, urls):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    for method, url in urls:
        if method == "post":
            assert client.post(url).status_code == 403, url
