"""Celery tasks of the gpu queue: ids in, a plain function does the work."""

from celery import shared_task


@shared_task(acks_late=True)
def generate_pair_task(job_id, **kwargs):
    from rlhf.pairs import generate_pair_run

    generate_pair_run(job_id=job_id)


@shared_task(acks_late=True)
def rejection_sample_task(job_id, **kwargs):
    from rlhf.work import rejection_sample_run

    rejection_sample_run(job_id=job_id)


@shared_task(acks_late=True)
def ppo_task(job_id, **kwargs):
    from rlhf.work import ppo_run

    ppo_run(job_id=job_id)


@shared_task(acks_late=True)
def policy_evaluate_task(job_id, **kwargs):
    from rlhf.work import policy_evaluate_run

    policy_evaluate_run(job_id=job_id)


@shared_task(acks_late=True)
def samples_publish_task(job_id, **kwargs):
    from rlhf.work import samples_publish_run

    samples_publish_run(job_id=job_id)


@shared_task(acks_late=True)
def sft_task(job_id, **kwargs):
    from rlhf.finetune_work import sft_run

    sft_run(job_id=job_id)


@shared_task(acks_late=True)
def dpo_task(job_id, **kwargs):
    from rlhf.finetune_work import dpo_run_job

    dpo_run_job(job_id=job_id)


@shared_task(acks_late=True)
def dpo_iterative_task(job_id, **kwargs):
    from rlhf.finetune_work import dpo_iterative_run

    dpo_iterative_run(job_id=job_id)


@shared_task(acks_late=True)
def gatt_task(job_id, **kwargs):
    from rlhf.finetune_work import gatt_run

    gatt_run(job_id=job_id)


@shared_task(acks_late=True)
def rl_handoff_task(job_id, **kwargs):
    from rlhf.handoff import rl_handoff_run

    rl_handoff_run(job_id=job_id)


@shared_task(acks_late=True)
def safety_evaluate_task(job_id, **kwargs):
    from rlhf.safety_eval import safety_evaluate_run

    safety_evaluate_run(job_id=job_id)
