from celery import shared_task


@shared_task
def jobs_requeue_stale_task():
    from margin.jobs import jobs_requeue_stale

    return jobs_requeue_stale()
