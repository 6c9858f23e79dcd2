"""Celery tasks of the `default` queue: a job id in, a plain function does the work."""

from celery import shared_task


@shared_task(acks_late=True)
def import_data_task(job_id, **kwargs):
    from dataio.import_jobs import import_job_run

    import_job_run(job_id=job_id)
