"""ray_launch against a real local Ray head: a torchrun-shaped command runs as a Ray job, rank 0's
events come back, failure and cancel behave as in the local run (modelruntime/launch.py)."""

import json
import sys
import time
from pathlib import Path

import pytest

from modelruntime.launch import LOG_NAME, DistributedRunError, RunCancelled
from modelruntime.raylaunch import JOB_FILE, RayError, ray_client, ray_launch
from tests.ray.conftest import free_port
from tests.real_services import wait_until


def standin(workdir: Path, mode: str) -> list[str]:
    return [sys.executable, "-m", "tests.ray.standin_entry", "--events", str(workdir / "events.jsonl"),
            "--mode", mode, "--pid-file", str(workdir / "standin.pid")]


def launch(ray_head, workdir, mode, cancel_requested=lambda: False):
    events = []
    result = ray_launch(command=standin(workdir, mode), workdir=workdir, events_path=workdir / "events.jsonl",
                        on_event=events.append, cancel_requested=cancel_requested, address=ray_head.address)
    return result, events


def test_a_run_on_the_cluster_reports_its_progress_and_result(ray_head, tmp_path):
    client = ray_client(ray_head.address)
    orphan = client.submit_job(entrypoint="sleep 300")  # the run of a worker that died following it
    (tmp_path / JOB_FILE).write_text(json.dumps({"submission_id": orphan, "address": ray_head.address}))

    result, events = launch(ray_head, tmp_path, "ok")

    assert result == {"checkpoint": "/store/rm", "accuracy": 0.75}
    assert [e["step"] for e in events if "step" in e] == [1, 2]
    logs = [e["log"] for e in events if "log" in e]
    assert logs[0].startswith("submitted Ray job raysubmit_")
    # The entry point ran from the repository with it on PYTHONPATH, as torchrun's ranks do locally.
    assert logs[1] == f"ran in {Path(__file__).resolve().parents[2]} with PYTHONPATH={Path(__file__).resolve().parents[2]}"
    assert "Running entrypoint for job" in (tmp_path / LOG_NAME).read_text()
    assert not (tmp_path / JOB_FILE).exists()
    assert client.get_job_status(orphan).value == "STOPPED"  # stopped before this run was submitted


def test_a_failed_run_names_the_ray_job_and_its_last_log_lines(ray_head, tmp_path):
    with pytest.raises(DistributedRunError) as failed:
        launch(ray_head, tmp_path, "fail")

    message = str(failed.value)
    job_id = json.loads((tmp_path / JOB_FILE).read_text())["submission_id"]
    assert f"Ray job {job_id} failed" in message
    assert "rank 0: CUDA out of memory (stand-in)" in message


def test_cancel_stops_the_ray_job_and_its_process(ray_head, tmp_path):
    events = []

    with pytest.raises(RunCancelled, match="Ray job raysubmit_.* was stopped"):  # once the run reported
        ray_launch(command=standin(tmp_path, "hang"), workdir=tmp_path, events_path=tmp_path / "events.jsonl",
                   on_event=events.append, cancel_requested=lambda: any("step" in e for e in events),
                   address=ray_head.address)

    job_id = json.loads((tmp_path / JOB_FILE).read_text())["submission_id"]
    assert ray_client(ray_head.address).get_job_status(job_id).value == "STOPPED"
    pid = int((tmp_path / "standin.pid").read_text())
    wait_until(lambda: not Path(f"/proc/{pid}").exists() or "(Z)" in _state(pid), 10, "the stand-in to end")


def test_an_address_where_no_ray_answers_is_named():
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(RayError, match=f"no Ray cluster answers at http://{address}"):
        ray_client(address)
    with pytest.raises(RayError, match="ray://head:10001: Ray Jobs needs the dashboard address"):
        ray_client("ray://head:10001")


def _state(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2].join("()")
    except OSError:
        return ""




def test_a_several_node_run_is_refused_before_anything_is_submitted(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "2",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", "head:29400", "-m", "modelruntime.distributed_entry"]
    with pytest.raises(DistributedRunError, match="on Ray a job runs on one node: set nodes to 1"):
        ray_launch(command=command, workdir=tmp_path, events_path=tmp_path / "events.jsonl", on_event=print,
                   cancel_requested=lambda: False, address="http://127.0.0.1:1")
    assert not (tmp_path / JOB_FILE).exists()


def test_a_gpu_cluster_run_waits_for_a_gpu_per_process_and_cancel_still_ends_it(ray_head, tmp_path, monkeypatch):
    monkeypatch.setenv("MARGIN_RAY_GPUS_PER_PROCESS", "1")
    client, seen = ray_client(ray_head.address), []

    def look_then_cancel():  # this head has 2 CPUs and no GPU: the run can only wait
        info = client.get_job_info(json.loads((tmp_path / JOB_FILE).read_text())["submission_id"])
        seen.append((time.monotonic(), info.status.value, info.message))
        return seen[-1][0] - seen[0][0] > 6

    with pytest.raises(RunCancelled):
        launch(ray_head, tmp_path, "ok", cancel_requested=look_then_cancel)
    assert {status for _, status, _ in seen} == {"PENDING"}
    assert "waiting for resources" in seen[-1][2]
    assert not (tmp_path / "events.jsonl").exists()  # nothing of it ran
