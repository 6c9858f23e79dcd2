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


# Jobs that make a policy version, and the prefix of its default name (Llama 2's RLHF-V1, V2, ...
# for rejection sampling, PPO and a hand-off; SFT-, DPO-, GAtt- for the fine-tunes).
NAME_PREFIX = {Job.Kind.REJECTION_SAMPLE: "RLHF", Job.Kind.PPO: "RLHF", Job.Kind.RL_HANDOFF: "RLHF",
               Job.Kind.SFT: "SFT", Job.Kind.DPO: "DPO", Job.Kind.DPO_ITERATIVE: "DPO", Job.Kind.GATT: "GAtt"}


def _version_name_reserve(config, kind=Job.Kind.PPO):
    """The new version's name, fixed at start so a retried job writes the same version; iterative
    DPO's rounds add `-R<round>` to it, so those names count as taken too."""
    queued = Job.objects.filter(kind__in=list(NAME_PREFIX), state__in=[Job.State.QUEUED, Job.State.RUNNING])
    taken = set(PolicyVersion.objects.values_list("name", flat=True))
    taken |= {job.params.get("config", {}).get("name") for job in queued}

    def used(name):
        return name in taken or any(other and other.startswith(f"{name}-R") for other in taken)

    if config.name:
        if not VERSION_NAME.match(config.name):
            raise ValidationError({"name": f"{config.name!r} is not a usable name: letters, digits, '.', '_' or '-'"})
        if used(config.name):
            raise ValidationError({"name": f"a policy version named {config.name!r} exists or is being made"})
        return config.name
    prefix = NAME_PREFIX[kind]
    number = 1
    if prefix == "RLHF":  # the paper's rounds: one more than the RLHF versions so far
        rlhf_kinds = [PolicyVersion.Kind.REJECTION_SAMPLING, PolicyVersion.Kind.PPO, PolicyVersion.Kind.EXTERNAL]
        number += PolicyVersion.objects.filter(kind__in=rlhf_kinds).count()
    while used(f"{prefix}-V{number}"):
        number += 1
    return f"{prefix}-V{number}"


def _prompts_check(config, split="train"):
    found = policy_prompts(project_name=config.project, split=split, heldout_fraction=config.heldout_fraction, limit=1)
    if not found:
        where = f"project {config.project!r}" if config.project else "any project"
        part = "held-out" if split == "heldout" else "training"
        raise ValidationError({"project": f"{where} has no {part} prompts (dialogues starting with a user turn)"})


class _Problems:
    """Collects every check's ValidationError, so a form shows all its problems in one submit,
    each under its field (issue 16), instead of the first one per try."""

    def __init__(self):
        self.errors: dict[str, list[str]] = {}

    def check(self, check, *args) -> bool:
        try:
            check(*args)
        except ValidationError as bad:
            for field, messages in bad.message_dict.items():
                self.errors.setdefault(field, []).extend(messages)
            return False
        return True

    def raise_any(self):
        if self.errors:
            raise ValidationError(self.errors)


def _policy_job_params(config_class, config):
    cfg = _config_validate(config_class, config)
    problems = _Problems()
    if problems.check(_policy_check, cfg.policy, "policy"):
        problems.check(_weights_check, cfg.policy)
    if problems.check(_project_check, cfg.project):
        problems.check(_prompts_check, cfg)
    problems.check(_reward_models_check, cfg)
    name = {}
    problems.check(lambda: name.setdefault("name", _version_name_reserve(cfg)))
    problems.raise_any()
    return {"config": {**config, "name": name["name"]}}


def rejection_sample_params(config: dict) -> dict:
    from rlhf.config import RejectionSamplingConfig

    return _policy_job_params(RejectionSamplingConfig, config)


def ppo_params(config: dict) -> dict:
    from rlhf.config import PPOConfig

    return _policy_job_params(PPOConfig, config)


def policy_evaluate_params(config: dict) -> dict:
    from rlhf.config import PolicyEvaluationConfig

    cfg = _config_validate(PolicyEvaluationConfig, config)
    problems = _Problems()
    problems.check(_policy_check, cfg.policy, "policy")
    problems.check(_policy_check, cfg.against, "against")
    if not cfg.against:
        version = PolicyVersion.objects.filter(name=cfg.policy).first() if cfg.policy else None
        if version is None or version.parent is None:
            problems.errors.setdefault("against", []).append("the policy has no parent: name a version to compare with")
    if problems.check(_project_check, cfg.project):
        problems.check(_prompts_check, cfg, "heldout")
    problems.check(_reward_models_check, cfg)
    problems.raise_any()
    return {"config": config}


def samples_publish_params(config: dict) -> dict:
    from rlhf.config import PublishSamplesConfig

    cfg = _config_validate(PublishSamplesConfig, config)
    problems = _Problems()
    if not cfg.project:
        problems.errors["project"] = ["name the project whose open batch gets the comparisons"]
    elif problems.check(_project_check, cfg.project):
        if not Batch.objects.filter(project__name=cfg.project, is_open=True).exists():
            problems.errors["project"] = [f"project {cfg.project!r} has no open batch: open one first"]
    problems.check(_policy_check, cfg.policy_a, "policy_a")
    problems.check(_policy_check, cfg.policy_b, "policy_b")
    problems.raise_any()
    return {"config": config}


def rejection_sample_start(*, config: dict, created_by=None) -> Job:
    return job_create(kind=Job.Kind.REJECTION_SAMPLE, params=rejection_sample_params(config), created_by=created_by)


def ppo_start(*, config: dict, created_by=None) -> Job:
    return job_create(kind=Job.Kind.PPO, params=ppo_params(config), created_by=created_by)


def policy_evaluate_start(*, config: dict, created_by=None) -> Job:
    return job_create(kind=Job.Kind.EVALUATE_POLICY, params=policy_evaluate_params(config), created_by=created_by)


def samples_publish_start(*, config: dict, created_by=None) -> Job:
    return job_create(kind=Job.Kind.PUBLISH_SAMPLES, params=samples_publish_params(config), created_by=created_by)




# --- SFT from demonstrations, DPO (offline, iterative), Ghost Attention (issue 20) -----------------

def _tuning_params(config_class, config, kind):
    cfg = _config_validate(config_class, config)
    problems = _Problems()
    if problems.check(_policy_check, cfg.policy, "policy"):
        problems.check(_weights_check, cfg.policy)
    problems.check(_project_check, cfg.project)
    if cfg.lora_rank and getattr(cfg, "distributed", False):
        # The torchrun ranks fine-tune every weight of a plain checkpoint (rlhf/sft.py); an adapter
        # would be lost on the way there and back.
        problems.errors["processes"] = ["LoRA fine-tuning runs in one process: set processes and nodes to 1, "
                                        "or lora_rank to 0"]
    name = {}
    problems.check(lambda: name.setdefault("name", _version_name_reserve(cfg, kind)))
    problems.raise_any()
    return cfg, {"config": {**config, "name": name["name"]}}


def sft_params(config: dict) -> dict:
    from pathlib import Path

    from core.jsonio import RecordError
    from rlhf.config import SFTJobConfig
    from rlhf.selectors import policy_version_resolve
    from rlhf.tuning_data import demonstration_pairs, sft_file_pairs, winner_pairs

    cfg, params = _tuning_params(SFTJobConfig, config, Job.Kind.SFT)
    found = 0
    if cfg.sft_file:
        if not Path(cfg.sft_file).is_file():
            raise ValidationError({"sft_file": f"no file at {cfg.sft_file!r} (a path the workers can read)"})
        try:
            found += len(sft_file_pairs(cfg.sft_file, heldout_fraction=cfg.heldout_fraction))
        except RecordError as bad:
            raise ValidationError({"sft_file": f"{cfg.sft_file}, {bad}"}) from bad
    if cfg.demonstrations:
        found += len(demonstration_pairs(project_name=cfg.project, heldout_fraction=cfg.heldout_fraction))
    if cfg.rejection_winners:
        found += len(winner_pairs(policy_version_resolve(cfg.policy), heldout_fraction=cfg.heldout_fraction))
    if not found:
        where = f"project {cfg.project!r}" if cfg.project else "any project"
        raise ValidationError({"project": f"nothing to fine-tune on: {where} has no demonstrations on training "
                                          "prompts, and no SFT file or rejection-sampling winners were chosen"})
    return params


def dpo_params(config: dict) -> dict:
    from rlhf.config import DPOJobConfig
    from rlhf.tuning_data import preference_pairs

    cfg, params = _tuning_params(DPOJobConfig, config, Job.Kind.DPO)
    train, _, report = preference_pairs(project_name=cfg.project, min_judgments=cfg.min_judgments,
                                        heldout_fraction=cfg.heldout_fraction)
    if not train:
        where = f"project {cfg.project!r}" if cfg.project else "any project"
        raise ValidationError({"project": f"{where} has no judged comparisons on training prompts to learn from "
                                          f"(pair builder: {report['pairs']} pairs, skipped {report['skipped']})"})
    return params


def dpo_iterative_params(config: dict) -> dict:
    from rlhf.config import DPOIterativeConfig

    cfg, params = _tuning_params(DPOIterativeConfig, config, Job.Kind.DPO_ITERATIVE)
    _reward_models_check(cfg)
    _prompts_check(cfg)
    return params


def gatt_params(config: dict) -> dict:
    from rlhf.config import GAttConfig

    cfg, params = _tuning_params(GAttConfig, config, Job.Kind.GATT)
    if cfg.helpfulness_rm:
        from modelruntime.modelstore import ModelStoreError
        from rewardmodel.scoring import resolve_checkpoint

        try:
            resolve_checkpoint(cfg.helpfulness_rm)
        except ModelStoreError as bad:
            raise ValidationError({"helpfulness_rm": str(bad)}) from bad
    found = policy_prompts(project_name=cfg.project, heldout_fraction=cfg.heldout_fraction, limit=cfg.turns)
    if len(found) < cfg.turns:
        raise ValidationError({"project": f"a {cfg.turns}-turn synthetic dialogue needs at least {cfg.turns} "
                                          f"training prompts; found {len(found)}"})
    return params


def sft_start(*, config: dict, created_by=None) -> Job:
    return job_create(kind=Job.Kind.SFT, params=sft_params(config), created_by=created_by)


def dpo_start(*, config: dict, created_by=None) -> Job:
    return job_create(kind=Job.Kind.DPO, params=dpo_params(config), created_by=created_by)


def dpo_iterative_start(*, config: dict, created_by=None) -> Job:
    return job_create(kind=Job.Kind.DPO_ITERATIVE, params=dpo_iterative_params(config), created_by=created_by)


def gatt_start(*, config: dict, created_by=None) -> Job:
    return job_create(kind=Job.Kind.GATT, params=gatt_params(config), created_by=created_by)


# --- Policy safety evaluation (issue 21) -----------------------------------------------------------


def safety_evaluate_params(config: dict) -> dict:
    from modelruntime.modelstore import ModelStoreError
    from rewardmodel.scoring import resolve_checkpoint
    from rlhf.config import SafetyEvaluationConfig, comma_list
    from rlhf.models import SafetyPrompt

    cfg = _config_validate(SafetyEvaluationConfig, config)
    problems = _Problems()
    problems.check(_policy_check, cfg.policy, "policy")
    if not cfg.safety_rm:
        problems.errors["safety_rm"] = ["name the safety reward model that judges the responses"]
    else:
        try:
            resolve_checkpoint(cfg.safety_rm)
        except ModelStoreError as bad:
            problems.errors["safety_rm"] = [str(bad)]
    known = set(SafetyPrompt.objects.values_list("category", flat=True))
    if not known:
        problems.errors["categories"] = ["there are no safety prompts yet: import some with import_safety_prompts"]
    elif unknown := [c for c in comma_list(cfg.categories) if c not in known]:
        problems.errors["categories"] = [f"no safety prompts in {', '.join(map(repr, unknown))}; "
                                         f"the categories are: {', '.join(sorted(known))}"]
    if cfg.human_sample and problems.check(_project_check, cfg.project):
        if not Batch.objects.filter(project__name=cfg.project, is_open=True).exists():
            problems.errors["project"] = [f"project {cfg.project!r} has no open batch: open one first"]
    problems.raise_any()
    return {"config": config}


def safety_evaluate_start(*, config: dict, created_by=None) -> Job:
    return job_create(kind=Job.Kind.EVALUATE_SAFETY, params=safety_evaluate_params(config), created_by=created_by)
