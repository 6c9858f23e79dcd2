"""A throwaway PostgreSQL cluster on 127.0.0.1 for the test run and the load benchmark.

Debian's `postgresql` package (scripts/install-postgres) brings the binaries; this module runs
`initdb` into a temporary folder and `pg_ctl start` on a free port, and removes it all at the end.
PostgreSQL refuses to run as root, so as root the server runs as the `postgres` OS user.

Run a command against it (DATABASE_URL is set for the command; the exit code is passed on):

    .venv/bin/python -m tests.pg .venv/bin/python -m pytest -m db_sensitive
"""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DB_USER = "margin"
DB_NAME = "margin"


def _bin_dir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_major_version)
    if not found:
        raise RuntimeError("PostgreSQL is not installed; run scripts/install-postgres")
    return Path(found[-1]).parent


def _major_version(path):
    return int(Path(path).parts[-3])


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayPostgres:
    """One cluster: `start()` returns its URL, `stop()` shuts it down and deletes its files.

    `durable=False` (tests) turns fsync off: nothing here has to survive a crash. The benchmark
    keeps PostgreSQL's defaults so commit latency is the real one.
    """

    def __init__(self, *, durable=False, max_connections=100):
        self.bin = _bin_dir()
        self.durable = durable
        self.max_connections = max_connections
        self.folder = None
        self.port = None
        self.url = None

    def _run(self, *args, **kwargs):
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)

    def start(self):
        self.folder = Path(tempfile.mkdtemp(prefix="margin-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        data = self.folder / "data"
        self._run("initdb", "-D", str(data), "-U", DB_USER, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        self.port = _free_port()
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.folder}",
            f"-c max_connections={self.max_connections}",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        try:
            self._run("pg_ctl", "start", "-D", str(data), "-w", "-t", "60",
                      "-l", str(self.folder / "server.log"), "-o", " ".join(options))
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER, DB_NAME)
        except subprocess.CalledProcessError as failed:
            log = self.folder / "server.log"
            detail = log.read_text() if log.exists() else ""
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start: {failed.stderr}\n{detail}") from failed
        self.url = f"postgres://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"
        return self.url

    def postmaster_pid(self):
        return int((self.folder / "data" / "postmaster.pid").read_text().split()[0])

    def stop(self):
        if self.folder is None:
            return
        data = self.folder / "data"
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run("pg_ctl", "stop", "-D", str(data), "-m", "immediate", "-w", "-t", "30")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None


@contextlib.contextmanager
def throwaway_postgres(**options):
    """`with throwaway_postgres() as url:` a running cluster, gone afterwards."""
    cluster = ThrowawayPostgres(**options)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    started = time.monotonic()
    with throwaway_postgres() as url:
        print(f"PostgreSQL at {url} (started in {time.monotonic() - started:.1f} s)", flush=True)
        return subprocess.run(argv, env={**os.environ, "DATABASE_URL": url}).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
