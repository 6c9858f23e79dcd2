"""Bridges from database rows to the reward-model code: start, run and record training jobs,
and evaluate registered models. The ML itself lives in data.py, training.py and evaluation.py."""

from __future__ import annotations

import random
import re
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from annotation.models import Batch, Project
from core.progress import work_with_console
from margin.jobs import JobCancelled, job_create, job_run
from margin.models import Job
from modelruntime.config import ConfigError
from rewardmodel.config import RewardModelConfig
from rewardmodel.data import NoTrainingData, mix, pairs_for_projects, split
from rewardmodel.models import RewardModel, RewardModelEvaluation

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def config_validate(values: dict) -> RewardModelConfig:
    try:
        return RewardModelConfig.from_dict(values)
    except ConfigError as bad:
        raise ValidationError({bad.field: str(bad)}) from bad  # the form shows it under the field


def reward_model_train_start(*, project, name, config: dict, created_by=None, enqueue=True) -> Job:
    """Validate, then create a training job and send it to the gpu queue (or leave it for the
    caller to run in-process: `enqueue=False`); nothing is created on bad input."""
    # Every problem at once, each under its field (issue 16), not one per submit.
    errors = {}
    if not NAME_PATTERN.match(name or ""):
        errors["name"] = [f"{name!r} is not a usable name: letters, digits, '.', '_' or '-', up to 100"]
    elif RewardModel.objects.filter(name=name).exists():
        errors["name"] = [f"a reward model named {name!r} already exists"]
    if not project.batches.filter(comparisons__judgments__isnull=False).exists():
        errors["project"] = [f"project {project.name!r} has no judged comparisons yet"]
    try:
        config_validate(config)
    except ValidationError as bad:
        errors.update(bad.message_dict)
    if errors:
        raise ValidationError(errors)
    params = {"project_id": project.pk, "name": name, "config": config}
    if not enqueue:
        return Job.objects.create(kind=Job.Kind.TRAIN_REWARD_MODEL, params=params, created_by=created_by)
    return job_create(kind=Job.Kind.TRAIN_REWARD_MODEL, params=params, created_by=created_by)


def reward_model_dir(name: str) -> Path:
    return Path(settings.MARGIN_MODEL_STORE) / "reward_models" / name


def base_model_path(config: RewardModelConfig) -> Path:
    from modelruntime.modelstore import ModelStoreError, checkpoint_is_complete, default_model_dir

    if not config.base_model:
        return default_model_dir(Path(settings.MARGIN_MODEL_STORE))
    path = Path(config.base_model)
    if not checkpoint_is_complete(path):
        raise ModelStoreError(f"base_model {path} is not a complete checkpoint")
    return path


def dataset_build(project: Project, config: RewardModelConfig):
    """(train pairs, held-out pairs, data record) for an RM of the project's objective.

    Own data: every judged comparison of the project, split by prompt. Mixed in: the training
    part of the other objective's projects, in the paper's proportion (config.mix_ratio).
    """
    objective = project.objective
    own, report = pairs_for_projects(
        [project], objective=objective, margin_scheme=config.margin_scheme or None,
        min_judgments=config.min_judgments,
    )
    if not own:
        raise NoTrainingData(
            f"project {project.name!r} has no usable pairs (skipped: {dict(report.skipped) or 'none judged'})"
        )
    train, heldout = split(own, config.heldout_fraction)
    others = Project.objects.exclude(objective=objective).exclude(pk=project.pk)
    other_pairs, _ = pairs_for_projects(
        others, objective=objective, margin_scheme=config.margin_scheme or None,
        min_judgments=config.min_judgments,
    )
    other_train, _ = split(other_pairs, config.heldout_fraction)
    ratio = config.mix_ratio_for(objective)
    mixed = mix(train, other_train, ratio, config.seed)
    if config.max_pairs and len(mixed) > config.max_pairs:
        # A seeded sample, not the first N: pairs come in batch order, one data set after another.
        mixed = random.Random(config.seed).sample(mixed, config.max_pairs)
    if not mixed or not heldout:  # issue 15 item 7: said before training, not after it
        raise NoTrainingData(
            f"project {project.name!r} has too little data for a reward model: {len(mixed)} training "
            f"and {len(heldout)} held-out pairs ({len(own)} usable pairs, heldout_fraction "
            f"{config.heldout_fraction:g}); judge more comparisons or change heldout_fraction"
        )
    record = {
        "projects": [project.name, *(p.name for p in others)],
        "batches": sorted({p.batch_id for p in own}),
        "own_pairs": len(train),
        "mixed_in_pairs": len(mixed) - len(train) if not config.max_pairs else None,
        "mix_ratio": ratio,
        "train_pairs": len(mixed),
        "heldout_pairs": len(heldout),
        "skipped": dict(report.skipped),
    }
    return mixed, heldout, record


def reward_model_train(job, on_progress):
    """The job's work: build the data, train, register the model, evaluate it per batch."""
    from rewardmodel.training import TrainResult, train

    project = Project.objects.get(pk=job.params["project_id"])
    name = job.params["name"]
    config = RewardModelConfig.from_dict(job.params.get("config", {}))
    train_pairs, heldout, data = dataset_build(project, config)
    base = base_model_path(config)
    on_progress(0, 1, log_line=f"{len(train_pairs)} training pairs, {len(heldout)} held out")

    def progress(step, total, metrics):
        on_progress(step, total, metrics=metrics)

    metadata = {"name": name, "objective": project.objective, "base_model": str(base)}
    try:
        if config.distributed:  # torchrun + FSDP2; the ranks get the pairs built here
            spec = {"kind": "reward_model", "config": config.to_dict(), "output_dir": str(reward_model_dir(name)),
                    "base_path": str(base), "metadata": metadata}
            result = TrainResult.from_dict(distributed_job_run(
                job, config=config, spec=spec, data=[pair.to_dict() for pair in train_pairs],
                workdir=reward_model_dir(name) / "distributed", on_progress=on_progress,
            ))
        else:
            result = train(config, train_pairs, reward_model_dir(name), base_path=base, on_progress=progress,
                           metadata=metadata)
        reward_model = _reward_model_register(job, name=name, project=project, base=base, config=config,
                                              data=data, result=result)
        on_progress(result.steps, result.steps, log_line="evaluating on the held-out pairs")
        summary = reward_model_evaluate(reward_model, project=project, pairs=heldout)
    except Exception:  # JobCancelled too
        # A failed (or cancelled) job leaves no model behind: no registry row, no checkpoint.
        # A killed worker or an interrupted command never gets here, so their checkpoints stay
        # for the retry to resume from.
        RewardModel.objects.filter(name=name, job=job).delete()
        shutil.rmtree(reward_model_dir(name), ignore_errors=True)
        raise
    return {"reward_model_id": reward_model.pk, "heldout": summary}


def distributed_job_run(job, *, config, spec: dict, data, workdir: Path, on_progress) -> dict:
    """Run a job's training as `config.processes` torchrun processes (modelruntime/launch.py):
    rank 0's progress goes to the job row, cancel stops every rank. Returns the trainer's result.

    RM training's; SFT and PPO (rlhf/sft.py, rlhf/ppo.py) call modelruntime/launch.py's spec_run
    themselves, their job's cancel arriving through on_progress.
    """
    from modelruntime.launch import DATA_NAME, RunCancelled, spec_run

    last = {"step": 0, "total": 1}

    def on_event(event):
        if "step" in event:
            last.update(step=event["step"], total=event["total"])
            on_progress(event["step"], event["total"], metrics=event.get("metrics") or None)
        elif "log" in event:
            on_progress(last["step"], last["total"], log_line=event["log"])

    checked = {"at": 0.0}

    def cancel_requested():  # between events too: loading a large model reports nothing for minutes
        now = time.monotonic()
        if now - checked["at"] < CANCEL_POLL_SECONDS:
            return False
        checked["at"] = now
        return Job.objects.filter(pk=job.pk, cancel_requested=True).exists()

    on_progress(0, 1, log_line=f"starting {config.processes} processes x {config.nodes} node(s) under torchrun")
    try:
        result = spec_run(config, spec=spec, data=data, workdir=workdir, on_event=on_event,
                          cancel_requested=cancel_requested, max_restarts=DISTRIBUTED_RESTARTS)
    except RunCancelled as cancelled:
        raise JobCancelled(f"Job {job.pk} was cancelled.") from cancelled
    (workdir / DATA_NAME).unlink(missing_ok=True)  # the job's data is in the database; the log stays
    return result


CANCEL_POLL_SECONDS = 1.0
# A rank that dies (out of memory, a lost node) restarts the group once from the last sharded
# checkpoint; a second death fails the job, naming the rank.
DISTRIBUTED_RESTARTS = 1


def _reward_model_register(job, *, name, project, base, config, data, result) -> RewardModel:
    parent = (
        RewardModel.objects.filter(project=project, objective=project.objective).exclude(name=name).first()
    )
    with transaction.atomic():
        reward_model, _ = RewardModel.objects.update_or_create(
            name=name,
            defaults=dict(
                objective=project.objective, project=project, base_model=str(base), parent=parent,
                config=config.to_dict(), data=data, checkpoint_path=str(result.checkpoint),
                metrics={"train": result.metrics, "steps": result.steps,
                         "resumed_from_step": result.resumed_from_step},
                job=job,
            ),
        )
    return reward_model


def reward_model_train_run(*, job_id, console=None):
    """Run a training job here; `console` gets every progress call too (a command's bar)."""
    return job_run(job_id=job_id, kind=Job.Kind.TRAIN_REWARD_MODEL, work=work_with_console(reward_model_train, console))


def reward_model_evaluate(reward_model: RewardModel, *, project: Project, pairs=None, on_progress=None):
    """Score held-out pairs once; store overall and per-batch evaluations; return the overall."""
    from modelruntime.modelstore import pick_device
    from rewardmodel.evaluation import report, score_pairs
    from rewardmodel.modeling import load_for_scoring

    if pairs is None:
        config = RewardModelConfig.from_dict(reward_model.config)
        pairs = evaluation_pairs(project, config, objective=reward_model.objective)
    if not pairs:
        raise NoTrainingData(f"project {project.name!r} has no held-out pairs to evaluate on")
    model, tokenizer = load_for_scoring(reward_model.checkpoint_path, pick_device())
    config = reward_model.config  # as trained: the same cut at scoring
    pair_scores = score_pairs(model, tokenizer, pairs, config.get("max_length", 1024), on_progress=on_progress,
                              truncation_side=config.get("truncation_side", "left"))
    overall = report(pairs, pair_scores)
    with transaction.atomic():
        _evaluation_store(reward_model, None, f"{project.name} held-out", overall)
        for batch in Batch.objects.filter(pk__in={p.batch_id for p in pairs}):
            rows = [(p, s) for p, s in zip(pairs, pair_scores) if p.batch_id == batch.pk]
            _evaluation_store(
                reward_model, batch, f"{batch} held-out",
                report([p for p, _ in rows], [s for _, s in rows]),
            )
        if project == reward_model.project:
            reward_model.metrics = {**reward_model.metrics, "heldout": overall}
            reward_model.save(update_fields=["metrics"])
    return overall


def _evaluation_store(reward_model, batch, label, result):
    RewardModelEvaluation.objects.update_or_create(
        reward_model=reward_model, batch=batch, label=label,
        defaults=dict(
            pairs=result["pairs"], accuracy=result["accuracy"],
            per_strength=result["per_strength"], per_safety_bin=result["per_safety_bin"],
            calibration=result["calibration"], length=result.get("length", {}),
            safety_curve=result.get("safety", {}),
        ),
    )


def reward_model_resolve(name_or_path: str):
    """(registry row or None, checkpoint path, config) of a registered name or a checkpoint path."""
    from modelruntime.modelstore import read_metadata
    from rewardmodel.scoring import resolve_checkpoint

    path = resolve_checkpoint(name_or_path)
    record = RewardModel.objects.filter(checkpoint_path=str(path)).first()
    values = record.config if record else read_metadata(path).get("config", {})
    return record, path, RewardModelConfig.from_dict(values)


def evaluation_pairs(project: Project, config: RewardModelConfig, *, objective=None, heldout_only=True):
    pairs, _ = pairs_for_projects(
        [project], objective=objective or project.objective,
        margin_scheme=config.margin_scheme or None, min_judgments=config.min_judgments,
    )
    if heldout_only:
        pairs = split(pairs, config.heldout_fraction)[1]
    if not pairs:
        raise NoTrainingData(f"project {project.name!r} has no {'held-out ' if heldout_only else ''}pairs")
    return pairs


def reward_models_compare(first: str, second: str, project: Project, on_progress=None) -> dict:
    """Both reward models on the same pairs: the first one's held-out split of `project`."""
    from modelruntime.modelstore import pick_device
    from rewardmodel.evaluation import compare, score_pairs
    from rewardmodel.modeling import load_for_scoring

    _, path_a, config_a = reward_model_resolve(first)
    _, path_b, config_b = reward_model_resolve(second)
    pairs = evaluation_pairs(project, config_a)
    results = []
    for path, config in ((path_a, config_a), (path_b, config_b)):
        model, tokenizer = load_for_scoring(path, pick_device())
        results.append(score_pairs(model, tokenizer, pairs, config.max_length, on_progress=on_progress,
                                   truncation_side=config.truncation_side))
    return compare(pairs, *results)


def reward_models_evaluate_all(project: Project, on_progress=None) -> dict:
    """Every reward model of the project's objective on every batch's held-out part, so accuracy
    per batch over time can be plotted (a new batch is new data for the older models too)."""
    models = [
        m for m in RewardModel.objects.filter(objective=project.objective).order_by("created_at")
        if m.checkpoint_path
    ]
    if not models:
        raise NoTrainingData(f"no trained {project.objective} reward model to evaluate")
    results = {}
    for number, reward_model in enumerate(models, start=1):
        if on_progress:
            on_progress(number - 1, len(models), log_line=f"evaluating {reward_model.name}")
        results[reward_model.name] = reward_model_evaluate(reward_model, project=project)["accuracy"]
    if on_progress:
        on_progress(len(models), len(models))
    return results
