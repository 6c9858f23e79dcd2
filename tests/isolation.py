"""Loaded with `-p tests.isolation` (pytest.ini), before pytest-django reads the settings.

The suite must never reach a server it did not start: a developer runs `scripts/run` (Redis on
6379, Celery workers) and the tests in the same checkout. So before Django sees REDIS_URL, it
points at a free port of the suite's own, with a password of its own: a Redis the suite did not
start either is not there (nothing listens) or refuses the password. The `redis_server` fixture
(tests/real_services.py) starts the only server that knows it.
"""

import os
import secrets
import socket


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


TEST_REDIS_PASSWORD = secrets.token_hex(16)
TEST_REDIS_URL = f"redis://:{TEST_REDIS_PASSWORD}@127.0.0.1:{_free_port()}/0"
os.environ["REDIS_URL"] = TEST_REDIS_URL
