"""`manage.py serve`: the embedded Redis wants a password, and generation has a worker of its own."""

import os
import signal
import subprocess
import sys

import redis

from margin.settings import embedded_redis_password
from tests.conftest import REPO
from tests.isolation import _free_port
from tests.real_services import wait_until


def test_the_embedded_redis_password_is_made_once_and_kept_private(tmp_path):
    first = embedded_redis_password(tmp_path)
    assert len(first) >= 32 and embedded_redis_password(tmp_path) == first
    assert (tmp_path / "redis" / "password").stat().st_mode & 0o077 == 0  # the owner's only
    code = "from django.conf import settings; print(settings.REDIS_URL)"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    shown = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=REPO, timeout=60,
        env={**env, "MARGIN_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "margin.settings"},
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert shown == f"redis://:{first}@127.0.0.1:6379/0"  # every process reads the same one


def test_serve_starts_a_redis_that_refuses_strangers_and_a_generation_worker(tmp_path):
    password, port = "a-password-of-this-test", _free_port()
    env = {**os.environ, "MARGIN_VAR_DIR": str(tmp_path),
           "REDIS_URL": f"redis://:{password}@127.0.0.1:{port}/0"}
    serve = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--addr", f"127.0.0.1:{_free_port()}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        ours, stranger = redis.Redis(port=port, password=password), redis.Redis(port=port)

        def answers():
            try:
                return ours.ping()
            except redis.ConnectionError:
                return False

        wait_until(answers, 180, "serve's redis-server")
        try:
            stranger.lpush("gpu", "injected")
            raise AssertionError("a client without the password could queue a job")
        except redis.exceptions.AuthenticationError:
            pass
        assert ours.llen("gpu") == 0
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert password not in ps  # not on any command line
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        output = serve.communicate(timeout=60)[0]
    assert "starting worker-generate" in output and "-Q generate" in output


def test_generation_and_training_wait_on_separate_queues(redis_server, transactional_db):
    """A flood of write-a-prompt pairs queues behind no training job, and delays none."""
    from margin.jobs import job_create
    from margin.models import Job

    redis_server.client.flushdb()
    for _ in range(5):
        job_create(kind=Job.Kind.GENERATE_PAIR, params={})
    job_create(kind=Job.Kind.TRAIN_REWARD_MODEL, params={})
    assert redis_server.client.llen("generate") == 5
    assert redis_server.client.llen("gpu") == 1  # next for the gpu worker, whatever is generating
