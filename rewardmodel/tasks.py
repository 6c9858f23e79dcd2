"""Celery tasks of the gpu queue: a job id in, a plain function does the work."""

from celery import shared_task


@shared_task(acks_late=True)
def train_reward_model_task(job_id, **kwargs):
    from rewardmodel.services import reward_model_train_run

    reward_model_train_run(job_id=job_id)


@shared_task(acks_late=True)
def evaluate_reward_models_task(job_id, **kwargs):
    from rewardmodel.services import reward_models_evaluate_run

    reward_models_evaluate_run(job_id=job_id)
