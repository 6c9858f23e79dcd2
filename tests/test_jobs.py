"""The job lease: renewed while a job runs, so only a dead worker's job is handed out again."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from margin.jobs import job_claim, job_run, jobs_requeue_stale
from margin.models import Job


@pytest.mark.django_db(transaction=True)
def test_a_job_busy_without_progress_keeps_its_lease(settings):
    settings.MARGIN_JOB_LEASE_SECONDS = 1
    job = Job.objects.create(kind=Job.Kind.TRAIN_REWARD_MODEL)
    seen = {}

    def work(job, on_progress):
        time.sleep(2.5)  # loading a model, say: no progress report for longer than the lease
        seen["requeued"] = jobs_requeue_stale()
        seen["second_claim"] = job_claim(job_id=job.pk, kind=job.kind, worker="another-worker")
        return {}

    assert job_run(job_id=job.pk, kind=Job.Kind.TRAIN_REWARD_MODEL, work=work).state == Job.State.SUCCEEDED
    assert seen == {"requeued": [], "second_claim": None}
    job.refresh_from_db()
    assert job.attempts == 1 and job.lease_expires_at is None


@pytest.mark.django_db
def test_the_reconciler_resends_dead_and_lost_jobs_only(settings):
    settings.MARGIN_JOB_LEASE_SECONDS = 60
    settings.MARGIN_JOB_RESEND_SECONDS = 600
    now = timezone.now()

    def job(**fields):
        made = Job.objects.create(kind=Job.Kind.TRAIN_REWARD_MODEL)
        Job.objects.filter(pk=made.pk).update(**fields)
        return made.pk

    dead = job(state=Job.State.RUNNING, lease_expires_at=now - timedelta(seconds=1))
    never_sent = job(created_at=now - timedelta(seconds=120), sent_at=None)
    sent_long_ago = job(created_at=now - timedelta(hours=1), sent_at=now - timedelta(seconds=700))
    job(state=Job.State.RUNNING, lease_expires_at=now + timedelta(seconds=30))  # alive
    job(created_at=now - timedelta(hours=1), sent_at=now - timedelta(seconds=100))  # waiting in line
    job(created_at=now - timedelta(seconds=5), sent_at=None)  # just created, send pending
    job(state=Job.State.RUNNING, lease_expires_at=now - timedelta(seconds=1), cancel_requested=True)
    job(state=Job.State.SUCCEEDED, sent_at=now - timedelta(hours=2))

    assert sorted(jobs_requeue_stale()) == sorted([dead, never_sent, sent_long_ago])


def test_the_worker_parent_process_never_imports_torch():
    """CUDA cannot be initialised before the pool forks (a forked child could not use it):
    loading the Celery app and every task module leaves torch unimported."""
    import subprocess
    import sys

    from tests.conftest import REPO

    check = (
        "import sys, django; django.setup(); from margin.celery import app; "
        "app.loader.import_default_modules(); "
        "assert {'rewardmodel.tasks', 'rlhf.tasks'} <= set(sys.modules), sorted(sys.modules); "
        "sys.exit(3 if 'torch' in sys.modules else 0)"
    )
    env = {"DJANGO_SETTINGS_MODULE": "margin.settings", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.django_db(transaction=True)
def test_a_task_runs_only_a_job_of_its_own_kind():
    """A message naming the wrong job (a reward-model task given a generate-pair job's id) must not
    claim it: the job stays queued for its own task, untouched (issue 15, item 2)."""
    from rewardmodel.tasks import train_reward_model_task

    job = Job.objects.create(kind=Job.Kind.GENERATE_PAIR, params={"dialogue_id": 1})
    train_reward_model_task(job.pk)  # the task body, as a worker would run it
    job.refresh_from_db()
    assert (job.state, job.attempts, job.lease_owner, job.error) == (Job.State.QUEUED, 0, "", "")
    assert job_claim(job_id=job.pk, kind=Job.Kind.TRAIN_REWARD_MODEL) is None
    assert job_claim(job_id=job.pk, kind=Job.Kind.GENERATE_PAIR).state == Job.State.RUNNING
