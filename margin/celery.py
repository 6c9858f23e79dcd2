"""The Celery app. Tasks carry job ids only; see margin/jobs.py for the job lifecycle."""

import os

from celery import Celery
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "margin.settings")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

app = Celery("margin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = {
    # Annotators' write-a-prompt pairs on a queue of their own, served by a worker of their own
    # (`manage.py serve` starts it): a flood of them never keeps a staff training job waiting on
    # the `gpu` worker, and a long training job never keeps an annotator waiting for a pair.
    "rlhf.tasks.generate_pair_task": {"queue": "generate"},
    # The OpenRLHF hand-off only follows a Ray job: no GPU on the worker, so no wait behind training.
    "rlhf.tasks.rl_handoff_task": {"queue": "default"},
    "rlhf.tasks.*": {"queue": "gpu"},
    "rewardmodel.tasks.*": {"queue": "gpu"},
    "dataio.tasks.*": {"queue": "default"},
}
# The reconciler: re-sends jobs whose worker died (stale lease) or whose message was lost.
app.conf.beat_schedule = {
    "requeue-stale-jobs": {
        "task": "margin.tasks.jobs_requeue_stale_task",
        "schedule": settings.MARGIN_RECONCILE_SECONDS,
    },
}
app.autodiscover_tasks()
