"""A real Celery worker trains a reward model from a queued job, reports progress, and stops on cancel."""

import pytest

from margin.jobs import job_cancel_request
from margin.models import Job
from rewardmodel.models import RewardModel
from rewardmodel.services import reward_model_train_start
from tests.real_services import wait_until
from tests.rewardmodel.conftest import judged_project

pytestmark = pytest.mark.slow


def _config(base, **extra):
    return {"base_model": str(base), "learning_rate": 3e-4, "max_length": 64, "batch_size": 4,
            "gradient_accumulation_steps": 2, "heldout_fraction": 0.25, "epochs": 2.0, **extra}


def _state(job):
    job.refresh_from_db()
    return job.state


def test_worker_trains_registers_and_reports_progress(start_worker, tiny_model_path):
    project = judged_project(48)
    job = reward_model_train_start(project=project, name="rm-from-worker", config=_config(tiny_model_path))
    start_worker()
    wait_until(lambda: _state(job) in Job.FINISHED_STATES, 180, "the training job")
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.progress_total > 1 and job.progress_step == job.progress_total
    assert job.metrics["loss/rm"] > 0 and 0 <= job.metrics["rm/accuracy"] <= 1
    model = RewardModel.objects.get(name="rm-from-worker")
    assert model.job == job and model.metrics["heldout"]["pairs"] > 0
    assert job.result["reward_model_id"] == model.pk


def test_cancel_stops_a_running_training_job(start_worker, tiny_model_path):
    project = judged_project(48)
    job = reward_model_train_start(
        project=project, name="cancelled-rm", config=_config(tiny_model_path, epochs=50.0)
    )
    start_worker()
    wait_until(lambda: (job.refresh_from_db() or job.progress_step) >= 2, 120, "training to start")
    job_cancel_request(job=job)
    wait_until(lambda: _state(job) == Job.State.CANCELLED, 60, "the job to stop")
    assert job.progress_step < job.progress_total
    assert not RewardModel.objects.filter(name="cancelled-rm").exists()


def test_worker_fits_a_probe_on_the_real_chat_model(start_worker, smollm2_dir):
    """The CPU recipes' method (rewardmodel/recipes/): SmolLM2-135M-Instruct stays frozen, four of
    its layers are read, and the registered model scores through RewardScorer like any other."""
    from rewardmodel.scoring import load_scorer

    project = judged_project(48)
    config = {"base_model": str(smollm2_dir), "method": "probe", "probe_layers": "8,16,24,30",
              "max_length": 64, "heldout_fraction": 0.25}
    job = reward_model_train_start(project=project, name="probe-rm", config=config)
    start_worker()
    wait_until(lambda: _state(job) in Job.FINISHED_STATES, 300, "the probe job")
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.progress_step == job.progress_total and "rm/cv_accuracy" in job.metrics
    model = RewardModel.objects.get(name="probe-rm")
    assert model.metrics["heldout"]["accuracy"] >= 0.9  # polite on-topic answers against "No."
    question = [{"role": "user", "content": "Question 7: tell me something about knots."}]
    polite, curt = load_scorer("probe-rm", "cpu").score([
        [*question, {"role": "assistant", "content": "Gladly! Here is a useful fact about knots, explained step by step."}],
        [*question, {"role": "assistant", "content": "No."}],
    ])
    assert polite > curt
