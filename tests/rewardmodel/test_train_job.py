"""A reward-model job on too little data stops before training, and a job that fails registers
nothing (issue 15 item 7): the service, on the tiny model and the real database."""

import pytest

from margin.jobs import job_cancel_request
from margin.models import Job
from rewardmodel.data import NoTrainingData
from rewardmodel.models import RewardModel
from rewardmodel.services import reward_model_dir, reward_model_train_run, reward_model_train_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(settings, tmp_path):
    settings.MARGIN_MODEL_STORE = tmp_path / "models"
    return settings.MARGIN_MODEL_STORE


def _config(base, **extra):
    return {"base_model": str(base), "learning_rate": 3e-4, "max_length": 64, "batch_size": 4,
            "gradient_accumulation_steps": 2, "heldout_fraction": 0.25, **extra}


class Console:
    """A command's progress callback that remembers what it was told."""

    def __init__(self, on_line=None):
        self.steps, self.lines, self.on_line = [], [], on_line

    def __call__(self, step, total, metrics=None, log_line=None):
        self.steps.append(step)
        if log_line:
            self.lines.append(log_line)
            if self.on_line:
                self.on_line(log_line)


def test_no_heldout_pairs_stops_before_any_training_step(rm_project, tiny_model_path, store):
    job = reward_model_train_start(project=rm_project, name="thin", enqueue=False,
                                   config=_config(tiny_model_path, heldout_fraction=0.0))
    console = Console()
    with pytest.raises(NoTrainingData, match="too little data"):
        reward_model_train_run(job_id=job.pk, console=console)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert f"project {rm_project.name!r}" in job.error and "0 held-out pairs" in job.error
    assert "64 usable pairs" in job.error
    assert console.steps == [] and job.progress_step == 0  # not one training step
    assert not RewardModel.objects.exists() and not reward_model_dir("thin").exists()


def test_a_job_that_fails_after_training_leaves_no_model_and_no_checkpoint(rm_project, tiny_model_path, store):
    job = reward_model_train_start(project=rm_project, name="stopped", enqueue=False,
                                   config=_config(tiny_model_path, epochs=1.0))

    def cancel_when_evaluating(line):  # staff press cancel once training is over
        if line.startswith("evaluating"):
            job_cancel_request(job=Job.objects.get(pk=job.pk))

    console = Console(cancel_when_evaluating)
    reward_model_train_run(job_id=job.pk, console=console)
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED and max(console.steps) > 0  # it did train
    assert not RewardModel.objects.exists()
    assert not reward_model_dir("stopped").exists()
