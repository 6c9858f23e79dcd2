"""Run a command on a Ray cluster as a Ray job and follow it: `ray_launch` for a torchrun training
run (modelruntime/launch.py calls it when MARGIN_RAY_ADDRESS is set), `ray_job_*` for any other
command (the OpenRLHF hand-off, rlhf/handoff.py). No Django.

Ray Jobs (`ray.job_submission.JobSubmissionClient`) talks to the head's dashboard port
(http://HEAD:8265). The job's entry point runs on one node of the cluster, in the repository
folder this worker runs from; that folder, the Python environment and the model store must be at
the same paths on every node (a shared file system), because the entry point reads the spec and
writes the events, checkpoints and final model there (docs/scaling.md).

A Celery worker that dies while its Ray job runs leaves the job running on the cluster; the retry
(margin/jobs.py's reconciler) finds its id in the work folder's ray_job.json and stops it before
submitting again, as the local run's children die with their parent.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path
from typing import Callable

from modelruntime.launch import LOG_NAME, RANKS_DIR, REPO, DistributedRunError, EventReader, RunCancelled

JOB_FILE = "ray_job.json"  # the submission id of the work folder's current Ray job
POLL_SECONDS = 0.5
STOP_WAIT_SECONDS = 60  # Ray's job supervisor sends SIGTERM, then SIGKILL after a few seconds
PENDING_STOP_SECONDS = 3
LOG_TAIL_LINES = 20
LOG_SECONDS = 10.0


class RayError(RuntimeError):
    """The Ray cluster cannot be reached, or a Ray job failed; the message names the address or
    the job, and a failed job's last log lines."""


def ray_client(address: str):
    """A JobSubmissionClient for the head's dashboard address (http://HOST:8265; a bare HOST:PORT
    means http). Raises RayError naming the address when nothing answers there."""
    from ray.job_submission import JobSubmissionClient

    if address.startswith("ray://"):
        raise RayError(f"{address}: Ray Jobs needs the dashboard address (http://HEAD:8265), not a ray:// client address")
    # Without a scheme Ray takes a GCS address and waits ~40 s before failing; Jobs is HTTP.
    url = address if "://" in address else f"http://{address}"
    try:
        return JobSubmissionClient(url)
    except (ConnectionError, OSError, RuntimeError) as error:  # ConnectionError: "Failed to connect ..."
        raise RayError(f"no Ray cluster answers at {url}: {error}") from error


def ray_job_submit(client, *, command: list[str], cwd: Path | str, env: dict | None = None,
                   num_cpus: float = 0, num_gpus: float = 0, metadata: dict | None = None) -> str:
    """Submit `command` (run in `cwd` on the node Ray picks); returns the submission id."""
    entrypoint = f"cd {shlex.quote(str(cwd))} && exec {shlex.join(command)}"
    return client.submit_job(
        entrypoint=entrypoint,
        runtime_env={"env_vars": {key: str(value) for key, value in (env or {}).items()}},
        entrypoint_num_cpus=num_cpus or None,
        entrypoint_num_gpus=num_gpus or None,
        metadata={key: str(value) for key, value in (metadata or {}).items()},
    )


def ray_job_is_finished(client, job_id: str) -> bool:
    from ray.job_submission import JobStatus

    return client.get_job_status(job_id) in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}


def ray_job_stop(client, job_id: str, wait_seconds: float = STOP_WAIT_SECONDS) -> None:
    """Stop the Ray job (its whole process group) and wait until Ray says it ended.

    A job still waiting for resources (PENDING) stays PENDING after stop_job on Ray 2.55: its
    supervisor, not yet placed, gets the stop right after it would start. Nothing of it runs
    meanwhile, so after a few seconds of PENDING this returns instead of waiting for the cluster.
    """
    from ray.job_submission import JobStatus

    started = time.monotonic()
    if ray_job_is_finished(client, job_id):
        return
    client.stop_job(job_id)
    while not ray_job_is_finished(client, job_id):
        waited = time.monotonic() - started
        if client.get_job_status(job_id) == JobStatus.PENDING and waited > PENDING_STOP_SECONDS:
            return
        if waited > wait_seconds:
            raise RayError(f"Ray job {job_id} did not stop within {wait_seconds:.0f} s")
        time.sleep(POLL_SECONDS)


def ray_job_logs_tail(client, job_id: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = client.get_job_logs(job_id)
    except Exception as error:  # the head lost the logs (restarted): the error still names the job
        return f"(logs unavailable: {error})"
    return "\n".join(text.splitlines()[-lines:])


def ray_job_follow(client, job_id: str, *, cancel_requested: Callable[[], bool],
                   on_poll: Callable[[], None] = lambda: None, on_log: Callable[[str], None] | None = None,
                   poll_seconds: float = POLL_SECONDS, log_seconds: float = LOG_SECONDS) -> None:
    """Wait for the Ray job to succeed, calling `on_poll()` every poll (after the status was read,
    so a finished job's last output is seen) and `on_log(line)` for each new log line (read every
    `log_seconds`, and once the job has ended: Ray hands back the whole log each time).

    Raises RunCancelled once the job has stopped when cancel_requested() turns true; stops the job
    and re-raises when a callback raises; raises RayError with the last log lines when the job
    fails or is stopped by someone else.
    """
    from ray.job_submission import JobStatus

    logged, logs_read_at = 0, time.monotonic()
    try:
        while True:
            status = client.get_job_status(job_id)
            on_poll()
            ended = status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED)
            if on_log is not None and (ended or time.monotonic() - logs_read_at >= log_seconds):
                text, logs_read_at = client.get_job_logs(job_id), time.monotonic()
                if not ended:
                    text = text[: text.rfind("\n") + 1]  # a line still being written waits for the next read
                # A progress bar redraws its line with \r: keep what a terminal would show.
                lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
                if lines[-1] == "":
                    lines.pop()
                for line in lines[logged:]:
                    on_log(line)
                logged = len(lines)
            if status == JobStatus.SUCCEEDED:
                return
            if status in (JobStatus.FAILED, JobStatus.STOPPED):
                info = client.get_job_info(job_id)
                raise RayError(f"Ray job {job_id} {status.value.lower()}: {info.message or ''}\n"
                               f"last log lines:\n{ray_job_logs_tail(client, job_id)}")
            if cancel_requested():
                ray_job_stop(client, job_id)
                raise RunCancelled(f"cancelled; Ray job {job_id} was stopped")
            time.sleep(poll_seconds)
    except (RayError, RunCancelled):
        raise
    except BaseException:
        ray_job_stop(client, job_id)
        raise


def ray_launch(*, command: list[str], workdir: Path, events_path: Path, on_event: Callable[[dict], None],
               cancel_requested: Callable[[], bool], address: str, num_gpus: float | None = None) -> dict:
    """modelruntime/launch.py's `distributed_run` on a Ray cluster: `command` (the torchrun argv)
    runs as one Ray job; rank 0's events are relayed as in the local run; returns the result event.

    Reserves one CPU per process (`--nproc_per_node`) and `num_gpus` GPUs (default: processes x
    MARGIN_RAY_GPUS_PER_PROCESS, 0 unless set), so Ray places the run on a node with room for it. Raises RayError (naming the job, with its last log
    lines) when the run fails; RunCancelled once the Ray job stopped on cancel.
    """
    workdir = Path(workdir)
    if "--nnodes" in command and int(command[command.index("--nnodes") + 1]) > 1:
        # One Ray job is one entry point on one node; its torchrun would wait for the others forever.
        raise DistributedRunError("on Ray a job runs on one node: set nodes to 1 (processes up to one node's "
                                  "devices), or unset MARGIN_RAY_ADDRESS to join several machines by rdzv_endpoint")
    client = ray_client(address)
    earlier = workdir / JOB_FILE
    if earlier.is_file():  # a worker died while following it: that run must not race this one
        ray_job_stop(client, json.loads(earlier.read_text())["submission_id"])
    events_path.unlink(missing_ok=True)
    (workdir / RANKS_DIR).mkdir(parents=True, exist_ok=True)
    nproc = int(command[command.index("--nproc_per_node") + 1]) if "--nproc_per_node" in command else 1
    if num_gpus is None:
        num_gpus = nproc * float(os.environ.get("MARGIN_RAY_GPUS_PER_PROCESS", "0"))
    job_id = ray_job_submit(
        client, command=command, cwd=REPO, num_cpus=nproc, num_gpus=num_gpus,
        env={"PYTHONPATH": REPO, "MARGIN_RANKS_DIR": workdir / RANKS_DIR, "HF_HUB_OFFLINE": 1},
        metadata={"margin_workdir": workdir},
    )
    earlier.write_text(json.dumps({"submission_id": job_id, "address": address}))
    on_event({"log": f"submitted Ray job {job_id} to {address}"})
    reader, result = EventReader(events_path), None

    def relay():
        nonlocal result
        for event in reader.new_events():
            if "result" in event:
                result = event["result"]
            else:
                on_event(event)

    try:
        ray_job_follow(client, job_id, cancel_requested=cancel_requested, on_poll=relay)
    except RayError as error:
        raise DistributedRunError(str(error)) from error
    finally:
        # Ray's copy of the output beside the events, where the local run leaves torchrun.log.
        (workdir / LOG_NAME).write_text(_logs_or_note(client, job_id))
    if result is None:
        raise DistributedRunError(f"Ray job {job_id} succeeded but rank 0 reported no result; "
                                  f"last log lines:\n{ray_job_logs_tail(client, job_id)}")
    earlier.unlink(missing_ok=True)
    return result


def _logs_or_note(client, job_id: str) -> str:
    try:
        return client.get_job_logs(job_id)
    except Exception as error:
        return f"(Ray job {job_id}: logs unavailable: {error})\n"
