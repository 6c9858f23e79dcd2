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
