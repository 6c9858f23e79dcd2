"""The embedded SQLite default's write lock (margin/sqlite/base.py): a request waiting for it is
let in between another writer's transactions instead of starving, and its wait stays bounded."""

import random
import sqlite3
import threading
import time

import pytest
from django.db import OperationalError, connection, transaction

from margin.models import Job
from margin.sqlite.base import DatabaseWrapper

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def sqlite_only():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's write lock")


class LoopingWriter(threading.Thread):
    """Another process's job: write transactions of `hold` seconds, `gap` seconds apart."""

    def __init__(self, hold, gap):
        super().__init__(daemon=True)
        self.hold, self.gap, self.stop, self.holding = hold, gap, threading.Event(), threading.Event()

    def run(self):
        db = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=20)
        try:
            while not self.stop.is_set():
                db.execute("BEGIN IMMEDIATE")
                self.holding.set()
                time.sleep(self.hold)
                db.execute("COMMIT")
                time.sleep(self.gap)
        finally:
            db.close()

    def __enter__(self):
        self.start()
        assert self.holding.wait(5)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join(10)


def test_a_request_gets_the_lock_between_a_looping_writers_transactions():
    """SQLite's own busy handler sleeps 100 ms between tries, so a writer back within 10 ms kept
    a request out for seconds (at random: the suite once saw 20 s and "database is locked")."""
    waits = []
    with LoopingWriter(hold=0.3, gap=0.01):
        for _ in range(8):
            time.sleep(random.uniform(0, 0.3))  # arrive at any point of the writer's cycle
            started = time.monotonic()
            with transaction.atomic():
                waits.append(time.monotonic() - started)
                Job.objects.create(kind=Job.Kind.TRAIN_REWARD_MODEL)
    assert Job.objects.count() == 8
    assert max(waits) < 1.5, f"waited {', '.join(f'{w:.2f}' for w in waits)} s for the write lock"


def test_the_wait_is_still_bounded_by_the_timeout_and_the_connection_keeps_it():
    settings = {**connection.settings_dict,
                "OPTIONS": {**connection.settings_dict["OPTIONS"], "timeout": 0.5}}
    waiting = DatabaseWrapper(settings, alias="waiting")
    try:
        with LoopingWriter(hold=3, gap=0.01):
            started = time.monotonic()
            with pytest.raises(OperationalError, match="database is locked"):
                waiting.set_autocommit(True)
                waiting._start_transaction_under_autocommit()
            waited = time.monotonic() - started
        assert 0.5 <= waited < 2.5
        with waiting.cursor() as cursor:  # statements outside atomic blocks wait as configured
            assert cursor.execute("PRAGMA busy_timeout").fetchone() == (500,)
    finally:
        waiting.close()
