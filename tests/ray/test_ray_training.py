"""A reward-model job with MARGIN_RAY_ADDRESS set trains on the Ray cluster (the test's local head):
the same torchrun entry point with 2 gloo ranks, submitted as a Ray job, ending registered as a
local torchrun run does."""

import pytest

from margin.models import Job
from modelruntime.modelstore import checkpoint_is_complete
from rewardmodel.models import RewardModel
from rewardmodel.services import reward_model_dir, reward_model_train_run, reward_model_train_start
from tests.rewardmodel.conftest import judged_project

pytestmark = pytest.mark.django_db


def test_a_reward_model_job_trains_on_ray_and_is_registered(ray_head, tiny_model_path, settings, tmp_path,
                                                            monkeypatch):
    settings.MARGIN_MODEL_STORE = tmp_path / "models"
    monkeypatch.setenv("MARGIN_RAY_ADDRESS", ray_head.address)
    project = judged_project(16)
    config = {"base_model": str(tiny_model_path), "learning_rate": 3e-4, "max_length": 64, "batch_size": 4,
              "heldout_fraction": 0.25, "epochs": 1.0, "processes": 2}
    job = reward_model_train_start(project=project, name="rm-on-ray", config=config, enqueue=False)

    reward_model_train_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error + job.log
    assert "submitted Ray job raysubmit_" in job.log and "2 processes" in job.log
    model = RewardModel.objects.get(name="rm-on-ray")
    assert model.job == job and model.metrics["steps"] == job.progress_total > 0
    assert checkpoint_is_complete(model.checkpoint_path) and job.result["heldout"]
    ray_log = (reward_model_dir("rm-on-ray") / "distributed" / "torchrun.log").read_text()
    assert "Running entrypoint for job raysubmit_" in ray_log and "torch.distributed.run" in ray_log
