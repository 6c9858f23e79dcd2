"""Shared pieces of the bad-input matrix: logged-in clients, a comparison on the annotator's
screen, and a snapshot of every row Margin stores, to prove a refused input changed nothing."""

import pytest
from django.apps import apps
from django.urls import reverse

from tests.factories import BatchFactory, ComparisonFactory, StaffFactory, UserFactory

HX = {"HTTP_HX_REQUEST": "true"}
NUL = "before\x00after"
SCRIPT = '<script>alert("x")</script>'
APPS = ("annotation", "margin", "rewardmodel", "rlhf")


def db_snapshot():
    """Every row of Margin's own tables, field by field (the test databases are small)."""
    rows = {}
    for label in APPS:
        for model in apps.get_app_config(label).get_models():
            rows[model._meta.label] = list(model.objects.order_by("pk").values())
    return rows


def assert_unchanged(before):
    """No row was added, removed or edited since `before = db_snapshot()`."""
    after = db_snapshot()
    changed = [label for label in before if before[label] != after[label]]
    assert not changed, f"rows changed in {changed}"


@pytest.fixture
def annotator(client, db):
    user = UserFactory(username="ann")
    client.force_login(user)
    return user


@pytest.fixture
def served(client, annotator):
    """A comparison leased to the annotator (its compare page was opened)."""
    batch = BatchFactory()
    comparison = ComparisonFactory(batch=batch)
    ComparisonFactory(batch=batch)
    assert client.get(reverse("annotation:compare", args=[batch.project.pk])).status_code == 200
    return comparison


@pytest.fixture
def staff(db):
    return StaffFactory(username="boss")


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """The factories hash a password per user; these tests never log in with one."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
