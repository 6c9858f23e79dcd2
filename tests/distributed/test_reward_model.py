"""Reward-model training as 2 gloo processes under the real torchrun (FSDP2, CPU, tiny model):
the same model as one process; a killed rank restarts the run from the sharded checkpoint; a
killed worker leaves no rank behind and its 2-rank checkpoint resumes in one process; cancel
leaves no process behind."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from modelruntime.launch import DistributedRunError, RunCancelled, distributed_run, torchrun_command
from rewardmodel.training import RESUME_DIR, train
from tests.conftest import REPO
from tests.distributed.helpers import alive, processes_running, ranks_of, rm_scores, rm_spec_run, wait_for_step
from tests.rewardmodel.synthetic import resume_config, separable_pairs

# Adam divides each update by the gradient's running size, so a loss normalised over the wrong
# number of pairs (a rank dividing by its own share, say) would change almost nothing; a large
# eps and no clipping make small updates proportional to the gradient, so such a bug shows.
CONFIG = resume_config(checkpoint_every=2, adam_eps=1e-3, max_grad_norm=1000.0)
PAIRS = separable_pairs(48)  # 48 pairs / (4 per pass x 2 passes) = 6 optimizer steps
PROBE = separable_pairs(12, offset=200)
# Measured: the 2-rank model's scores differ from the 1-process ones by < 1e-6. Each rank pads
# its half of a micro-batch to its own longest row and the gradients are summed in another
# order, so float32 rounding differs; after 6 steps that stays far below 1e-4. Training on
# another order or another share of the pairs moves the scores by > 1e-2.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def one_process(tiny_model_path, tmp_path_factory):
    result = train(CONFIG, PAIRS, tmp_path_factory.mktemp("one") / "rm", base_path=tiny_model_path)
    return result, rm_scores(result.checkpoint, PROBE)


def test_two_ranks_train_the_same_reward_model_as_one_process(one_process, tiny_model_path, tmp_path):
    single, single_scores = one_process
    steps = []
    result = rm_spec_run(CONFIG, PAIRS, tmp_path / "rm", tiny_model_path, on_event=steps.append)

    assert [e["step"] for e in steps if "step" in e] == list(range(1, 7))  # rank 0 alone reports
    assert result["steps"] == single.steps and result["pairs"] == 48
    assert result["metrics"]["tokens"] == single.metrics["tokens"]  # every pair seen once, by one rank
    assert abs(result["metrics"]["loss/rm"] - single.metrics["loss/rm"]) < TOLERANCE
    assert torch.allclose(rm_scores(result["checkpoint"], PROBE), single_scores, atol=TOLERANCE)
    assert not (tmp_path / "rm" / RESUME_DIR).exists()


def _kill_rank_one_at(step, output_dir, events):
    def on_event(event):
        events.append(event)
        if event.get("step") == step and not any("killed" in e for e in events):
            events.append({"killed": True})
            os.kill(int((output_dir / "distributed" / "ranks" / "rank-1.pid").read_text()), signal.SIGKILL)
    return on_event


def test_a_killed_rank_restarts_from_the_last_sharded_checkpoint_to_the_same_model(
        one_process, tiny_model_path, tmp_path):
    _, single_scores = one_process
    events = []
    result = rm_spec_run(CONFIG, PAIRS, tmp_path / "rm", tiny_model_path, max_restarts=1,
                         on_event=_kill_rank_one_at(3, tmp_path / "rm", events))

    assert {"killed": True} in events
    assert [e for e in events if "rank 1 exited with -9 (SIGKILL)" in e.get("log", "")]  # relayed to the job log
    # Step 2's checkpoint was complete when rank 1 died during step 4; step 4's may have been.
    assert result["resumed_from_step"] in (2, 4)
    assert torch.allclose(rm_scores(result["checkpoint"], PROBE), single_scores, atol=TOLERANCE)


def test_a_killed_worker_leaves_no_rank_and_its_two_rank_checkpoint_resumes_in_one_process(
        one_process, tiny_model_path, tmp_path):
    _, single_scores = one_process
    out = tmp_path / "rm"
    worker = subprocess.Popen([sys.executable, "-m", "tests.distributed.helpers", str(tiny_model_path), str(out)],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_step(out / "distributed" / "events.jsonl", 3)
    worker.kill()  # as the OOM killer or a lost machine would: no clean-up runs in the worker
    worker.wait()
    spec = str(out / "distributed" / "spec.json")
    deadline = time.monotonic() + 30  # torchrun gets SIGTERM from the kernel, then stops its ranks
    while processes_running(spec) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes_running(spec), "torchrun or a rank outlived the worker"
    saved = sorted((out / RESUME_DIR).glob("step-*"))
    assert saved and (saved[-1] / ".metadata").is_file()  # DCP's sharded layout

    resumed = train(CONFIG, PAIRS, out, base_path=tiny_model_path)  # no process group: one process

    assert resumed.resumed_from_step in (2, 4)
    assert torch.allclose(rm_scores(resumed.checkpoint, PROBE), single_scores, atol=TOLERANCE)


def test_cancel_stops_every_rank_and_leaves_no_process(tiny_model_path, tmp_path):
    long_run = resume_config(epochs=50.0, checkpoint_every=1000)
    seen = []
    with pytest.raises(RunCancelled):
        rm_spec_run(long_run, PAIRS, tmp_path / "rm", tiny_model_path, on_event=seen.append,
                    cancel=lambda: any("step" in e for e in seen))
    ranks = ranks_of(tmp_path / "rm")
    assert len(ranks) == 2
    assert not [pid for pid in ranks if alive(pid)]
    assert not processes_running(str(tmp_path / "rm" / "distributed" / "spec.json")), "torchrun outlived the cancel"
    assert max(e["step"] for e in seen if "step" in e) < 50 * 6


def test_a_bad_spec_fails_with_the_rank_and_the_reason(tmp_path):
    (tmp_path / "spec.json").write_text('{"kind": "dance", "config": {}, "output_dir": "x", "data": "d.json"}')
    (tmp_path / "d.json").write_text("[]")
    with pytest.raises(DistributedRunError, match=r"rank 0 exited with 1: ValueError: spec kind 'dance' is not one"):
        distributed_run(entry_args=["--spec", str(tmp_path / "spec.json")], nproc=1, workdir=tmp_path,
                        on_event=lambda e: None, cancel_requested=lambda: False)
    with pytest.raises(ValueError, match="nproc and nnodes must be >= 1, got nproc=0"):
        distributed_run(entry_args=[], nproc=0, workdir=tmp_path, on_event=print, cancel_requested=lambda: False)
    with pytest.raises(ValueError, match="nnodes is 2: a c10d rendezvous endpoint"):
        distributed_run(entry_args=[], nproc=1, nnodes=2, workdir=tmp_path, on_event=print,
                        cancel_requested=lambda: False)


def test_several_nodes_join_one_c10d_rendezvous(tmp_path):
    command = torchrun_command(entry_args=["--spec", "s.json"], nproc=8, nnodes=2, rdzv_endpoint="10.0.0.1:29400",
                               events_path=tmp_path / "e.jsonl")
    assert command[command.index("--nnodes"):command.index("-m", 3)] == [
        "--nnodes", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint", "10.0.0.1:29400"]
    assert "--standalone" not in command and command[-4:] == ["--spec", "s.json", "--events", str(tmp_path / "e.jsonl")]
