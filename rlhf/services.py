"""Bridges from database rows to the ML code in rlhf/: the policy jobs (rejection sampling, PPO,
evaluation, publishing samples) that make and judge policy versions. Pair generation for
annotators is in rlhf/pairs.py."""

import random
import re
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from annotation.models import Batch, Dialogue, Project
from annotation.services import comparison_create
from margin.jobs import job_create, job_run
from margin.models import Job
from rlhf.models import PolicyVersion
from rlhf.pairs import policy_version_default


# --- policy jobs: rejection sampling, PPO, evaluation, publishing ----------------------------------
# Each `*_start` validates the config against its dataclass (rlhf/config.py) and the rows it names,
# raising ValidationError({field: message}) before anything is created, then queues a job; each
# `*_run` is what the Celery task (and the management command, in-process) calls.

VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _config_validate(config_class, config):
    from rlhf.config import ConfigError

    try:
        return config_class.from_dict(config)
    except ConfigError as bad:
        raise ValidationError({bad.field: str(bad)}) from bad
    except TypeError as bad:
        raise ValidationError({"config": str(bad)}) from bad


def _policy_check(name, field):
    if name and not PolicyVersion.objects.filter(name=name).exists():
        raise ValidationError({field: f"no policy version named {name!r}"})


def policy_version_resolve(name):
    """The named version, else the newest active one, else the default base model."""
    if name:
        return PolicyVersion.objects.get(name=name)
    return PolicyVersion.objects.filter(is_active=True).order_by("-created_at").first() or policy_version_default()


def _project_check(name, field="project"):
    if name and not Project.objects.filter(name=name).exists():
        raise ValidationError({field: f"no project named {name!r}"})


def _reward_models_check(config):
    from rewardmodel.scoring import resolve_checkpoint
    from modelruntime.modelstore import ModelStoreError

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


def policy_prompts(*, project_name="", split="train", heldout_fraction=0.1, seed=0, limit=None):
    """[(conversation, is_safety)]: the first user turn of each dialogue, training or held-out part.

    A prompt's part depends only on (seed, dialogue id), so training and evaluation never share one.
    """
    dialogues = Dialogue.objects.select_related("project").order_by("pk")
    if project_name:
        dialogues = dialogues.filter(project__name=project_name)
    prompts, seen = [], set()
    for dialogue in dialogues.iterator():
        held_out = random.Random(f"{seed}:{dialogue.pk}").random() < heldout_fraction
        if held_out != (split == "heldout"):
            continue
        messages = dialogue.messages(upto=1)
        if not messages or messages[0]["role"] != "user" or messages[0]["content"] in seen:
            continue
        seen.add(messages[0]["content"])
        prompts.append((messages, dialogue.project.is_safety or dialogue.is_adversarial))
        if limit and len(prompts) == limit:
            break
    return prompts


def _prompts_check(config, split="train"):
    found = policy_prompts(project_name=config.project, split=split, heldout_fraction=config.heldout_fraction,
                           seed=config.seed, limit=1)
    if not found:
        where = f"project {config.project!r}" if config.project else "any project"
        part = "held-out" if split == "heldout" else "training"
        raise ValidationError({"project": f"{where} has no {part} prompts (dialogues starting with a user turn)"})


def reward_fn_build(config, prompts):
    """logit(R_c) from the config's reward models (Llama 2's combined reward, rlhf/rewards.py)."""
    import json

    from rewardmodel.scoring import load_scorer
    from rlhf.rewards import combined_reward_fn

    safety_prompts = {json.dumps(conversation) for conversation, is_safety in prompts if is_safety}
    return combined_reward_fn(
        load_scorer(config.helpfulness_rm) if config.helpfulness_rm else None,
        load_scorer(config.safety_rm) if config.safety_rm else None,
        is_safety=lambda conversation: json.dumps(conversation) in safety_prompts,
    )


def _policy_job_params(config_class, config):
    cfg = _config_validate(config_class, config)
    _policy_check(cfg.policy, "policy")
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


def policy_dir(name: str) -> Path:
    return Path(settings.MARGIN_MODEL_STORE) / "policies" / name


def _training_data(config, parent, prompts):
    return {
        "project": config.project or "(all projects)",
        "prompts": len(prompts),
        "safety_prompts": sum(1 for _, is_safety in prompts if is_safety),
        "helpfulness_rm": config.helpfulness_rm,
        "safety_rm": config.safety_rm,
        "parent": parent.name,
    }


def _version_store(*, job, name, kind, parent, checkpoint, config, data, metrics):
    version, _ = PolicyVersion.objects.update_or_create(
        name=name,
        defaults=dict(kind=kind, parent=parent, checkpoint_path=str(checkpoint), config=config.to_dict(),
                      data=data, metrics=metrics, job=job),
    )
    return version


def rejection_sample_work(job, on_progress):
    from rlhf.config import RejectionSamplingConfig
    from rlhf.rejection_sampling import SAMPLES_NAME, rejection_sample, winners_load

    config = RejectionSamplingConfig.from_dict(job.params["config"])
    parent = policy_version_resolve(config.policy)
    prompts = policy_prompts(project_name=config.project, heldout_fraction=config.heldout_fraction,
                             seed=config.seed, limit=config.max_prompts)
    previous = []
    for ancestor in parent.lineage():
        samples = Path(ancestor.checkpoint_path) / SAMPLES_NAME
        if ancestor.kind == PolicyVersion.Kind.REJECTION_SAMPLING and samples.is_file():
            previous += winners_load(samples, ancestor.name)
    on_progress(0, 1, log_line=f"{len(prompts)} prompts from {parent.name}; {len(previous)} earlier winners to pool")
    result = rejection_sample(
        config, parent.checkpoint_path, [p for p, _ in prompts], reward_fn_build(config, prompts),
        policy_dir(config.name) / "policy", previous=previous, on_progress=on_progress,
        metadata={"name": config.name, "parent": parent.name},
    )
    data = {**_training_data(config, parent, prompts), "kept_samples": len(result.winners),
            "pooled_from": result.pooled_from, "samples_file": str(result.checkpoint / SAMPLES_NAME)}
    metrics = {"reward_vs_k": result.reward_vs_k, "sft_loss": result.sft["loss"]}
    version = _version_store(job=job, name=config.name, kind=PolicyVersion.Kind.REJECTION_SAMPLING, parent=parent,
                             checkpoint=result.checkpoint, config=config, data=data, metrics=metrics)
    return {"policy_version_id": version.pk, "name": version.name}


def ppo_work(job, on_progress):
    from rlhf.config import PPOConfig
    from rlhf.ppo import ppo_train

    config = PPOConfig.from_dict(job.params["config"])
    parent = policy_version_resolve(config.policy)
    prompts = policy_prompts(project_name=config.project, heldout_fraction=config.heldout_fraction,
                             seed=config.seed, limit=config.max_prompts)
    history = {r["iteration"]: r for r in job.metrics.get("ppo_iterations", [])}
    on_progress(0, config.iterations, log_line=f"PPO from {parent.name} on {len(prompts)} prompts")

    def progress(done, total, record):
        history[record["iteration"]] = record
        line = " ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "iteration")
        on_progress(done, total, metrics={"ppo_iterations": [history[i] for i in sorted(history)]},
                    log_line=f"iteration {done}/{total}: {line}")

    result = ppo_train(config, parent.checkpoint_path, [p for p, _ in prompts], reward_fn_build(config, prompts),
                       policy_dir(config.name), on_progress=progress,
                       metadata={"name": config.name, "parent": parent.name})
    if result.stopped_early:
        on_progress(len(result.iterations), config.iterations, log_line=f"stopped early: {result.stopped_early}")
    data = {**_training_data(config, parent, prompts), "resumed_from_iteration": result.resumed_from,
            "stopped_early": result.stopped_early}
    version = _version_store(job=job, name=config.name, kind=PolicyVersion.Kind.PPO, parent=parent,
                             checkpoint=result.checkpoint, config=config, data=data,
                             metrics={"ppo_iterations": result.iterations})
    return {"policy_version_id": version.pk, "name": version.name}


def policy_evaluate_work(job, on_progress):
    from rlhf.config import PolicyEvaluationConfig
    from rlhf.evaluation import win_rate

    config = PolicyEvaluationConfig.from_dict(job.params["config"])
    version = policy_version_resolve(config.policy)
    against = PolicyVersion.objects.get(name=config.against) if config.against else version.parent
    prompts = policy_prompts(project_name=config.project, split="heldout", heldout_fraction=config.heldout_fraction,
                             seed=config.seed, limit=config.max_prompts)
    on_progress(0, 3, log_line=f"{version.name} against {against.name} on {len(prompts)} held-out prompts")
    result = win_rate(version.checkpoint_path, against.checkpoint_path, [p for p, _ in prompts],
                      reward_fn_build(config, prompts), temperature=config.temperature,
                      max_new_tokens=config.max_new_tokens, seed=config.seed,
                      on_progress=lambda step, log_line: on_progress(step, 3, log_line=log_line))
    summary = {"against": against.name, "win_rate": result["win_rate"], "prompts": result["prompts"]}
    with transaction.atomic():
        version = PolicyVersion.objects.select_for_update().get(pk=version.pk)
        version.metrics = {**version.metrics, "win_rate": summary, "evaluation": result}
        version.save(update_fields=["metrics"])
    on_progress(3, 3, metrics={"win_rate": summary})
    return {"policy_version_id": version.pk, **summary}


def samples_publish_work(job, on_progress):
    """Two responses per prompt (two versions and/or temperatures) as comparisons in the open batch.

    Dialogues that already have a comparison in that batch are skipped, so a retried job adds no
    duplicates.
    """
    from rlhf.config import PublishSamplesConfig
    from rlhf.generation import SamplingConfig, sample_responses
    from modelruntime.modelstore import load_policy_cached

    config = PublishSamplesConfig.from_dict(job.params["config"])
    batch = Batch.objects.filter(project__name=config.project, is_open=True).order_by("-number").first()
    if batch is None:
        raise ValueError(f"project {config.project!r} has no open batch")
    versions = [policy_version_resolve(config.policy_a), policy_version_resolve(config.policy_b or config.policy_a)]
    dialogues = [
        d for d in batch.project.dialogues.exclude(comparisons__batch=batch).order_by("pk")
        if (m := d.messages(upto=1)) and m[0]["role"] == "user"
    ][: config.max_prompts]
    prompts = [d.messages(upto=1) for d in dialogues]
    answers = []
    for step, (version, temperature) in enumerate(zip(versions, (config.temperature_a, config.temperature_b))):
        on_progress(step, 3, log_line=f"sampling {len(prompts)} responses from {version.name} at temperature {temperature}")
        model, tokenizer = load_policy_cached(version.checkpoint_path)
        sampling = SamplingConfig(temperature=temperature, max_new_tokens=config.max_new_tokens, seed=config.seed + step)
        samples = sample_responses(model, tokenizer, prompts, sampling, k=1)
        answers.append([{"text": s[0].text, "policy_version": version, "model_name": version.name,
                         "sampling": sampling.to_dict()} for s in samples])
    created = []
    with transaction.atomic():
        for dialogue, a, b in zip(dialogues, *answers):
            comparison = comparison_create(batch=batch, dialogue=dialogue, context_length=1, responses=[a, b])
            comparison.metadata = {**comparison.metadata, "published_by_job": job.pk}
            comparison.save(update_fields=["metadata"])
            created.append(comparison.pk)
    on_progress(3, 3, log_line=f"published {len(created)} comparisons to {batch}")
    return {"batch_id": batch.pk, "comparisons": len(created),
            "versions": [v.name for v in versions], "temperatures": [config.temperature_a, config.temperature_b]}


def _with_console(work, console):
    """`work` whose progress also goes to `console(step, total, metrics, log_line)` (commands)."""
    if console is None:
        return work

    def wrapped(job, on_progress):
        def both(step, total, metrics=None, log_line=None):
            console(step, total, metrics, log_line)
            on_progress(step, total, metrics=metrics, log_line=log_line)

        return work(job, both)

    return wrapped


def rejection_sample_run(*, job_id, console=None):
    return job_run(job_id=job_id, kind=Job.Kind.REJECTION_SAMPLE, work=_with_console(rejection_sample_work, console))


def ppo_run(*, job_id, console=None):
    return job_run(job_id=job_id, kind=Job.Kind.PPO, work=_with_console(ppo_work, console))


def policy_evaluate_run(*, job_id, console=None):
    return job_run(job_id=job_id, kind=Job.Kind.EVALUATE_POLICY, work=_with_console(policy_evaluate_work, console))


def samples_publish_run(*, job_id, console=None):
    return job_run(job_id=job_id, kind=Job.Kind.PUBLISH_SAMPLES, work=_with_console(samples_publish_work, console))
