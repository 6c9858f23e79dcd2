"""The suite never touches a Redis it did not start (issue 15, item 1)."""

import os
import subprocess
import sys

import pytest
import redis

from tests.conftest import REPO
from tests.isolation import _free_port
from tests.real_services import RedisServer, wait_until


@pytest.fixture
def live_redis(tmp_path):
    """A Redis as `scripts/run` leaves it: no password, a queued job and some state."""
    port = _free_port()
    binary = os.path.join(os.path.dirname(sys.executable), "redis-server")
    process = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)

    def answers():
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    wait_until(answers, 15, "the live redis-server")
    client.rpush("gpu", b'{"live": "job"}')
    client.set("live-state", "kept")
    yield port, client
    process.terminate()
    process.wait(10)


def test_tests_run_beside_a_live_instance_leave_its_redis_alone(live_redis, tmp_path):
    port, live = live_redis
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{port}/0", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/integration/probe_redis_isolation.py", "-s"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"127.0.0.1:{port}/" not in run.stdout  # its broker was not the live one
    assert live.get("live-state") == b"kept"  # not flushed
    assert live.lrange("gpu", 0, -1) == [b'{"live": "job"}']  # nothing taken, nothing added
    assert live.llen("default") == 0


def test_the_suite_refuses_a_redis_it_did_not_start(live_redis, tmp_path):
    port, live = live_redis
    server = RedisServer(tmp_path, url=f"redis://:secret@127.0.0.1:{port}/0")  # a port already taken
    with pytest.raises(RuntimeError, match="port .* taken|refusing"):
        server.start()
    assert live.get("live-state") == b"kept"
