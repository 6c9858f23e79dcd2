"""Start one training job as N torch.distributed processes and follow it: `distributed_run`.

The `gpu`-queue Celery task stays the door (issue 19): its job function builds the data as for a
one-process run, writes it with `spec_write`, and calls `distributed_run`, which starts

    python -m torch.distributed.run --nproc_per_node N --standalone \\
        -m modelruntime.distributed_entry --spec WORKDIR/spec.json --events WORKDIR/events.jsonl

(several nodes: `--nnodes M --rdzv-backend c10d --rdzv-endpoint HOST:PORT` instead of
`--standalone`) as a child process group, relays what rank 0 reports, passes cancel to every rank
and fails clearly when a rank dies. With MARGIN_RAY_ADDRESS set, the same command goes to a Ray
cluster through modelruntime/raylaunch.py instead.

The work folder (the job's output dir / "distributed"; every node must see it):

    spec.json     {"kind": "reward_model" | "sft" | "ppo",
                   "config": {...},          the algorithm config's to_dict()
                   "output_dir": "...",      where the trainer writes resume/ and the final model
                   "base_path": "...",       the checkpoint to start from
                   "metadata": {...},        extra keys for the final checkpoint's margin.json
                   "data": "data.json",      relative to the work folder
                   ...}                      kind-specific keys (sft: "seed")
    data.json     what the job function built: reward_model: a list of TrainingPair dicts;
                  sft: a list of [prompt messages, response]; ppo: a list of prompts
    events.jsonl  written by rank 0, one JSON object a line:
                  {"step": 3, "total": 12, "metrics": {...}}   progress
                  {"log": "..."}                               a line for the job's log
                  {"result": {...}}                            the trainer's result, last
    ranks/        rank-<N>.pid, written by each rank (so cancel reaches ranks that torchrun
                  started in their own sessions)
    torchrun.log  torchrun's and the ranks' output; the error names the rank that died

Django-free: the job function turns events into job progress and cancel into JobCancelled.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
SPEC_NAME = "spec.json"
DATA_NAME = "data.json"
EVENTS_NAME = "events.jsonl"
RANKS_DIR = "ranks"
LOG_NAME = "torchrun.log"
ENTRY_MODULE = "modelruntime.distributed_entry"
POLL_SECONDS = 0.2
# torchrun forwards SIGTERM to its ranks and waits for them; after this long everything is killed.
TERM_GRACE_SECONDS = 10


class DistributedRunError(RuntimeError):
    """A rank died or torchrun failed; the message names the rank and its exit code."""


class RunCancelled(Exception):
    """cancel_requested() said stop; every process of the run is gone when this is raised."""


def spec_write(workdir: Path | str, *, spec: dict, data) -> list[str]:
    """Write spec.json and data.json into a fresh `workdir`; returns the entry point's arguments.

    Events of an earlier attempt are dropped: a resumed run reports from its own first step.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in [workdir / EVENTS_NAME, *workdir.glob(f"{RANKS_DIR}/*.pid")]:
        stale.unlink(missing_ok=True)
    (workdir / DATA_NAME).write_text(json.dumps(data))
    (workdir / SPEC_NAME).write_text(json.dumps({**spec, "data": DATA_NAME}, indent=2))
    return ["--spec", str(workdir / SPEC_NAME)]


def spec_run(config, *, spec: dict, data, workdir: Path | str, on_progress=None, on_event=None,
             cancel_requested: Callable[[], bool] = lambda: False, max_restarts: int = 1) -> dict:
    """Run a trainer's spec as `config.processes` x `config.nodes` ranks (the DistributedConfig of
    modelruntime/config.py): spec_write, then distributed_run. Rank 0's step events go to
    `on_progress(step, total, metrics)`, or every event to `on_event` when given."""
    if on_event is None:
        def on_event(event):
            if "step" in event and on_progress:
                on_progress(event["step"], event["total"], event["metrics"])

    entry_args = spec_write(workdir, spec=spec, data=data)
    return distributed_run(entry_args=entry_args, nproc=config.processes, nnodes=config.nodes,
                           rdzv_endpoint=config.rdzv_endpoint, workdir=Path(workdir), on_event=on_event,
                           cancel_requested=cancel_requested, max_restarts=max_restarts)


def torchrun_command(*, entry_args: list[str], nproc: int, events_path: Path, nnodes: int = 1,
                     rdzv_endpoint: str = "") -> list[str]:
    """The torchrun argv (through this interpreter, so the venv's torch runs every rank)."""
    if nproc < 1 or nnodes < 1:
        raise ValueError(f"nproc and nnodes must be >= 1, got nproc={nproc}, nnodes={nnodes}")
    if nnodes > 1 and not rdzv_endpoint:
        raise ValueError(f"nnodes is {nnodes}: a c10d rendezvous endpoint (host:port) is needed")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    if nnodes > 1 or rdzv_endpoint:
        command += ["--nnodes", str(nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint]
    else:
        command += ["--standalone"]  # a free local port: parallel jobs on one machine never clash
    return [*command, "-m", ENTRY_MODULE, *entry_args, "--events", str(events_path)]


def distributed_run(*, entry_args: list[str], nproc: int, workdir: Path, on_event: Callable[[dict], None],
                    cancel_requested: Callable[[], bool], nnodes: int = 1, rdzv_endpoint: str = "",
                    max_restarts: int = 0) -> dict:
    """Run the entry point under torchrun; relay rank 0's events; return its result event's dict.

    `max_restarts`: after a rank dies, torchrun is started again this many times; the trainer
    resumes from its last complete sharded checkpoint. (Not torchrun's own --max-restarts: with
    gloo on torch 2.13 its restarted ranks hang in init_process_group.)

    Raises RunCancelled after stopping every process when cancel_requested() turns true, re-raises
    (after the same clean-up) what on_event raises, and raises DistributedRunError when a rank dies.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    events_path = workdir / EVENTS_NAME
    command = torchrun_command(entry_args=entry_args, nproc=nproc, events_path=events_path, nnodes=nnodes,
                               rdzv_endpoint=rdzv_endpoint)
    if os.environ.get("MARGIN_RAY_ADDRESS"):
        from modelruntime.raylaunch import ray_launch

        return ray_launch(command=command, workdir=workdir, events_path=events_path, on_event=on_event,
                          cancel_requested=cancel_requested, address=os.environ["MARGIN_RAY_ADDRESS"])
    events_path.unlink(missing_ok=True)
    (workdir / RANKS_DIR).mkdir(exist_ok=True)
    if nnodes > 1:  # without Ray nothing starts the other nodes' torchrun: the operator does, on each
        on_event({"log": f"this node joins {rdzv_endpoint}; on each of the other {nnodes - 1} node(s) run: "
                         f"{shlex.join(command)}"})
    (workdir / LOG_NAME).unlink(missing_ok=True)
    reader = EventReader(events_path)
    restarts = 0
    while True:
        try:
            return _torchrun_follow(command, workdir, reader, on_event, cancel_requested, nproc * nnodes)
        except DistributedRunError as error:
            if restarts == max_restarts:
                raise
            restarts += 1
            on_event({"log": f"{error}; starting every rank again from the last complete checkpoint"})


def _torchrun_follow(command, workdir: Path, reader: "EventReader", on_event, cancel_requested, processes) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "MARGIN_RANKS_DIR": str(workdir / RANKS_DIR)}
    with open(workdir / LOG_NAME, "ab") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   preexec_fn=_die_with_parent)
    result = None
    try:
        while True:
            exited = process.poll() is not None
            for event in reader.new_events():  # after poll(): a finished run's last lines are read too
                if "result" in event:
                    result = event["result"]
                else:
                    on_event(event)
            if exited:
                break
            if cancel_requested():
                raise RunCancelled(f"cancelled; the {processes} processes were stopped")
            time.sleep(POLL_SECONDS)
    except BaseException:
        process_group_stop(process, workdir / RANKS_DIR)
        raise
    if process.returncode != 0:
        process_group_stop(process, workdir / RANKS_DIR)  # a rank torchrun failed to stop
        raise DistributedRunError(failure_message(process.returncode, workdir / LOG_NAME))
    if result is None:
        raise DistributedRunError(f"torchrun exited 0 but rank 0 reported no result (see {workdir / LOG_NAME})")
    return result


class EventReader:
    """Complete lines appended to the events file since the last call, parsed."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0

    def new_events(self) -> list[dict]:
        if not self.path.is_file():
            return []
        with open(self.path, "rb") as file:
            file.seek(self.offset)
            chunk = file.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for the next call
        self.offset += len(complete)
        return [json.loads(line) for line in complete.decode().splitlines() if line.strip()]


def process_group_stop(process: subprocess.Popen, ranks_dir: Path) -> None:
    """SIGTERM torchrun's group and every rank's session, then SIGKILL whatever is left."""
    groups = {process.pid, *rank_pids(ranks_dir)}  # torchrun starts each rank in its own session
    _signal_groups(groups, signal.SIGTERM)
    try:
        process.wait(timeout=TERM_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    _signal_groups(groups, signal.SIGKILL)
    process.wait()


def rank_pids(ranks_dir: Path) -> list[int]:
    pids = []
    for path in Path(ranks_dir).glob("rank-*.pid"):
        try:
            pids.append(int(path.read_text()))
        except (OSError, ValueError):  # a rank writing its file right now
            continue
    return pids


def _signal_groups(groups, sig) -> None:
    for group in groups:
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass


def failure_message(returncode: int, log_path: Path) -> str:
    """'rank 1 exited with -9 (SIGKILL)' from torchrun's failure summary, and where the log is."""
    text = log_path.read_text(errors="replace") if log_path.is_file() else ""
    failure = r"rank\s*:\s*(\d+)\s*\(local_rank:\s*\d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)"
    root_cause = text[text.rfind("Root Cause"):] if "Root Cause" in text else text
    found = re.search(failure, root_cause) or re.search(failure, text)
    if not found:
        return f"torchrun exited with {returncode}; no rank failure was reported (see {log_path})"
    rank, code = found.group(1), int(found.group(2))
    why = f" ({signal.Signals(-code).name})" if code < 0 and -code in signal.valid_signals() else ""
    # The failed rank's own last words, e.g. "[rank0]: ValueError: ...".
    errors = re.findall(rf"^\[rank{rank}\]: (\w+(?:Error|Exception)\b.*)$", text, re.MULTILINE)
    said = f": {errors[-1]}" if errors else ""
    return f"rank {rank} exited with {code}{why}{said} (see {log_path})"


def _die_with_parent():
    # If the worker running this job is killed, torchrun gets SIGTERM and stops its ranks, so the
    # re-queued job (margin/jobs.py's reconciler) never races an orphaned run on the same folder.
    _prctl_death_signal(signal.SIGTERM)


def _prctl_death_signal(sig) -> None:
    if sys.platform != "linux":
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig))
