"""The Celery app of a worker that SIGKILLs itself, pool and all, at a chosen instant.

    celery -A tests.integration.killing_worker worker ...   with MARGIN_TEST_KILL=step:5 or checkpoint:2

`step:N`: right after the job reported step N. `checkpoint:N`: while writing the N-th resumable
checkpoint, with half of it on disk. A kill from outside cannot hit those instants reliably on
a model this small; the kill itself is the real thing (the whole process group, no clean-up).
"""

import os
import signal

from celery.signals import worker_process_init

from margin.celery import app  # noqa: F401  (the app this worker runs)

WHERE, AT = os.environ["MARGIN_TEST_KILL"].split(":")
AT = int(AT)


def _die():
    os.killpg(os.getpgid(0), signal.SIGKILL)


@worker_process_init.connect
def _arm(**kwargs):
    """In the pool process that runs the job, once Django is set up."""
    from margin import jobs
    from rewardmodel import training

    if WHERE == "step":
        progress = jobs.job_progress

        def job_progress(*, job, step, total, metrics=None, log_line=None):
            progress(job=job, step=step, total=total, metrics=metrics, log_line=log_line)
            if step == AT and metrics:  # a training step, not the "N pairs" log line
                _die()

        jobs.job_progress = job_progress
    elif WHERE == "checkpoint":
        save_resume, torch_save, saved = training._save_resume, training.torch.save, []

        def save_half_then_die(obj, path):
            with open(path, "wb") as half:
                half.write(b"partial")
            _die()

        def counting_save_resume(*args, **kwargs):
            saved.append(1)
            if len(saved) == AT:
                training.torch.save = save_half_then_die
            try:
                return save_resume(*args, **kwargs)
            finally:
                training.torch.save = torch_save

        training._save_resume = counting_save_resume
