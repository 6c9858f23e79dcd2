"""A real Ray head for the tests of tests/ray/, started once per test session on 127.0.0.1 with
2 CPUs and the job-submission API (the dashboard), and stopped at the end.

Every port is chosen free and the head's files go to a fresh temporary folder, so a Ray someone
else runs on this machine is never touched; `ray stop` is never called (it stops every Ray on the
machine). The head and everything it starts share one session (setsid), which teardown kills.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.real_services import wait_until

PORT_FLAGS = ("--port", "--dashboard-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
              "--runtime-env-agent-port", "--metrics-export-port", "--node-manager-port", "--object-manager-port",
              "--ray-client-server-port")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def session_processes(session_id: int) -> list[int]:
    """Pids whose session is `session_id` (field 6 of /proc/PID/stat): the head and its children,
    workers included, which put themselves in their own process groups but keep the session."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:
            pids.append(int(stat.parent.name))
    return pids


class RayHead:
    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths
        self.ports = {flag: free_port() for flag in PORT_FLAGS}
        self.address = f"http://127.0.0.1:{self.ports['--dashboard-port']}"
        self.process = None

    def start(self):
        worker_port = free_port()
        while any(worker_port <= port <= worker_port + 50 for port in self.ports.values()):  # Ray refuses overlaps
            worker_port = free_port()
        command = [os.path.join(os.path.dirname(sys.executable), "ray"), "start", "--head", "--block",
                   "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--include-dashboard=true",
                   "--dashboard-host", "127.0.0.1", "--temp-dir", str(self.folder), "--disable-usage-stats",
                   "--object-store-memory", str(100 * 1024**2),
                   "--min-worker-port", str(worker_port), "--max-worker-port", str(worker_port + 50)]
        for flag, port in self.ports.items():
            command += [flag, str(port)]
        # Job entry points run `python` as the cluster's nodes would: this venv's, first on PATH, with the
        # repository importable (the stand-ins of tests/ray play OpenRLHF installed on the cluster).
        env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
               "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        self.process = subprocess.Popen(command, env=env, stdout=open(self.folder / "head.log", "w"),  # noqa: SIM115
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._answers, 90, f"the Ray head at {self.address}")

    def _answers(self):
        from ray.job_submission import JobSubmissionClient

        if self.process.poll() is not None:
            raise RuntimeError(f"ray start exited {self.process.returncode}: "
                               f"{(self.folder / 'head.log').read_text()[-2000:]}")
        try:
            JobSubmissionClient(self.address).list_jobs()
            return True
        except Exception:
            return False

    def stop(self):
        session = self.process.pid
        try:
            os.killpg(session, signal.SIGTERM)
        except ProcessLookupError:  # `ray start` already exited (a failed start)
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:  # a graceful `ray start --block` exit takes ~30 s
            pass
        for pid in session_processes(session):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_head():
    head = RayHead()
    try:
        head.start()
    except RuntimeError as first:  # a port chosen free was taken before Ray bound it: once more, new ports
        head.stop()
        print(f"Ray head did not start ({first}); retrying on other ports")
        head = RayHead()
        head.start()
    yield head
    head.stop()
