"""A real redis-server and Celery worker run the generation job; responses land in the DB."""

import pytest

from annotation import services
from annotation.models import Comparison
from margin.celery import app
from margin.models import Job
from tests.factories import BatchFactory, UserFactory
from tests.real_services import wait_until

pytestmark = pytest.mark.slow


def finished(job):
    job.refresh_from_db()
    return job.is_finished


def test_worker_generates_the_pair_for_a_written_prompt(start_worker, tiny_policy):
    start_worker()
    batch = BatchFactory()
    author = UserFactory()
    job = services.dialogue_start(annotator=author, project=batch.project, prompt="Hello there")

    wait_until(lambda: finished(job), 120, "the generation job")
    assert job.state == Job.State.SUCCEEDED, job.error
    comparison = Comparison.objects.get(pk=job.result["comparison_id"])
    assert comparison.reserved_for == author
    assert {comparison.response_a.policy_version, comparison.response_b.policy_version} == {tiny_policy}
    assert job.attempts == 1 and job.progress_step == job.progress_total == 2


def test_a_job_message_delivered_twice_runs_once(start_worker, tiny_policy):
    batch = BatchFactory()
    job = services.dialogue_start(annotator=UserFactory(), project=batch.project, prompt="Twice?")
    app.send_task("rlhf.tasks.generate_pair_task", args=[job.pk])  # the duplicate delivery
    start_worker()

    wait_until(lambda: finished(job), 120, "the generation job")
    wait_until(lambda: app.connection().default_channel.client.llen("gpu") == 0, 30, "the queue to drain")
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.attempts == 1
    assert Comparison.objects.count() == 1


def test_cancelling_a_running_generation_stores_no_pair_and_keeps_the_prompt(start_worker, tiny_policy):
    # Long responses keep the worker on the first variant long enough to cancel in between: the
    # job stops at its next progress report, before the second variant, so no comparison is stored.
    start_worker(env={"MARGIN_MAX_NEW_TOKENS": "300"})
    batch = BatchFactory()
    author = UserFactory()
    job = services.dialogue_start(annotator=author, project=batch.project, prompt="Tell me everything")

    def first_variant_under_way():
        job.refresh_from_db()
        return job.state == Job.State.RUNNING and "sampling variant 1" in job.log

    wait_until(first_variant_under_way, 120, "the first variant to start")
    services.pair_generation_cancel(annotator=author, job=job)
    wait_until(lambda: finished(job), 120, "the cancelled job to stop")
    assert job.state == Job.State.CANCELLED
    assert job.progress_step < 2  # stopped at the report between the two variants
    assert not Comparison.objects.exists()
    assert job.params["dialogue_id"] and batch.project.dialogues.get().turns.get().content == "Tell me everything"
