"""Celery tasks of the gpu queue: a job id in, a plain function does the work."""

from celery import shared_task


@shared_task(acks_late=True)
def train_reward_model_task(job_id, **kwargs):
    from rewardmodel.services import reward_model_train_run

    reward_model_train_run(job_id=job_id)

