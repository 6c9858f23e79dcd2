"""Which Celery workers are alive, and on which queues, for the jobs pages (reads only).

Asked of the workers themselves: a broadcast `inspect().active_queues()` over the real broker,
answered by each worker's main process (even while its pool child runs a long job). Chosen over
heartbeat rows of our own because it needs no table, no writer thread in every worker and no
clean-up of rows left by dead workers: what answers now is alive now, and the answer says which
queues it consumes. It costs one broker round trip and waits `timeout_seconds` for replies, so
pages load it as a separate fragment.
"""

from __future__ import annotations

from fnmatch import fnmatch

from django.conf import settings

from margin.jobs import TASK_FOR_KIND

# The queues `manage.py serve` starts a worker for (margin/celery.py routes tasks to them).
QUEUES = ("default", "gpu", "generate")


def queue_for_kind(kind) -> str:
    """The queue a job of `kind` waits in, as margin/celery.py routes its task."""
    from margin.celery import app

    task = TASK_FOR_KIND.get(kind, "")
    for pattern, route in (app.conf.task_routes or {}).items():
        if fnmatch(task, pattern):
            return route["queue"]
    return settings.CELERY_TASK_DEFAULT_QUEUE


def workers_by_queue(*, timeout_seconds=1.0) -> dict:
    """{"queues": [{"name", "workers": [hostnames]}], "error": message or ""}; the workers that
    answered within the timeout, per queue (a worker on several queues is listed under each)."""
    from margin.celery import app

    error = ""
    try:
        replies = app.control.inspect(timeout=timeout_seconds).active_queues() or {}
    except Exception as down:  # kombu / redis raise their own connection errors
        replies, error = {}, f"the broker did not answer ({type(down).__name__}): {down}"
    by_queue = {name: [] for name in QUEUES}
    for hostname, queues in replies.items():
        for queue in queues or []:
            by_queue.setdefault(queue["name"], []).append(hostname)
    return {"queues": [{"name": name, "workers": sorted(hosts)} for name, hosts in by_queue.items()],
            "error": error}
