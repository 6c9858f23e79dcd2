"""The policy jobs' work (rejection sampling, PPO, evaluation, publishing samples): what the
Celery task, and a management command in its own process, runs on a claimed job row. Pair
generation for annotators is in rlhf/pairs.py."""

from pathlib import Path

from django.conf import settings
from django.db import transaction

from annotation.models import Batch
from annotation.services import comparison_create
from core.heldout import prompt_key
from core.progress import work_with_console
from margin.jobs import job_run
from margin.models import Job
from rlhf.models import PolicyVersion
from rlhf.selectors import heldout_fraction_for, policy_prompts, policy_version_resolve


def reward_scorers_load(config) -> dict:
    """{"helpfulness_rm": scorer, "safety_rm": scorer}, those the config names: loaded once, for the
    combined reward and for the alarms' record of each RM's own score."""
    from rewardmodel.scoring import load_scorer

    return {field: load_scorer(getattr(config, field)) for field in ("helpfulness_rm", "safety_rm")
            if getattr(config, field)}


def reward_fn_build(config, prompts, scorers=None):
    """logit(R_c) from the config's reward models (Llama 2's combined reward, rlhf/rewards.py);
    `prompts` are PolicyPrompts, whose safety flag decides which RM scores each prompt."""
    from rlhf.rewards import combined_reward_fn

    scorers = reward_scorers_load(config) if scorers is None else scorers
    safety_keys = {prompt.key for prompt in prompts if prompt.is_safety}
    return combined_reward_fn(
        scorers.get("helpfulness_rm"),
        scorers.get("safety_rm"),
        # The rollout code hands back the prompt part of each conversation: its opening user
        # turn finds the prompt's flag, however the messages were copied on the way.
        is_safety=lambda conversation: prompt_key(conversation) in safety_keys,
        gate=safety_gate_for(config.safety_rm),
    )


def safety_gate_for(safety_rm: str):
    """The gate staff set on the safety RM's page, or None (the paper's 0.15)."""
    from rewardmodel.services import reward_model_resolve

    if not safety_rm:
        return None
    record, _, _ = reward_model_resolve(safety_rm)
    return record.safety_gate if record is not None else None


def alarms_watch(config, reward_fn, job, on_progress, scorers=None, to_alarm_record=None):
    """The reward function wrapped to record the held-out judge's and each RM's own score, and
    the check run after each iteration: alarms go to the log and the job's metrics (`alarms`),
    and with alarm_action=stop the first one ends the run (rlhf/alarms.py)."""
    from rewardmodel.scoring import load_scorer
    from rlhf.alarms import JudgedReward, RewardHackingStopped, alarm_record, alarms_check

    judged = JudgedReward(reward_fn, load_scorer(config.alarm_judge_rm) if config.alarm_judge_rm else None,
                          others=scorers)
    raised = {(a["alarm"], a["iteration"]) for a in job.metrics.get("alarms", [])}
    found = list(job.metrics.get("alarms", []))

    def check(records, done, total):
        for alarm in alarms_check([(to_alarm_record or alarm_record)(r) for r in records], config):
            if (alarm["alarm"], alarm["iteration"]) in raised:
                continue
            raised.add((alarm["alarm"], alarm["iteration"]))
            found.append(alarm)
            on_progress(done, total, metrics={"alarms": found}, log_line=f"REWARD-HACKING ALARM ({alarm['alarm']}): {alarm['message']}")
            if config.alarm_action == "stop":
                raise RewardHackingStopped(f"stopped by the {alarm['alarm']} alarm at iteration {alarm['iteration']}: {alarm['message']}")

    return judged, check


def policy_dir(name: str) -> Path:
    return Path(settings.MARGIN_MODEL_STORE) / "policies" / name


def _training_data(config, parent, prompts):
    return {
        "project": config.project or "(all projects)",
        "prompts": len(prompts),
        "safety_prompts": sum(1 for prompt in prompts if prompt.is_safety),
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
    from rlhf.backends import LOCAL, backend_for
    from rlhf.config import RejectionSamplingConfig
    from rlhf.rejection_sampling import SAMPLES_NAME, rejection_sample, winners_load

    config = RejectionSamplingConfig.from_dict(job.params["config"])
    parent = policy_version_resolve(config.policy)
    prompts = policy_prompts(project_name=config.project, heldout_fraction=config.heldout_fraction, limit=config.max_prompts)
    previous = []
    for ancestor in parent.lineage():
        samples = Path(ancestor.checkpoint_path) / SAMPLES_NAME
        if ancestor.kind == PolicyVersion.Kind.REJECTION_SAMPLING and samples.is_file():
            previous += winners_load(samples, ancestor.name)
    on_progress(0, 1, log_line=f"{len(prompts)} prompts from {parent.name}; {len(previous)} earlier winners to pool")
    reward_fn, alarm_state = _best_of_k_watch(config, job, parent, prompts, on_progress)
    result = rejection_sample(
        config, parent.checkpoint_path, [p.messages for p in prompts], reward_fn,
        policy_dir(config.name) / "policy", previous=previous, on_progress=on_progress,
        metadata={"name": config.name, "parent": parent.name},
        # A served parent samples on its server; the fine-tuning still needs its weights here.
        backend=None if parent.backend == LOCAL else backend_for(parent),
    )
    data = {**_training_data(config, parent, prompts), "kept_samples": len(result.winners),
            "pooled_from": result.pooled_from, "samples_file": str(result.checkpoint / SAMPLES_NAME)}
    metrics = {"reward_vs_k": result.reward_vs_k, "loss/sft": result.sft["loss"], **alarm_state}
    version = _version_store(job=job, name=config.name, kind=PolicyVersion.Kind.REJECTION_SAMPLING, parent=parent,
                             checkpoint=result.checkpoint, config=config, data=data, metrics=metrics)
    return {"policy_version_id": version.pk, "name": version.name}


def _best_of_k_watch(config, job, parent, prompts, on_progress):
    """Rejection sampling's reward function, recording per prompt batch the kept samples' reward,
    length, judge's and RMs' scores (job metrics `rs_batches`); the run's summary is checked
    against the earliest rejection-sampling version of the lineage (rlhf/alarms.py). Returns the
    function and the dict the version's metrics take (`rs_batches`, `rs_summary`, `alarms`)."""
    from rlhf.alarms import BestOfKWatch, best_of_k_summary, rejection_alarm_record

    scorers = reward_scorers_load(config)
    earlier = [(v.name, v.metrics["rs_summary"]) for v in reversed(parent.lineage()) if v.metrics.get("rs_summary")]
    state = {}

    def on_records(records):
        state.update(rs_batches=records, rs_summary=best_of_k_summary(records))
        on_progress(0, 1, metrics={"rs_batches": records, "rs_summary": state["rs_summary"]},
                    log_line=f"kept samples of {len(records)} prompt batches recorded for the alarms")
        series = [{**summary, "iteration": name} for name, summary in earlier]
        series.append({**state["rs_summary"], "iteration": config.name})
        check(series, 0, 1)
        state["alarms"] = list(Job.objects.get(pk=job.pk).metrics.get("alarms", []))

    judged, check = alarms_watch(config, None, job, on_progress, scorers=scorers,
                                 to_alarm_record=lambda s: rejection_alarm_record(s, s["iteration"]))
    watched = BestOfKWatch(reward_fn_build(config, prompts, scorers), k=config.k, prompts=len(prompts),
                           on_records=on_records, judge=judged.judge, others=scorers)
    return watched, state


def ppo_reward_spec(config, prompts) -> dict:
    """What PPO's torchrun ranks rebuild the reward from (rlhf/ppo.py reward_fn_from_spec): the
    reward models' checkpoint paths, the safety gate and which prompts are safety prompts."""
    from rewardmodel.scoring import resolve_checkpoint

    return {"helpfulness_rm": str(resolve_checkpoint(config.helpfulness_rm)) if config.helpfulness_rm else "",
            "safety_rm": str(resolve_checkpoint(config.safety_rm)) if config.safety_rm else "",
            "gate": safety_gate_for(config.safety_rm),
            "safety_keys": [prompt.key for prompt in prompts if prompt.is_safety]}


def ppo_work(job, on_progress):
    from rlhf.config import PPOConfig
    from rlhf.ppo import ppo_train

    config = PPOConfig.from_dict(job.params["config"])
    parent = policy_version_resolve(config.policy)
    prompts = policy_prompts(project_name=config.project, heldout_fraction=config.heldout_fraction, limit=config.max_prompts)
    history = {r["iteration"]: r for r in job.metrics.get("ppo_iterations", [])}
    on_progress(0, config.iterations, log_line=f"PPO from {parent.name} on {len(prompts)} prompts")
    scorers = reward_scorers_load(config)
    reward_fn, alarms_progress = alarms_watch(config, reward_fn_build(config, prompts, scorers), job, on_progress,
                                              scorers=scorers)

    def progress(done, total, record):
        record = {**record, **reward_fn.last}  # the judge's score and the responses' length
        history[record["iteration"]] = record
        line = " ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "iteration")
        on_progress(done, total, metrics={"ppo_iterations": [history[i] for i in sorted(history)]},
                    log_line=f"iteration {done}/{total}: {line}")
        alarms_progress([history[i] for i in sorted(history)], done, total)

    result = ppo_train(config, parent.checkpoint_path, [p.messages for p in prompts], reward_fn,
                       policy_dir(config.name), on_progress=progress,
                       metadata={"name": config.name, "parent": parent.name},
                       reward_spec=ppo_reward_spec(config, prompts) if config.distributed else None)
    if result.stopped_early:
        on_progress(len(result.iterations), config.iterations, log_line=f"stopped early: {result.stopped_early}")
    data = {**_training_data(config, parent, prompts), "resumed_from_iteration": result.resumed_from,
            "stopped_early": result.stopped_early}
    version = _version_store(job=job, name=config.name, kind=PolicyVersion.Kind.PPO, parent=parent,
                             checkpoint=result.checkpoint, config=config, data=data,
                             metrics={"ppo_iterations": [{**r, **history.get(r["iteration"], {})} for r in result.iterations],
                                      "alarms": Job.objects.get(pk=job.pk).metrics.get("alarms", [])})
    return {"policy_version_id": version.pk, "name": version.name}


def policy_evaluate_work(job, on_progress):
    from rlhf.backends import backend_for
    from rlhf.config import PolicyEvaluationConfig
    from rlhf.evaluation import win_rate

    config = PolicyEvaluationConfig.from_dict(job.params["config"])
    version = policy_version_resolve(config.policy)
    against = PolicyVersion.objects.get(name=config.against) if config.against else version.parent
    fraction = heldout_fraction_for(version, config.heldout_fraction)
    prompts = policy_prompts(project_name=config.project, split="heldout", heldout_fraction=fraction,
                             limit=config.max_prompts)
    on_progress(0, 3, log_line=f"{version.name} against {against.name} on {len(prompts)} held-out prompts")
    result = win_rate(backend_for(version), backend_for(against), [p.messages for p in prompts],
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
    from rlhf.backends import backend_for
    from rlhf.config import PublishSamplesConfig
    from rlhf.generation import SamplingConfig

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
        backend = backend_for(version)
        on_progress(step, 3, log_line=f"sampling {len(prompts)} responses from {version.name} "
                                       f"({backend.describe()}) at temperature {temperature}")
        sampling = SamplingConfig(temperature=temperature, max_new_tokens=config.max_new_tokens, seed=config.seed + step)
        samples = backend.generate(prompts, sampling)  # all of them before any comparison is stored
        answers.append([{"text": s[0].text, "policy_version": version, "model_name": version.name,
                         "sampling": sampling.to_dict()} for s in samples])
    created = []
    with transaction.atomic():
        for dialogue, a, b in zip(dialogues, *answers):
            comparison = comparison_create(batch=batch, dialogue=dialogue, context_length=1, responses=[a, b],
                                           metadata={"published_by_job": job.pk})
            created.append(comparison.pk)
    on_progress(3, 3, log_line=f"published {len(created)} comparisons to {batch}")
    return {"batch_id": batch.pk, "comparisons": len(created),
            "versions": [v.name for v in versions], "temperatures": [config.temperature_a, config.temperature_b]}


def rejection_sample_run(*, job_id, console=None):
    return job_run(job_id=job_id, kind=Job.Kind.REJECTION_SAMPLE, work=work_with_console(rejection_sample_work, console))


def ppo_run(*, job_id, console=None):
    return job_run(job_id=job_id, kind=Job.Kind.PPO, work=work_with_console(ppo_work, console))


def policy_evaluate_run(*, job_id, console=None):
    return job_run(job_id=job_id, kind=Job.Kind.EVALUATE_POLICY, work=work_with_console(policy_evaluate_work, console))


def samples_publish_run(*, job_id, console=None):
    return job_run(job_id=job_id, kind=Job.Kind.PUBLISH_SAMPLES, work=work_with_console(samples_publish_work, console))
