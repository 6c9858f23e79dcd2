"""A reward-model job with processes=2 through the real Celery worker: torchrun runs the ranks,
rank 0's progress reaches the job row, and the model is registered like a one-process one."""

import pytest
from django.core.exceptions import ValidationError

from margin.models import Job
from modelruntime.modelstore import read_metadata
from rewardmodel.models import RewardModel
from rewardmodel.services import reward_model_train_start
from tests.real_services import wait_until
from tests.rewardmodel.conftest import judged_project

pytestmark = pytest.mark.slow


def _config(base, **extra):
    return {"base_model": str(base), "learning_rate": 3e-4, "max_length": 64, "batch_size": 4,
            "gradient_accumulation_steps": 2, "heldout_fraction": 0.25, "epochs": 1.0, **extra}


def test_a_two_process_job_reports_progress_and_registers_the_model(start_worker, tiny_model_path):
    project = judged_project(48)
    job = reward_model_train_start(project=project, name="rm-two-ranks",
                                   config=_config(tiny_model_path, processes=2))
    start_worker()
    wait_until(lambda: job.refresh_from_db() or job.is_finished, 240, "the 2-process training job")

    assert job.state == Job.State.SUCCEEDED, job.error
    assert "starting 2 processes x 1 node(s) under torchrun" in job.log
    assert "2 processes, " in job.log  # rank 0's own log line, relayed
    assert job.progress_total > 1 and job.progress_step == job.progress_total
    assert job.metrics["loss/rm"] > 0 and 0 <= job.metrics["rm/accuracy"] <= 1
    model = RewardModel.objects.get(name="rm-two-ranks")
    assert model.job == job and model.metrics["heldout"]["pairs"] > 0
    assert read_metadata(model.checkpoint_path)["config"]["processes"] == 2


@pytest.mark.django_db
@pytest.mark.parametrize("bad, field", [({"processes": 0}, "processes"), ({"nodes": 2}, "rdzv_endpoint"),
                                        ({"rdzv_endpoint": "no port"}, "rdzv_endpoint")])
def test_a_bad_process_setting_is_refused_naming_the_field(tiny_model_path, bad, field):
    project = judged_project(8)
    with pytest.raises(ValidationError) as refused:
        reward_model_train_start(project=project, name="never", config=_config(tiny_model_path, **bad))
    assert field in refused.value.message_dict
    assert not Job.objects.exists()
