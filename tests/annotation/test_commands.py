"""Management commands: the demo seed and the embedded server, including bad input."""

import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Comparison, Dialogue, Judgment, Project
from margin import demo
from margin.models import Job
from tests.conftest import REPO

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_accounts_and_real_pairs_once(capsys):
    call_command("seed_demo", pairs=3)
    call_command("seed_demo", pairs=3)  # idempotent: nothing doubles
    out = capsys.readouterr().out
    assert "demo-annotator / margin-demo-annotator" in out
    safety = Project.objects.get(name="Demo · Safety")
    helpful = Project.objects.get(name="Demo · Helpfulness")
    assert Comparison.objects.filter(batch__project=safety).count() == 3
    # HH transcripts: the shared prefix is the context, ending with the human turn.
    dialogue = Dialogue.objects.filter(project=safety).first()
    assert dialogue.is_adversarial and dialogue.turns.last().role == "user"
    assert Comparison.objects.filter(batch__project__name="Demo · Helpfulness").count() == 3
    # Seeded through dataio's importer, without the files' labels: the demo's annotators judge them.
    assert not Judgment.objects.filter(comparison__batch__project__in=[safety, helpful]).exists()
    assert Comparison.objects.filter(batch__project=helpful, source__startswith="tulu1-human-eval:").count() == 3
    # The reward model's data: Tulu 1's pairs with their human labels, in a project annotators
    # never see; one training job queued for the gpu worker, however often the seed runs.
    labelled = Project.objects.get(name=demo.LABELLED_PROJECT)
    assert not labelled.is_active and labelled.objective == "helpfulness"
    assert Comparison.objects.filter(batch__project=labelled).count() == demo.LABELLED_PAIRS
    assert Judgment.objects.filter(comparison__batch__project=labelled, strength="better").exists()
    job = Job.objects.get(kind=Job.Kind.TRAIN_REWARD_MODEL)
    assert job.params == {"project_id": labelled.pk, "name": demo.REWARD_MODEL_NAME,
                          "config": demo.REWARD_MODEL_CONFIG}
    assert out.count(f"Queued job {job.pk}: train demo-helpfulness-rm") == 1
    assert f"{demo.LABELLED_PROJECT}: {demo.LABELLED_PAIRS} new comparisons" in out


def test_seed_demo_without_a_reward_model(capsys):
    call_command("seed_demo", pairs=2, no_reward_model=True)
    assert not Project.objects.filter(name=demo.LABELLED_PROJECT).exists()
    assert not Job.objects.exists()


def test_seed_demo_refuses_negative_counts_and_missing_data(settings, tmp_path):
    with pytest.raises(CommandError, match="zero or more"):
        call_command("seed_demo", pairs=-1)
    settings.MARGIN_SHARED_DATA = tmp_path / "nowhere"
    with pytest.raises(CommandError, match="Could not read the demo data"):
        call_command("seed_demo", pairs=2)
    assert not Comparison.objects.exists()


def test_serve_says_clearly_when_redis_is_unreachable():
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [sys.executable, "manage.py", "serve", "--no-redis"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "Redis at redis://127.0.0.1:1/0 did not answer" in result.stderr
