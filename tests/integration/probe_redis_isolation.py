"""Run only by test_isolation.py, in a pytest of its own (the name keeps it out of collection)."""

from django.conf import settings


def test_the_suite_feeds_and_flushes_only_its_own_redis(start_worker, redis_server):
    from margin.celery import app

    # start_worker flushed the suite's Redis; a message goes to the suite's broker.
    app.send_task("margin.tasks.jobs_requeue_stale_task")
    assert redis_server.client.llen("default") == 1
    print("BROKER", settings.CELERY_BROKER_URL)
