"""The fine-tuning jobs' work (SFT from demonstrations, DPO offline and iterative, Ghost
Attention): what the Celery task, and a management command in its own process, runs on a claimed
job row. Each makes a new PolicyVersion with its lineage: parent, config, data, metrics, job.
Starting the jobs (validation, version names) is rlhf/jobs.py's."""

from __future__ import annotations

from core.progress import work_with_console
from margin.jobs import job_run
from margin.models import Job
from rlhf.models import PolicyVersion
from rlhf.selectors import policy_prompts, policy_version_resolve
from rlhf.work import _version_store, policy_dir, reward_fn_build


def config_for_worker(config_class, values: dict):
    """The job's config; `preset: auto` becomes cpu on a worker without CUDA, paper otherwise."""
    import torch

    if values.get("preset", "auto") == "auto":
        values = {**values, "preset": "paper" if torch.cuda.is_available() else "cpu"}
    return config_class.from_dict(values)


def _sft_model_train(config, parent, pairs, out, on_progress, metadata):
    """SFT (rlhf/sft.py, as it is) on (prompt, answer) pairs from `parent`'s weights; resumable
    from `<out>-resume`; LoRA when config.lora_rank."""
    from modelruntime.checkpoint import RESUME_DIR, states_clear
    from modelruntime.modelstore import load_policy, save_checkpoint
    from modelruntime.optim import lora_wrap
    from rlhf.sft import sft_train

    resume_dir = out.with_name(f"{out.name}-{RESUME_DIR}")
    model, tokenizer = load_policy(parent.checkpoint_path)
    if config.lora_rank:
        model = lora_wrap(model, rank=config.lora_rank, alpha=config.lora_alpha, task_type="CAUSAL_LM")
    else:
        model.requires_grad_(True)
    result = sft_train(model, tokenizer, pairs, config, lambda step, total, metrics: on_progress(step, total, metrics),
                       seed=config.seed, resume_dir=resume_dir)
    if config.lora_rank:
        model = model.merge_and_unload()  # a plain checkpoint: the adapter folded in
    checkpoint = save_checkpoint(model, tokenizer, out, {**metadata, "config": config.to_dict()})
    states_clear(resume_dir)
    return checkpoint, result


# --- SFT from demonstrations -------------------------------------------------------------------


def sft_work(job, on_progress):
    from rlhf.config import SFTJobConfig
    from rlhf.tuning_data import demonstration_pairs, sft_file_pairs, winner_pairs

    config = config_for_worker(SFTJobConfig, job.params["config"])
    parent = policy_version_resolve(config.policy)
    sources = {}
    if config.demonstrations:
        sources["demonstrations"] = demonstration_pairs(project_name=config.project,
                                                        heldout_fraction=config.heldout_fraction)
    if config.sft_file:
        sources["sft_file"] = sft_file_pairs(config.sft_file, heldout_fraction=config.heldout_fraction)
    if config.rejection_winners:
        sources["rejection_winners"] = winner_pairs(parent, heldout_fraction=config.heldout_fraction)
    pairs = [pair for found in sources.values() for pair in found]
    counts = {name: len(found) for name, found in sources.items()}
    if not pairs:
        raise ValueError(f"nothing to fine-tune on: {counts or 'no source chosen'}")
    on_progress(0, 1, log_line=f"SFT from {parent.name} on {len(pairs)} examples ({counts}), preset {config.preset}")
    checkpoint, result = _sft_model_train(config, parent, pairs, policy_dir(config.name) / "policy", on_progress,
                                          {"kind": "sft", "name": config.name, "parent": parent.name})
    data = {"project": config.project or "(all projects)", "examples": counts, "sft_file": config.sft_file,
            "parent": parent.name, "resumed_from_step": result["resumed_from_step"]}
    version = _version_store(job=job, name=config.name, kind=PolicyVersion.Kind.SFT, parent=parent,
                             checkpoint=checkpoint, config=config, data=data, metrics={"loss/sft": result["loss"]})
    return {"policy_version_id": version.pk, "name": version.name, "examples": counts}


# --- DPO ---------------------------------------------------------------------------------------


def _dpo_progress(on_progress, prefix=""):
    def progress(step, total, metrics):
        on_progress(step, total, log_line=f"{prefix}step {step}/{total}: " + " ".join(
            f"{k}={v:.4g}" for k, v in metrics.items()))
    return progress


def dpo_work(job, on_progress):
    from rlhf.config import DPOJobConfig
    from rlhf.dpo import dpo_run
    from rlhf.tuning_data import preference_pairs

    config = config_for_worker(DPOJobConfig, job.params["config"])
    parent = policy_version_resolve(config.policy)
    train, heldout, report = preference_pairs(project_name=config.project, min_judgments=config.min_judgments,
                                              heldout_fraction=config.heldout_fraction)
    if config.max_pairs:
        train = train[: config.max_pairs]
    if not train:
        raise ValueError(f"no judged comparisons to train on (pair builder: {report})")
    on_progress(0, 1, log_line=f"DPO ({config.loss_type}) from {parent.name} on {len(train)} pairs, "
                                f"{len(heldout)} held out; preset {config.preset}")
    result = dpo_run(config, parent.checkpoint_path, train, heldout, policy_dir(config.name) / "policy",
                     on_progress=_dpo_progress(on_progress), seed=config.seed, lora_rank=config.lora_rank,
                     lora_alpha=config.lora_alpha, metadata={"name": config.name, "parent": parent.name})
    data = {"project": config.project or "(all projects)", "pairs": len(train), "heldout_pairs": len(heldout),
            "pair_builder": report, "parent": parent.name, "resumed_from_step": result.resumed_from_step}
    metrics = {"loss/dpo": result.losses, "dpo/train_accuracy": result.train_accuracy,
               "heldout_before": result.heldout_before, "heldout_after": result.heldout_after}
    version = _version_store(job=job, name=config.name, kind=PolicyVersion.Kind.DPO, parent=parent,
                             checkpoint=result.checkpoint, config=config, data=data, metrics=metrics)
    on_progress(result.steps, result.steps, metrics={"heldout_after": result.heldout_after})
    return {"policy_version_id": version.pk, "name": version.name, "pairs": len(train),
            "heldout_pairs": len(heldout), "heldout_accuracy": result.heldout_after["dpo/accuracy"],
            "heldout_ci95": result.heldout_after["ci95"], "heldout_reward_margin": result.heldout_after["dpo/reward_margin"]}


def dpo_iterative_work(job, on_progress):
    """Rounds of sample (rlhf/backends.py: the local engine or the version's server) -> label the
    best and the worst of K by the combined reward -> DPO -> a new version, each round's data and
    metrics on the version it produced. Humans label instead through `publish_samples` (the
    pairs go to annotators) followed by an offline `train_dpo`. A retried job skips the rounds
    whose version exists."""
    from rlhf.backends import backend_for
    from rlhf.config import DPOIterativeConfig
    from rlhf.dpo import PreferencePair, dpo_run
    from rlhf.generation import SamplingConfig

    config = config_for_worker(DPOIterativeConfig, job.params["config"])
    latest = policy_version_resolve(config.policy)
    train_prompts = policy_prompts(project_name=config.project, heldout_fraction=config.heldout_fraction,
                                   limit=config.max_prompts)
    heldout_prompts = policy_prompts(project_name=config.project, split="heldout",
                                     heldout_fraction=config.heldout_fraction, limit=max(1, config.max_prompts // 4))
    reward_fn = reward_fn_build(config, train_prompts + heldout_prompts)
    rounds = []
    for number in range(1, config.rounds + 1):
        name = f"{config.name}-R{number}"
        done = PolicyVersion.objects.filter(name=name, job=job).first()
        if done:
            latest = done
            rounds.append({"round": number, "name": name, **done.metrics.get("round", {})})
            continue
        on_progress(number - 1, config.rounds, log_line=f"round {number}: sampling {config.k} responses per prompt "
                                                         f"from {latest.name}")
        sampling = SamplingConfig(temperature=config.temperature, top_p=1.0, max_new_tokens=config.max_new_tokens,
                                  seed=config.seed + number)
        labelled = {}
        for split, prompts in (("train", train_prompts), ("heldout", heldout_prompts)):
            messages = [p.messages for p in prompts]
            samples = backend_for(latest, batch_size=config.generation_batch_size).generate(messages, sampling,
                                                                                            k=config.k)
            flat = reward_fn([m + [{"role": "assistant", "content": s.text}] for m, per in zip(messages, samples)
                              for s in per])
            pairs = []
            for i, (prompt, per) in enumerate(zip(messages, samples)):
                scores = flat[i * config.k : (i + 1) * config.k]
                best = max(range(config.k), key=scores.__getitem__)
                worst = min(range(config.k), key=scores.__getitem__)
                if scores[best] > scores[worst] and per[best].text != per[worst].text:
                    pairs.append(PreferencePair(prompt, per[best].text, per[worst].text))
            labelled[split] = pairs
        if not labelled["train"]:
            raise ValueError(f"round {number}: every prompt's K samples scored the same; nothing to prefer")
        result = dpo_run(config, latest.checkpoint_path, labelled["train"], labelled["heldout"],
                         policy_dir(name) / "policy", on_progress=_dpo_progress(on_progress, f"round {number} "),
                         seed=config.seed + number, lora_rank=config.lora_rank, lora_alpha=config.lora_alpha,
                         metadata={"name": name, "parent": latest.name})
        record = {"round": number, "pairs": len(labelled["train"]), "heldout_pairs": len(labelled["heldout"]),
                  "heldout_accuracy": result.heldout_after["dpo/accuracy"], "final_loss": result.losses[-1]}
        data = {"project": config.project or "(all projects)", "round": number, "labelled_by": "reward model",
                "helpfulness_rm": config.helpfulness_rm, "safety_rm": config.safety_rm,
                "prompts": len(train_prompts), "pairs": len(labelled["train"]), "parent": latest.name}
        metrics = {"round": record, "loss/dpo": result.losses, "heldout_after": result.heldout_after}
        latest = _version_store(job=job, name=name, kind=PolicyVersion.Kind.DPO, parent=latest,
                                checkpoint=result.checkpoint, config=config, data=data, metrics=metrics)
        rounds.append({"name": name, **record})
        on_progress(number, config.rounds, metrics={"dpo_rounds": rounds})
    return {"policy_version_id": latest.pk, "name": latest.name, "rounds": rounds}


# --- Ghost Attention ------------------------------------------------------------------------------


def gatt_work(job, on_progress):
    """Sample instructed dialogues with the latest policy (its backend: local or served), fine-tune
    on them with the instruction in the first turn only, and measure turns kept before and after
    on held-out prompts. A retried job samples the same dialogues again (seeded) and resumes the
    fine-tuning from its last state."""
    from rlhf import gatt
    from rlhf.backends import LocalBackend, backend_for
    from rlhf.config import GAttConfig, comma_list
    from rlhf.generation import SamplingConfig

    config = config_for_worker(GAttConfig, job.params["config"])
    parent = policy_version_resolve(config.policy)
    instructions = gatt.instructions_from(hobbies=comma_list(config.hobbies), languages=comma_list(config.languages),
                                          public_figures=comma_list(config.public_figures))
    sampling = SamplingConfig(temperature=config.temperature, max_new_tokens=config.max_new_tokens, seed=config.seed)

    def texts(backend):
        return lambda conversations: [g[0].text for g in backend.generate(conversations, sampling)]

    def prompts_of(split, limit):
        return [p.messages[0]["content"] for p in policy_prompts(
            project_name=config.project, split=split, heldout_fraction=config.heldout_fraction, limit=limit)]

    train_prompts = prompts_of("train", config.dialogues * config.turns)
    dialogues = gatt.dialogues_build(train_prompts, instructions, count=config.dialogues, turns=config.turns,
                                seed=config.seed)
    steps = 3 + config.turns
    on_progress(0, steps, log_line=f"sampling {len(dialogues)} {config.turns}-turn dialogues from {parent.name}, "
                                   "the instruction on every user turn")
    parent_backend = backend_for(parent, batch_size=config.generation_batch_size)
    gatt.dialogues_sample(texts(parent_backend), dialogues, instruction_everywhere=True,
                     on_turn=lambda t: on_progress(t, steps))
    examples = [example for dialogue in dialogues for example in gatt.training_examples(dialogue)]

    heldout_prompts = prompts_of("heldout", None)
    scorer = None
    if config.helpfulness_rm:
        from rewardmodel.scoring import load_scorer

        scorer = load_scorer(config.helpfulness_rm).score
    evaluation = {}

    def evaluate(label, backend):
        if config.eval_dialogues == 0 or len(heldout_prompts) < config.turns:
            evaluation[label] = {"gatt/turns_kept": None, "note": f"needs {config.turns} held-out prompts, "
                                                                  f"{len(heldout_prompts)} found"}
            return
        held = gatt.dialogues_build(heldout_prompts, instructions, count=config.eval_dialogues, turns=config.turns,
                               seed=config.seed + 1)
        evaluation[label] = gatt.instruction_evaluation(
            gatt.dialogues_sample(texts(backend), held, instruction_everywhere=False), scorer)

    evaluate("before", parent_backend)
    on_progress(config.turns + 1, steps, log_line=f"fine-tuning on {len(examples)} turns; "
                                                  f"turns kept before: {evaluation['before']['gatt/turns_kept']}")
    checkpoint, result = _sft_model_train(config, parent, examples, policy_dir(config.name) / "policy",
                                          lambda step, total, metrics=None: on_progress(step, total, metrics),
                                          {"kind": "gatt", "name": config.name, "parent": parent.name})
    evaluate("after", LocalBackend(checkpoint_path=checkpoint, batch_size=config.generation_batch_size))
    kinds = {}
    for dialogue in dialogues:
        kinds[dialogue.instruction.kind] = kinds.get(dialogue.instruction.kind, 0) + 1
    data = {"project": config.project or "(all projects)", "dialogues": len(dialogues), "turns": config.turns,
            "examples": len(examples), "instruction_kinds": kinds, "parent": parent.name,
            "example_dialogue": {"instruction": dialogues[0].instruction.text, "users": dialogues[0].users,
                                 "answers": dialogues[0].answers}}
    metrics = {"loss/sft": result["loss"], "turns_kept_before": evaluation["before"],
               "turns_kept_after": evaluation["after"]}
    version = _version_store(job=job, name=config.name, kind=PolicyVersion.Kind.GATT, parent=parent,
                             checkpoint=checkpoint, config=config, data=data, metrics=metrics)
    on_progress(steps, steps, metrics={"turns_kept_before": evaluation["before"],
                                       "turns_kept_after": evaluation["after"]},
                log_line=f"turns kept: {evaluation['before']['gatt/turns_kept']} before, "
                         f"{evaluation['after']['gatt/turns_kept']} after")
    return {"policy_version_id": version.pk, "name": version.name,
            "turns_kept": [evaluation["before"]["gatt/turns_kept"], evaluation["after"]["gatt/turns_kept"]]}


# --- runs (claim the row, report progress, record the end) ----------------------------------------


def sft_run(*, job_id, console=None):
    return job_run(job_id=job_id, kind=Job.Kind.SFT, work=work_with_console(sft_work, console))


def dpo_run_job(*, job_id, console=None):
    return job_run(job_id=job_id, kind=Job.Kind.DPO, work=work_with_console(dpo_work, console))


def dpo_iterative_run(*, job_id, console=None):
    return job_run(job_id=job_id, kind=Job.Kind.DPO_ITERATIVE, work=work_with_console(dpo_iterative_work, console))


def gatt_run(*, job_id, console=None):
    return job_run(job_id=job_id, kind=Job.Kind.GATT, work=work_with_console(gatt_work, console))
