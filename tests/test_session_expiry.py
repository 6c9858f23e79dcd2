"""An htmx request after the session ended gets 401 (nothing swapped), a page load the login page."""

import pytest
from django.urls import reverse

from annotation.models import Judgment
from tests.factories import ComparisonFactory

pytestmark = pytest.mark.django_db


def test_htmx_submit_without_a_session_is_401_and_stores_nothing(client):
    comparison = ComparisonFactory()
    url = reverse("annotation:judge", args=[comparison.pk])
    response = client.post(url, {"choice": "left", "strength": "better"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 401
    assert "session has expired" in response.content.decode()
    assert not Judgment.objects.exists()


def test_page_loads_without_a_session_still_go_to_the_login_page(client):
    comparison = ComparisonFactory()
    response = client.get(reverse("annotation:compare", args=[comparison.batch.project.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_idle_timeout_comes_from_the_environment(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "MARGIN_SESSION_IDLE_MINUTES": "15", "MARGIN_VAR_DIR": str(tmp_path)}
    script = "import django; from django.conf import settings as s; django.setup(); print(s.SESSION_COOKIE_AGE)"
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == str(15 * 60), result.stderr


def test_a_session_in_use_is_renewed_and_an_idle_one_ends(client, settings):
    """Sliding: each use (at most once a minute) moves the end MARGIN_SESSION_IDLE_MINUTES past
    now; a session left alone that long is gone and the next page asks for the login."""
    from datetime import timedelta

    from django.contrib.sessions.models import Session
    from django.utils import timezone

    from tests.factories import UserFactory

    settings.SESSION_COOKIE_AGE = 30 * 60
    client.force_login(UserFactory())
    assert client.get(reverse("annotation:home")).status_code == 200
    key = client.session.session_key
    # 20 minutes pass: the last renewal is that old, and the session ends in 10 minutes.
    session = client.session
    session["_renewed_at"] -= 20 * 60
    session.save()
    Session.objects.filter(pk=key).update(expire_date=timezone.now() + timedelta(minutes=10))
    response = client.get(reverse("annotation:home"))
    assert response.status_code == 200
    left = Session.objects.get(pk=key).expire_date - timezone.now()
    assert timedelta(minutes=29) < left <= timedelta(minutes=30)
    assert response.cookies["sessionid"]["max-age"] == 30 * 60

    Session.objects.filter(pk=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    response = client.get(reverse("annotation:home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
