"""Login rate limiting (django-axes): five wrong passwords lock that username from that address
for 15 minutes, even with the right password; other users and a reset by success are fine."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory


def log_in(username, password, address="10.1.1.1", url=None, **headers):
    client = Client(REMOTE_ADDR=address, **headers)
    response = client.post(url or reverse("login"), {"username": username, "password": password})
    return client, response


def signed_in(client):
    return client.get(reverse("annotation:home")).status_code == 200


def fail(username, times, address="10.1.1.1", url=None):
    for _ in range(times):
        _, response = log_in(username, "wrong-password", address, url)
    return response


def test_five_failures_lock_the_account_even_for_the_right_password():
    UserFactory(username="ann")
    for attempt in range(4):
        _, response = log_in("ann", "wrong-password")
        assert response.status_code == 200
        assert "did not match" in response.content.decode()
    _, fifth = log_in("ann", "wrong-password")
    assert fifth.status_code == 429
    client, response = log_in("ann", PASSWORD)
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many login attempts" in page and "After 5 failed attempts" in page
    assert "locked for 15 minutes" in page and "ann" in page
    assert not signed_in(client)


def test_a_lockout_does_not_touch_another_user_or_the_same_user_elsewhere():
    UserFactory(username="ann")
    UserFactory(username="bob")
    fail("ann", 5)
    client, response = log_in("bob", PASSWORD)
    assert response.status_code == 302 and signed_in(client)
    client, response = log_in("ann", PASSWORD, address="10.9.9.9")
    assert response.status_code == 302 and signed_in(client)
    assert log_in("ann", PASSWORD)[1].status_code == 429


def test_a_successful_login_resets_the_count():
    UserFactory(username="ann")
    fail("ann", 4)
    client, response = log_in("ann", PASSWORD)
    assert response.status_code == 302 and signed_in(client)
    fail("ann", 4)
    client, response = log_in("ann", PASSWORD)
    assert response.status_code == 302 and signed_in(client)


def test_the_lock_lifts_after_the_cool_off():
    UserFactory(username="ann")
    fail("ann", 5)
    assert log_in("ann", PASSWORD)[1].status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    client, response = log_in("ann", PASSWORD)
    assert response.status_code == 302 and signed_in(client)


def test_the_admin_login_form_is_rate_limited_too():
    StaffFactory(username="boss")
    admin_login = reverse("admin:login")
    fail("boss", 5, url=admin_login)
    client, response = log_in("boss", PASSWORD, url=admin_login)
    assert response.status_code == 429
    assert client.get(reverse("admin:index")).status_code == 302  # still signed out


def test_test_clients_still_sign_in():
    """The suite signs in with force_login; client.login works when given a request, as axes
    needs one (settings: AUTHENTICATION_BACKENDS)."""
    user = UserFactory(username="ann")
    client = Client()
    client.force_login(user)
    assert signed_in(client)
    client = Client()
    assert client.login(request=HttpRequest(), username="ann", password=PASSWORD)
    assert signed_in(client)


def test_a_forged_forwarded_for_header_does_not_dodge_the_lock():
    """With no proxy configured (MARGIN_TRUSTED_PROXIES=0) X-Forwarded-For is ignored."""
    UserFactory(username="ann")
    for n in range(5):
        log_in("ann", "wrong-password", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    assert log_in("ann", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7")[1].status_code == 429


def test_behind_a_proxy_the_lock_follows_the_clients_address(settings):
    """Every request arrives from the proxy (10.0.0.1); the address it saw decides, so a guesser
    cannot lock a colleague out from elsewhere, nor dodge the lock by prepending hops."""
    settings.MARGIN_TRUSTED_PROXIES = 1
    UserFactory(username="ann")
    proxy = "10.0.0.1"
    for n in range(5):
        log_in("ann", "wrong-password", proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 203.0.113.66")
    assert log_in("ann", PASSWORD, proxy, HTTP_X_FORWARDED_FOR="203.0.113.66")[1].status_code == 429
    client, response = log_in("ann", PASSWORD, proxy, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert response.status_code == 302 and signed_in(client)


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example/"])
def test_logging_in_never_redirects_off_site(target):
    UserFactory(username="ann")
    client = Client()
    response = client.post(reverse("login") + f"?next={target}",
                           {"username": "ann", "password": PASSWORD, "next": target})
    assert response.status_code == 302 and response["Location"] == reverse("annotation:home")
