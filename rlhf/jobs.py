"""Starting the policy jobs (rejection sampling, PPO, evaluation, publishing samples): each
`*_params` validates the config against its dataclass (rlhf/config.py) and the rows it names,
raising ValidationError({field: message}) before anything is created; each `*_start` then queues
the job. The work itself is rlhf/work.py's; the read queries are rlhf/selectors.py's."""

import re

from django.core.exceptions import ValidationError

from annotation.models import Batch, Project
from margin.jobs import job_create
from margin.models import Job
from modelruntime.config import ConfigError
from rlhf.models import PolicyVersion
from rlhf.selectors import policy_prompts

VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _config_validate(config_class, config):
    try:
        return config_class.from_dict(config)
    except ConfigError as bad:
        raise ValidationError({bad.field: str(bad)}) from bad  # the form shows it under the field


def _policy_check(name, field):
    if name and not PolicyVersion.objects.filter(name=name).exists():
        raise ValidationError({field: f"no policy version named {name!r}"})


def _weights_check(name, field="policy"):
    """Fine-tuning (rejection sampling, PPO) starts from the version's weights, even when a server
    samples for it: a served model registered without a checkpoint cannot be trained here."""
    from modelruntime.modelstore import checkpoint_is_complete
    from rlhf.selectors import policy_version_resolve

    version = policy_version_resolve(name)
    if not checkpoint_is_complete(version.checkpoint_path):
        raise ValidationError({field: f"{version.name!r} has no complete checkpoint in the model store to fine-tune "
                                      f"(a served model: register it with --checkpoint DIR)"})


def _project_check(name, field="project"):
    if name and not Project.objects.filter(name=name).exists():
        raise ValidationError({field: f"no project named {name!r}"})


def _reward_models_check(config):
    from modelruntime.modelstore import ModelStoreError
    from rewardmodel.scoring import resolve_checkpoint

    if not config.helpfulness_rm and not config.safety_rm:
        raise ValidationError({"helpfulness_rm": "give a helpfulness or a safety reward model (or both)"})
    for field in ("helpfulness_rm", "safety_rm"):
        value = getattr(config, field)
        if value:
            try:
                resolve_checkpoint(value)
            except ModelStoreError as bad:
                raise ValidationError({field: str(bad)}) from bad


def _version_name_reserve(config):
    """The new version's name, fixed at start so a retried job writes the same version."""
    queued = Job.objects.filter(
        kind__in=[Job.Kind.REJECTION_SAMPLE, Job.Kind.PPO], state__in=[Job.State.QUEUED, Job.State.RUNNING]
    )
    taken = set(PolicyVersion.objects.values_list("name", flat=True))
    taken |= {job.params.get("config", {}).get("name") for job in queued}
    if config.name:
        if not VERSION_NAME.match(config.name):
            raise ValidationError({"name": f"{config.name!r} is not a usable name: letters, digits, '.', '_' or '-'"})
        if config.name in taken:
            raise ValidationError({"name": f"a policy version named {config.name!r} exists or is being made"})
        return config.name
    number = 1 + PolicyVersion.objects.exclude(kind__in=[PolicyVersion.Kind.BASE, PolicyVersion.Kind.SFT]).count()
    while f"RLHF-V{number}" in taken:
        number += 1
    return f"RLHF-V{number}"


def _prompts_check(config, split="train"):
    found = policy_prompts(project_name=config.project, split=split, heldout_fraction=config.heldout_fraction, limit=1)
    if not found:
        where = f"project {config.project!r}" if config.project else "any project"
        part = "held-out" if split == "heldout" else "training"
        raise ValidationError({"project": f"{where} has no {part} prompts (dialogues starting with a user turn)"})


def _policy_job_params(config_class, config):
    cfg = _config_validate(config_class, config)
    _policy_check(cfg.policy, "policy")
    _weights_check(cfg.policy)
    _project_check(cfg.project)
    _reward_models_check(cfg)
    _prompts_check(cfg)
    return {"config": {**config, "name": _version_name_reserve(cfg)}}


def rejection_sample_params(config: dict) -> dict:
    from rlhf.config import RejectionSamplingConfig

    return _policy_job_params(RejectionSamplingConfig, config)


def ppo_params(config: dict) -> dict:
    from rlhf.config import PPOConfig

    return _policy_job_params(PPOConfig, config)


def policy_evaluate_params(config: dict) -> dict:
    from rlhf.config import PolicyEvaluationConfig

    cfg = _config_validate(PolicyEvaluationConfig, config)
    _policy_check(cfg.policy, "policy")
    _policy_check(cfg.against, "against")
    if not cfg.against:
        version = PolicyVersion.objects.filter(name=cfg.policy).first() if cfg.policy else None
        if version is None or version.parent is None:
            raise ValidationError({"against": "the policy has no parent: name a version to compare with"})
    _project_check(cfg.project)
    _reward_models_check(cfg)
    _prompts_check(cfg, split="heldout")
    return {"config": config}


def samples_publish_params(config: dict) -> dict:
    from rlhf.config import PublishSamplesConfig

    cfg = _config_validate(PublishSamplesConfig, config)
    if not cfg.project:
        raise ValidationError({"project": "name the project whose open batch gets the comparisons"})
    _project_check(cfg.project)
    _policy_check(cfg.policy_a, "policy_a")
    _policy_check(cfg.policy_b, "policy_b")
    if not Batch.objects.filter(project__name=cfg.project, is_open=True).exists():
        raise ValidationError({"project": f"project {cfg.project!r} has no open batch: open one first"})
    return {"config": config}


def rejection_sample_start(*, config: dict, created_by=None) -> Job:
    return job_create(kind=Job.Kind.REJECTION_SAMPLE, params=rejection_sample_params(config), created_by=created_by)


def ppo_start(*, config: dict, created_by=None) -> Job:
    return job_create(kind=Job.Kind.PPO, params=ppo_params(config), created_by=created_by)


def policy_evaluate_start(*, config: dict, created_by=None) -> Job:
    return job_create(kind=Job.Kind.EVALUATE_POLICY, params=policy_evaluate_params(config), created_by=created_by)


def samples_publish_start(*, config: dict, created_by=None) -> Job:
    return job_create(kind=Job.Kind.PUBLISH_SAMPLES, params=samples_publish_params(config), created_by=created_by)


