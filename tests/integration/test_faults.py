"""Workers die, Redis restarts, messages arrive twice: every job still finishes, once.

The job row is the record of truth. A killed worker stops renewing its lease; the reconciler
(beat, every MARGIN_RECONCILE_SECONDS) re-queues the job and the next worker resumes it from
its last complete checkpoint.
"""

import pytest

from margin.celery import app
from margin.jobs import TASK_FOR_KIND
from margin.models import Job
from rewardmodel.models import RewardModel
from rewardmodel.services import reward_model_train_start
from tests.real_services import wait_until
from tests.rewardmodel.conftest import judged_project

pytestmark = pytest.mark.slow

# Short leases and a fast reconciler so a dead worker is noticed in seconds, not minutes.
FAST_RECOVERY = {"MARGIN_JOB_LEASE_SECONDS": "3", "MARGIN_RECONCILE_SECONDS": "1",
                 "MARGIN_JOB_RESEND_SECONDS": "3"}


def _config(base, **extra):
    # 48 judged comparisons -> 36 training pairs, 8 steps per epoch of 4 pairs, checkpoint every 2.
    return {"base_model": str(base), "learning_rate": 3e-4, "max_length": 64, "batch_size": 4,
            "gradient_accumulation_steps": 1, "heldout_fraction": 0.25, "epochs": 2.0,
            "checkpoint_every": 2, **extra}


def _refresh(job):
    job.refresh_from_db()
    return job


@pytest.mark.parametrize("kill", ["step:5", "checkpoint:3"])
def test_a_worker_killed_mid_training_resumes_from_its_last_complete_checkpoint(
    start_worker, tiny_model_path, kill
):
    job = reward_model_train_start(
        project=judged_project(48), name="survivor", config=_config(tiny_model_path)
    )
    doomed = start_worker("doomed", app="tests.integration.killing_worker",
                          env={**FAST_RECOVERY, "MARGIN_TEST_KILL": kill})
    assert doomed.wait(180) == -9  # SIGKILL, pool and all
    job.refresh_from_db()
    assert job.state == Job.State.RUNNING  # what the dead worker left behind

    start_worker("rescuer", beat=True, env=FAST_RECOVERY)
    wait_until(lambda: _refresh(job).is_finished, 180, "the job to finish on the second worker")
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.attempts == 2
    model = RewardModel.objects.get(name="survivor")
    # step:5 died after step 5 (checkpoint at 4); checkpoint:3 died writing step 6's (last: 4).
    assert model.metrics["resumed_from_step"] == 4
    assert model.metrics["steps"] == job.progress_total > 6
    assert job.result["heldout"]["pairs"] > 0  # evaluated after training, as an unbroken run is


def test_redis_restart_loses_no_job_and_runs_none_twice(start_worker, redis_server, tiny_model_path):
    project = judged_project(48)
    running = reward_model_train_start(project=project, name="first", config=_config(tiny_model_path))
    queued = reward_model_train_start(project=project, name="second", config=_config(tiny_model_path))
    start_worker("worker", beat=True, env=FAST_RECOVERY)
    wait_until(lambda: _refresh(running).progress_step >= 2, 120, "the first job to train")
    assert _refresh(queued).state == Job.State.QUEUED  # one job at a time: its message waits

    redis_server.restart()  # nothing persisted: the queued message is gone with it

    wait_until(lambda: _refresh(running).is_finished and _refresh(queued).is_finished, 240,
               "both jobs to finish after the restart")
    for job in (running, queued):
        assert job.state == Job.State.SUCCEEDED, job.error
        assert job.attempts == 1  # claimed once: never two copies at the same time
    assert set(RewardModel.objects.values_list("name", flat=True)) == {"first", "second"}


def test_the_same_training_message_delivered_twice_runs_once(start_worker, tiny_model_path):
    job = reward_model_train_start(
        project=judged_project(48), name="once", config=_config(tiny_model_path)
    )
    app.send_task(TASK_FOR_KIND[job.kind], args=[job.pk])  # a re-delivery of the same message
    start_worker("first")
    start_worker("second")
    wait_until(lambda: _refresh(job).is_finished, 180, "the job")
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.attempts == 1
    assert RewardModel.objects.get(name="once").metrics["resumed_from_step"] == 0
