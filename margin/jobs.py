"""Job lifecycle services: create + enqueue, claim by lease, progress, finish, requeue.

A worker claims a job row with a conditional UPDATE, so a re-delivered Celery message finds the
row already leased and does nothing; while the job runs a heartbeat thread renews the lease, so
only a dead worker lets it go stale; a job whose lease went stale is re-queued by a periodic task.
"""

import logging
import os
import socket
import threading
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from margin.models import Job

logger = logging.getLogger(__name__)

# Which Celery task runs which kind of job; the routes in margin/celery.py pick the queue.
TASK_FOR_KIND = {
    Job.Kind.GENERATE_PAIR: "rlhf.tasks.generate_pair_task",
    Job.Kind.TRAIN_REWARD_MODEL: "rewardmodel.tasks.train_reward_model_task",
    Job.Kind.REJECTION_SAMPLE: "rlhf.tasks.rejection_sample_task",
    Job.Kind.PPO: "rlhf.tasks.ppo_task",
    Job.Kind.EVALUATE_POLICY: "rlhf.tasks.policy_evaluate_task",
    Job.Kind.PUBLISH_SAMPLES: "rlhf.tasks.samples_publish_task",
    Job.Kind.IMPORT_DATA: "dataio.tasks.import_data_task",
    Job.Kind.RL_HANDOFF: "rlhf.tasks.rl_handoff_task",
    Job.Kind.SFT: "rlhf.tasks.sft_task",
    Job.Kind.DPO: "rlhf.tasks.dpo_task",
    Job.Kind.DPO_ITERATIVE: "rlhf.tasks.dpo_iterative_task",
    Job.Kind.GATT: "rlhf.tasks.gatt_task",
    Job.Kind.EVALUATE_SAFETY: "rlhf.tasks.safety_evaluate_task",
}


class JobCancelled(Exception):
    """Raised from a progress callback when staff asked the job to stop."""


def _lease_expiry():
    return timezone.now() + timedelta(seconds=settings.MARGIN_JOB_LEASE_SECONDS)


def job_enqueue(*, job):
    """Send the job id to Celery once the surrounding transaction commits."""
    from margin.celery import app

    task_name = TASK_FOR_KIND[job.kind]

    def send():
        try:
            app.send_task(task_name, args=[job.pk])
        except Exception:  # broker down: the row stays queued and the reconciler resends it
            logger.exception("Could not send job %s to the broker; it stays queued.", job.pk)
            return
        Job.objects.filter(pk=job.pk).update(sent_at=timezone.now())

    transaction.on_commit(send)


def job_create(*, kind, params, created_by=None):
    job = Job.objects.create(kind=kind, params=params, created_by=created_by)
    job_enqueue(job=job)
    return job


def job_claim(*, job_id, kind, worker=None):
    """Lease a queued (or abandoned) job of this kind for this worker; None when someone else
    holds it, or when the id names a job of another kind (a message sent to the wrong task)."""
    now = timezone.now()
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    claimable = Q(state=Job.State.QUEUED) | Q(state=Job.State.RUNNING, lease_expires_at__lt=now)
    updated = Job.objects.filter(claimable, pk=job_id, kind=kind, cancel_requested=False).update(
        state=Job.State.RUNNING,
        lease_owner=worker,
        lease_expires_at=_lease_expiry(),
        attempts=F("attempts") + 1,
        started_at=now,
    )
    if not updated:
        return None
    return Job.objects.get(pk=job_id)


def job_progress(*, job, step, total, metrics=None, log_line=None):
    """Save progress, renew the lease, and stop the job if cancel was requested."""
    fields = {"progress_step": step, "progress_total": total, "lease_expires_at": _lease_expiry()}
    if metrics:
        fields["metrics"] = {**job.metrics, **metrics}
    if log_line:
        fields["log"] = job.log + log_line.rstrip("\n") + "\n"
    Job.objects.filter(pk=job.pk).update(**fields)
    for name, value in fields.items():
        setattr(job, name, value)
    if Job.objects.filter(pk=job.pk, cancel_requested=True).exists():
        raise JobCancelled(f"Job {job.pk} was cancelled.")


def _job_finish(*, job, state, **fields):
    Job.objects.filter(pk=job.pk).update(
        state=state, finished_at=timezone.now(), lease_expires_at=None, **fields
    )
    job.refresh_from_db()


def job_cancel_request(*, job):
    """Queued jobs stop at once; running ones at their next progress report."""
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    Job.objects.filter(pk=job.pk, state=Job.State.QUEUED).update(
        state=Job.State.CANCELLED, finished_at=timezone.now()
    )
    job.refresh_from_db()


class _LeaseHeartbeat(threading.Thread):
    """Renews the job's lease every third of its length while `work` runs.

    Model loading or a long evaluation reports no progress for minutes; without this the
    reconciler would hand a live job to a second worker. A killed process stops renewing,
    so its lease expires and the job is re-queued.
    """

    def __init__(self, job):
        super().__init__(name=f"lease-{job.pk}", daemon=True)
        self.job, self.stopped = job, threading.Event()

    def run(self):
        from django.db import DatabaseError, connection

        interval = max(0.5, settings.MARGIN_JOB_LEASE_SECONDS / 3)
        try:
            while not self.stopped.wait(interval):
                try:
                    Job.objects.filter(
                        pk=self.job.pk, state=Job.State.RUNNING, lease_owner=self.job.lease_owner
                    ).update(lease_expires_at=_lease_expiry())
                except DatabaseError:  # busy or briefly unreachable: the next beat tries again
                    logger.warning("Could not renew the lease of job %s.", self.job.pk, exc_info=True)
        finally:
            connection.close()  # this thread's own connection


def job_run(*, job_id, kind, work):
    """Claim the job (of this kind only), run `work(job, on_progress)`, and record how it ended.

    `work` returns the result dict; `on_progress(step, total, metrics=None, log_line=None)`.
    Returns the finished job, or None when the job was not ours to run.
    """
    job = job_claim(job_id=job_id, kind=kind)
    if job is None:
        logger.info("Job %s is not a claimable %s job (another kind, running elsewhere or finished); "
                    "skipping.", job_id, kind)
        return None

    def on_progress(step, total, metrics=None, log_line=None):
        job_progress(job=job, step=step, total=total, metrics=metrics, log_line=log_line)

    heartbeat = _LeaseHeartbeat(job)
    heartbeat.start()
    try:
        result = work(job, on_progress)
    except JobCancelled:
        _job_finish(job=job, state=Job.State.CANCELLED)
        return job
    except Exception as error:
        _job_finish(job=job, state=Job.State.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    finally:
        heartbeat.stopped.set()
        heartbeat.join(timeout=5)  # a renewal stuck on a busy database must not hold the job up
    _job_finish(
        job=job,
        state=Job.State.SUCCEEDED,
        result=result or {},
        progress_step=max(job.progress_step, job.progress_total),
    )
    return job


def jobs_requeue_stale():
    """Send again the jobs a worker died on (lease expired) or whose message may be lost.

    A queued job is re-sent when its message never reached the broker, or went there longer
    than MARGIN_JOB_RESEND_SECONDS ago (Redis restarted empty, say); a job merely waiting behind
    a long one gets a duplicate at most that often, and job_claim lets only one copy run.
    Returns the job ids.
    """
    now = timezone.now()
    lost_before = now - timedelta(seconds=settings.MARGIN_JOB_LEASE_SECONDS)
    resend_before = now - timedelta(seconds=settings.MARGIN_JOB_RESEND_SECONDS)
    stale = Job.objects.filter(
        Q(state=Job.State.RUNNING, lease_expires_at__lt=now)
        | Q(state=Job.State.QUEUED, sent_at__isnull=True, created_at__lt=lost_before)
        | Q(state=Job.State.QUEUED, sent_at__lt=resend_before),
        cancel_requested=False,
    )
    jobs = list(stale)
    for job in jobs:
        with transaction.atomic():
            job_enqueue(job=job)
    return [job.pk for job in jobs]
