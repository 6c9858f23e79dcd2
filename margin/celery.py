"""The Celery app. Tasks carry job ids only; see margin/jobs.py for the job lifecycle."""

import os

from celery import Celery
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "margin.settings")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

app = Celery("margin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = {
    "rlhf.tasks.*": {"queue": "gpu"},
    "rewardmodel.tasks.*": {"queue": "gpu"},
}
# The reconciler: re-sends jobs whose worker died (stale lease) or whose message was lost.
app.conf.beat_schedule = {
    "requeue-stale-jobs": {
        "task": "margin.tasks.jobs_requeue_stale_task",
        "schedule": settings.MARGIN_RECONCILE_SECONDS,
    },
}
app.autodiscover_tasks()
