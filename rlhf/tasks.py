"""Celery tasks of the gpu queue: ids in, a plain function does the work."""

from celery import shared_task


@shared_task(acks_late=True)
def generate_pair_task(job_id, **kwargs):
    from rlhf.services import generate_pair_run

    generate_pair_run(job_id=job_id)
