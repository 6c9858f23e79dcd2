"""The one progress-callback shape every job reports through:

    on_progress(step, total, metrics=None, log_line=None)

A job's work gets one that saves to its row (margin/jobs.py job_run); a command that runs the
job in its own process adds its console bar (margin/cli.py ProgressBar) with `work_with_console`.
"""

from __future__ import annotations

from typing import Callable, Protocol


class OnProgress(Protocol):
    def __call__(self, step: int, total: int, metrics: dict | None = None, log_line: str | None = None): ...


def work_with_console(work: Callable, console: OnProgress | None) -> Callable:
    """`work(job, on_progress)` whose progress also goes to `console` (a command's bar)."""
    if console is None:
        return work

    def wrapped(job, on_progress):
        def both(step, total, metrics=None, log_line=None):
            console(step, total, metrics=metrics, log_line=log_line)
            on_progress(step, total, metrics=metrics, log_line=log_line)

        return work(job, both)

    return wrapped
