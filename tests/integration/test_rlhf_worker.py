"""A real redis-server and Celery worker run the policy jobs on the tiny models: rejection
sampling makes a new version; a PPO job reports each iteration and stops when cancelled."""

import pytest

from margin.jobs import job_cancel_request
from margin.models import Job
from rewardmodel.models import RewardModel
from rlhf import jobs
from rlhf.models import PolicyVersion
from tests.factories import DialogueFactory, ProjectFactory
from tests.real_services import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def world(tiny_policy, tiny_reward_model_path):
    RewardModel.objects.create(name="tiny-helpful", objective="helpfulness", base_model="tiny",
                               checkpoint_path=str(tiny_reward_model_path))
    project = ProjectFactory(name="helpful")
    for _ in range(6):
        DialogueFactory(project=project)
    return tiny_policy


def finished(job):
    job.refresh_from_db()
    return job.is_finished


def test_worker_runs_rejection_sampling_into_a_new_version(start_worker, world):
    start_worker()
    job = jobs.rejection_sample_start(config={
        "policy": "tiny", "helpfulness_rm": "tiny-helpful", "k": 2, "max_new_tokens": 4, "batch_size": 2,
        "micro_batch_size": 2, "max_length": 256, "epochs": 1.0, "max_prompts": 3,
    })

    wait_until(lambda: finished(job), 180, "the rejection-sampling job")
    assert job.state == Job.State.SUCCEEDED, job.error
    version = PolicyVersion.objects.get(pk=job.result["policy_version_id"])
    assert version.parent == world and version.job == job
    assert [p["k"] for p in version.metrics["reward_vs_k"]] == [1, 2]
    assert job.attempts == 1 and job.percent == 100


def test_worker_stops_a_ppo_job_when_staff_cancel_it(start_worker, world):
    start_worker()
    job = jobs.ppo_start(config={
        "policy": "tiny", "helpfulness_rm": "tiny-helpful", "iterations": 500, "batch_size": 2,
        "minibatch_size": 1, "max_new_tokens": 4, "max_prompts": 3, "checkpoint_every": 1000,
    })

    wait_until(lambda: job.refresh_from_db() or len(job.metrics.get("ppo_iterations", [])) >= 2, 180,
               "two PPO iterations to be reported")
    job_cancel_request(job=job)

    wait_until(lambda: finished(job), 60, "the cancelled job to stop")
    assert job.state == Job.State.CANCELLED
    assert job.progress_step < 500
    assert not PolicyVersion.objects.filter(kind=PolicyVersion.Kind.PPO).exists()
