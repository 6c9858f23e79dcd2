"""Django's SQLite backend, with a write lock that a waiting request can actually get.

SQLite's own busy handler backs off to 100-ms sleeps between tries. A writer that commits and
begins again within that sleep (a job storing results in a loop) can keep the write lock as long as
it likes while a request waits out its whole timeout and fails with "database is locked". Here
BEGIN IMMEDIATE is retried every millisecond or two instead, so a waiter catches the gap between
another writer's transactions; the overall wait is still bounded by OPTIONS["timeout"].
"""

import random
import sqlite3
import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def _start_transaction_under_autocommit(self):
        if self.transaction_mode is None:
            return super()._start_transaction_under_autocommit()
        timeout = self.settings_dict["OPTIONS"].get("timeout", 5)  # seconds, as sqlite3.connect
        deadline = time.monotonic() + timeout
        with self.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout = 0")  # fail at once; this loop does the waiting
            try:
                while True:
                    try:
                        cursor.execute(f"BEGIN {self.transaction_mode}")
                        return
                    except OperationalError as error:
                        busy = getattr(error.__cause__, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY
                        if not busy or time.monotonic() >= deadline:
                            raise
                    # Jitter, so waiters that woke together do not try in lockstep.
                    time.sleep(random.uniform(0.0005, 0.002))
            finally:
                # Back to the connection's timeout for statements outside atomic blocks.
                cursor.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
