"""Annotators at once: logged-in HTTP sessions against the live server, and threads that each
use their own database connection.

These tests run on SQLite in the main pass and again on a throwaway PostgreSQL
(`pytest -m db_sensitive`, started by tests/pg.py from scripts/test).
"""

import re
import threading

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
COMPARISON = re.compile(r'id="judgment-form"[^>]*data-comparison="(\d+)"', re.S)
ALERT = re.compile(r'role="alert"[^>]*>(.*?)</', re.S)


def alerts(response):
    """The status and the error banners of a response, for assertion messages."""
    return response.status_code, [m.strip() for m in ALERT.findall(response.text)]


def task_of(html):
    """(comparison id, CSRF token) of the judgment form in a page or #task fragment."""
    comparison = COMPARISON.search(html)
    token = CSRF.search(html)
    return (int(comparison.group(1)) if comparison else None), (token.group(1) if token else None)


def run_in_threads(work, arguments, timeout=60):
    """Run `work(argument)` in one thread each, all released at once; return their results.

    Each thread closes its own database connection; any exception is raised here.
    """
    start = threading.Barrier(len(arguments))
    results, errors = [None] * len(arguments), []

    def body(index, argument):
        try:
            start.wait()
            results[index] = work(argument)
        except BaseException as error:  # reported to the test below, with its type
            errors.append(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=body, args=(i, a), daemon=True) for i, a in enumerate(arguments)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), f"threads still running after {timeout} s"
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def login_http(live_server):
    """`login_http(user)`: an httpx client with that user's session, like a logged-in browser."""
    opened = []

    def open_for(user):
        client = Client()
        client.force_login(user)
        session = client.cookies[settings.SESSION_COOKIE_NAME].value
        http = httpx.Client(
            base_url=live_server.url,
            cookies={settings.SESSION_COOKIE_NAME: session},
            timeout=30,
        )
        opened.append(http)
        return http

    yield open_for
    for http in opened:
        http.close()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Dozens of annotator accounts per test: no need for PBKDF2's deliberate slowness here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
