"""The assignment and judgment services under contention, each thread with its own connection:
annotators asking for work at the same moment, and a training job writing while they judge."""

import threading
import time
from collections import Counter

import pytest
from django.db import IntegrityError, OperationalError, connection, transaction

from annotation import services
from annotation.models import Assignment, Comparison, Judgment, Strength
from margin.jobs import job_progress
from margin.models import Job
from tests.concurrency.conftest import run_in_threads
from tests.factories import (
    BatchFactory,
    ComparisonFactory,
    JudgmentFactory,
    ProjectFactory,
    UserFactory,
)

pytestmark = [pytest.mark.db_sensitive, pytest.mark.django_db(transaction=True)]


def test_annotators_asking_at_the_same_moment_never_overfill_a_comparison():
    """16 annotators ask at once for 8 comparisons wanted twice: each gets one, none gets a
    third annotator (on PostgreSQL: row locks, skip_locked, and a recount under the lock)."""
    for _ in range(3):
        project = ProjectFactory(judgments_per_comparison=2, gold_share=0)
        batch = BatchFactory(project=project)
        ComparisonFactory.create_batch(8, batch=batch)
        users = [UserFactory() for _ in range(16)]
        leases = run_in_threads(
            lambda user: services.assignment_next(annotator=user, project=project), users
        )
        told_nothing_waits = sum(lease is None for lease in leases)
        assert told_nothing_waits == 0, f"{told_nothing_waits} of 16 told nothing is waiting"
        per_comparison = Counter(
            Assignment.objects.filter(comparison__batch=batch).values_list("comparison", flat=True)
        )
        assert sorted(per_comparison.values()) == [2] * 8
        assert services.assignment_next(annotator=UserFactory(), project=project) is None


def test_an_annotator_is_not_kept_waiting_by_a_comparison_another_is_taking():
    """PostgreSQL: assignment skips a comparison row another transaction holds locked
    (select_for_update(skip_locked=True)) and serves the next one at once."""
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("SQLite has no row locks: its IMMEDIATE transactions serialise writers")
    project = ProjectFactory(judgments_per_comparison=1, gold_share=0)
    batch = BatchFactory(project=project)
    ComparisonFactory.create_batch(2, batch=batch)
    first, second = UserFactory(), UserFactory()
    holding, release, taken = threading.Event(), threading.Event(), []

    def slow_request():  # leases a comparison and keeps its transaction (and row lock) open
        try:
            with transaction.atomic():
                taken.append(services.assignment_next(annotator=first, project=project))
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_request)
    thread.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        lease = services.assignment_next(annotator=second, project=project)
        waited = time.monotonic() - started
    finally:
        release.set()
        thread.join(10)
    assert lease is not None and lease.comparison_id != taken[0].comparison_id
    assert waited < 2, f"waited {waited:.1f} s for another annotator's lock"


def test_the_database_refuses_a_second_judgment_by_the_same_annotator():
    """The unique constraint holds on both databases, whatever the services do."""
    judgment = JudgmentFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        JudgmentFactory(comparison=judgment.comparison, annotator=judgment.annotator)
    assert Judgment.objects.count() == 1


def test_a_training_job_writing_results_does_not_lock_annotators_out():
    """A job holds write transactions of ~0.3 s (progress, metrics, log) over and over while six
    annotators take and judge work: no "database is locked", every judgment stored."""
    job = Job.objects.create(kind=Job.Kind.TRAIN_REWARD_MODEL, state=Job.State.RUNNING)
    project = ProjectFactory(judgments_per_comparison=2, gold_share=0)
    batch = BatchFactory(project=project)
    ComparisonFactory.create_batch(12, batch=batch)
    users = [UserFactory() for _ in range(6)]
    annotators_done = []

    def train():
        step = 0
        while len(annotators_done) < len(users) or step < 10:
            with transaction.atomic():  # e.g. storing a batch of evaluation results at once
                for _ in range(6):
                    step += 1
                    job_progress(job=job, step=step, total=1000, metrics={"loss": 1 / step},
                                 log_line=f"step {step}")
                    time.sleep(0.05)
            time.sleep(0.01)
        return step

    def annotate(user):
        judged = []
        try:
            while (lease := services.assignment_next(annotator=user, project=project)) is not None:
                services.judgment_submit(annotator=user, comparison_id=lease.comparison_id,
                                         chosen_side="left", strength=Strength.BETTER)
                judged.append(lease.comparison_id)
        finally:
            annotators_done.append(user)
        return judged

    def work(role):
        return train() if role == "job" else annotate(role)

    try:
        results = run_in_threads(work, ["job", *users], timeout=120)
    except OperationalError as locked:  # "database is locked": the failure this test is about
        pytest.fail(f"an annotator or the job hit {locked!r}")
    steps, judged = results[0], results[1:]
    assert sum(len(j) for j in judged) == Judgment.objects.count() == 12 * 2
    job.refresh_from_db()
    assert job.progress_step == steps and job.log.count("\n") == steps


def test_a_comparison_found_full_under_its_lock_is_let_go_at_once():
    """PostgreSQL: the recount under the lock can find a comparison full (a lease committed
    after the candidates were listed); its row lock is released before moving on, so two
    annotators waiting for each other's rows cannot deadlock."""
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("SQLite has no row locks")
    project = ProjectFactory(judgments_per_comparison=1, gold_share=0)
    batch = BatchFactory(project=project)
    full, free = ComparisonFactory(batch=batch), ComparisonFactory(batch=batch)
    JudgmentFactory(comparison=full)
    annotator = UserFactory()
    with transaction.atomic():
        # Both rows as candidates, in this order: as if `full` filled up after the listing.
        queue = Comparison.objects.filter(pk__in=[full.pk, free.pk]).order_by("pk")
        picked = services.assignment._comparison_lock_first(queue, annotator=annotator, skip_locked=False)
        assert picked == free

        def lock_full_now():
            with transaction.atomic():
                try:
                    Comparison.objects.select_for_update(nowait=True).get(pk=full.pk)
                except OperationalError:
                    return True
            return False

        locked_elsewhere = run_in_threads(lambda _: lock_full_now(), [None])
    assert locked_elsewhere == [False], "the full comparison stayed locked by the request that skipped it"
