"""Dashboard actions on jobs: launch (through each app's own validated service) and retry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from django.core.exceptions import ValidationError

from margin.jobs import job_create
from margin.models import Job


@dataclass(frozen=True)
class Launcher:
    title: str
    config_class: Callable[[], type]  # imported lazily: config modules are light, but keep it so
    start: Callable  # start(form_data_without_config, config, created_by) -> Job


def _rm_config():
    from rewardmodel.config import RewardModelConfig

    return RewardModelConfig


def _rm_start(*, lead, config, created_by):
    from rewardmodel.services import reward_model_train_start

    return reward_model_train_start(
        project=lead["project"], name=lead["name"], config=config, created_by=created_by
    )


def _rlhf(config_name, start_name):
    def config_class():
        from rlhf import config

        return getattr(config, config_name)

    def start(*, lead, config, created_by):
        from rlhf import jobs

        return getattr(jobs, start_name)(config=config, created_by=created_by)

    return config_class, start


LAUNCHERS = {
    Job.Kind.TRAIN_REWARD_MODEL: Launcher("Train a reward model", _rm_config, _rm_start),
    Job.Kind.REJECTION_SAMPLE: Launcher(
        "Rejection sampling", *_rlhf("RejectionSamplingConfig", "rejection_sample_start")
    ),
    Job.Kind.PPO: Launcher("PPO", *_rlhf("PPOConfig", "ppo_start")),
    Job.Kind.PUBLISH_SAMPLES: Launcher(
        "Publish samples for annotation", *_rlhf("PublishSamplesConfig", "samples_publish_start")
    ),
    Job.Kind.EVALUATE_POLICY: Launcher(
        "Evaluate a policy version", *_rlhf("PolicyEvaluationConfig", "policy_evaluate_start")
    ),
    Job.Kind.SFT: Launcher("Fine-tune on demonstrations (SFT)", *_rlhf("SFTJobConfig", "sft_start")),
    Job.Kind.DPO: Launcher("DPO from judged comparisons", *_rlhf("DPOJobConfig", "dpo_start")),
    Job.Kind.DPO_ITERATIVE: Launcher("Iterative DPO (reward-model labels)", *_rlhf("DPOIterativeConfig",
                                                                                   "dpo_iterative_start")),
    Job.Kind.GATT: Launcher("Ghost Attention fine-tune", *_rlhf("GAttConfig", "gatt_start")),
    Job.Kind.EVALUATE_SAFETY: Launcher(
        "Safety evaluation of a policy", *_rlhf("SafetyEvaluationConfig", "safety_evaluate_start")
    ),
}


def job_launch(*, kind, lead, config, created_by):
    """Start a job of `kind` through its app's service; ValidationError({field: message}) on bad
    input, and then nothing was created."""
    launcher = LAUNCHERS.get(kind)
    if launcher is None:
        raise ValidationError({"kind": f"jobs of kind {kind!r} cannot be launched from here"})
    return launcher.start(lead=lead, config=config, created_by=created_by)


def job_retry(*, job, created_by):
    """A new job with the same kind and parameters as a failed or cancelled one."""
    if job.state not in (Job.State.FAILED, Job.State.CANCELLED):
        raise ValidationError({"job": f"only failed or cancelled jobs can be retried (this one is {job.state})"})
    params = dict(job.params)
    params["retry_of"] = job.pk
    return job_create(kind=job.kind, params=params, created_by=created_by)


def reward_model_gate_set(*, reward_model, gate, actor):
    """Staff place a safety RM's PPO gate on its precision / recall curve; `gate=None` returns
    to Llama 2's 0.15. rlhf/work.py reads it when the RM is used as the safety RM."""
    from django.db import transaction

    from annotation.services.audit import audit_record

    if reward_model.objective != "safety":
        raise ValidationError({"gate": f"{reward_model.name} is a {reward_model.objective} reward model; "
                                       "only a safety reward model gates the reward"})
    if gate is not None and not 0 < gate < 1:
        raise ValidationError({"gate": f"the gate is a sigmoid score strictly between 0 and 1, got {gate:g}"})
    with transaction.atomic():
        previous = reward_model.safety_gate
        reward_model.safety_gate = gate
        reward_model.save(update_fields=["safety_gate"])
        audit_record(actor=actor, verb="reward_model_gate_set", obj=reward_model, gate=gate, previous=previous)
    return reward_model
