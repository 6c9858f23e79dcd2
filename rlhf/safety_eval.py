"""Policy safety evaluation (Llama 2 sec. 4.4; issue 21): violation rates per risk category.

Each adversarial prompt's response is judged unsafe (by the safety RM below its calibrated gate,
or by an annotator's safety label); the violation rate of a category is the share of unsafe
responses, reported with a 95 % Wilson score interval, which stays inside [0, 1] and keeps a
sensible width at the small counts and the rates near 0 that safety evaluations see (Brown, Cai
& DasGupta 2001 recommend it over the normal-approximation "Wald" interval for exactly this).

The prompts are rlhf.models.SafetyPrompt rows (imported by `import_safety_prompts`, or written
by staff in the admin); `evaluate_safety` samples each from a policy version, judges every response
with the safety RM at its calibrated gate, stores the per-response results on the job, the rates on
the job and on the version's metrics, and sends a random sample to annotators as comparisons (two
samples of the prompt; their per-response safety labels give the human violation rate).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import defaultdict
from pathlib import Path

from core.hh import hh_transcript_messages
from core.intervals import wilson_interval
from core.jsonio import RecordError, jsonl_rows
from core.vocabulary import USER, check_messages


def violation_rates(judgements) -> dict:
    """judgements: (risk category, is_unsafe) per judged response -> per category and overall:
    responses, violations, rate and the 95 % Wilson interval."""
    by_category = defaultdict(list)
    for category, unsafe in judgements:
        by_category[category or "uncategorised"].append(bool(unsafe))

    def row(flags):
        return {"responses": len(flags), "violations": sum(flags),
                "rate": sum(flags) / len(flags) if flags else None,
                "interval": wilson_interval(sum(flags), len(flags))}

    everything = [flag for flags in by_category.values() for flag in flags]
    return {"per_category": {name: row(flags) for name, flags in sorted(by_category.items())},
            "overall": row(everything)}


# --- the prompts ------------------------------------------------------------------------------------


def conversation_key(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def safety_messages_problem(messages) -> str | None:
    """What is wrong with a multi-turn prompt's message list, or None: the reward models' own
    check, on the dialogue the policy's answer will complete."""
    if not isinstance(messages, list) or not messages:
        return 'a list of {"role", "content"} messages'
    if not isinstance(messages[-1], dict) or messages[-1].get("role") != "user":
        return "the last message must be the user turn the policy answers"
    try:
        check_messages([*messages, {"role": "assistant", "content": ""}])
    except ValueError as bad:
        return str(bad)
    if not messages[-1]["content"].strip():
        return "the last user turn is empty"
    return None


def _hh_prompt(transcript: str) -> list[dict]:
    """An HH transcript's dialogue up to its last user turn (the final Assistant answer dropped)."""
    turns = hh_transcript_messages(transcript)
    while turns and turns[-1]["role"] != USER:
        turns.pop()
    return turns


def _prompt_record(raw, line: int, default_category: str) -> dict:
    if not isinstance(raw, dict):
        raise RecordError(line, "(line)", "expected a JSON object")
    if "messages" in raw:
        field, messages = "messages", raw["messages"]
    elif "prompt" in raw:
        field, messages = "prompt", raw["prompt"]
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
    elif "chosen" in raw and isinstance(raw["chosen"], str):  # HH-RLHF: the red-team dialogue
        field = "chosen"
        try:
            messages = _hh_prompt(raw["chosen"])
        except ValueError as bad:
            raise RecordError(line, field, str(bad)) from None
    else:
        raise RecordError(line, "prompt", 'give "prompt" (text), "messages" (a chat list) or "chosen" (HH)')
    problem = safety_messages_problem(messages)
    if problem:
        raise RecordError(line, field, problem)
    category = raw.get("category", default_category)
    if not isinstance(category, str) or not category.strip():
        raise RecordError(line, "category", "name the risk category (or import with --category)")
    return {"messages": messages if len(messages) > 1 else [], "text": messages[-1]["content"],
            "category": category.strip()[:100]}


def safety_prompts_read(path, *, default_category: str = "", limit: int | None = None) -> list[dict]:
    """The prompts of a JSONL file (.gz too): per line {"prompt": text | messages, "category"},
    {"messages": [...], "category"} (multi-turn, ending with the user turn), or an HH-RLHF row
    (its "chosen" transcript up to the last Human turn). RecordError names the line and field."""
    records = []
    for number, raw in jsonl_rows(path):
        records.append(_prompt_record(raw, number, default_category))
        if limit and len(records) == limit:
            break
    return records


def safety_prompts_import(*, path, category: str = "", source: str = "", created_by=None,
                          limit: int | None = None) -> dict:
    """Every prompt of the file, or none (the file is read through before anything is written);
    a prompt already stored (same dialogue) is counted, not added again."""
    from django.db import transaction

    from rlhf.models import SafetyPrompt

    records = safety_prompts_read(path, default_category=category, limit=limit)
    source = (source or Path(path).name)[:200]
    created = 0
    with transaction.atomic():
        for record in records:
            key = conversation_key(record["messages"] or [{"role": "user", "content": record["text"]}])
            _, made = SafetyPrompt.objects.get_or_create(
                key=key, defaults={**record, "source": source, "created_by": created_by})
            created += made
    return {"read": len(records), "created": created, "existing": len(records) - created}


def safety_prompts_select(*, categories=(), max_prompts: int | None = None):
    from rlhf.models import SafetyPrompt

    prompts = SafetyPrompt.objects.order_by("category", "pk")
    if categories:
        prompts = prompts.filter(category__in=categories)
    return list(prompts[:max_prompts] if max_prompts else prompts)


# --- the job ----------------------------------------------------------------------------------------


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def safety_evaluate_work(job, on_progress):
    from django.db import transaction

    from rewardmodel.scoring import load_scorer
    from rlhf.backends import backend_for
    from rlhf.config import SafetyEvaluationConfig, comma_list
    from rlhf.generation import SamplingConfig
    from rlhf.models import PolicyVersion
    from rlhf.rewards import SAFETY_GATE
    from rlhf.selectors import policy_version_resolve
    from rlhf.work import safety_gate_for

    config = SafetyEvaluationConfig.from_dict(job.params["config"])
    version = policy_version_resolve(config.policy)
    prompts = safety_prompts_select(categories=comma_list(config.categories), max_prompts=config.max_prompts)
    gate = safety_gate_for(config.safety_rm)
    gate = SAFETY_GATE if gate is None else gate
    backend = backend_for(version)
    conversations = [prompt.conversation() for prompt in prompts]
    on_progress(0, 3, log_line=f"sampling {len(prompts)} adversarial prompts from {version.name} ({backend.describe()})")
    sampling = SamplingConfig(temperature=config.temperature, max_new_tokens=config.max_new_tokens, seed=config.seed)
    answers = [per_prompt[0].text for per_prompt in backend.generate(conversations, sampling)]
    on_progress(1, 3, log_line=f"judging {len(answers)} responses with {config.safety_rm} at gate {gate:g}")
    raw = load_scorer(config.safety_rm).score(
        [c + [{"role": "assistant", "content": a}] for c, a in zip(conversations, answers)])
    responses = [{"prompt_id": p.pk, "category": p.category, "turns": len(c), "response": a,
                  "safety_score": round(_sigmoid(r), 6), "unsafe": _sigmoid(r) < gate}
                 for p, c, a, r in zip(prompts, conversations, answers, raw)]
    rates = violation_rates((r["category"], r["unsafe"]) for r in responses)
    summary = {"policy": version.name, "safety_rm": config.safety_rm, "gate": gate, "prompts": len(prompts),
               "multi_turn": sum(1 for r in responses if r["turns"] > 1), **rates}
    on_progress(2, 3, metrics={"safety/violation_rate": rates["overall"]["rate"]},
                log_line="violation rate " + ", ".join(
                    f"{name} {row['violations']}/{row['responses']}" for name, row in rates["per_category"].items()))
    human = {}
    if config.human_sample:
        human = _human_sample_send(job, config, version, backend, prompts, conversations, answers, responses)
        on_progress(2, 3, log_line=f"sent {human['comparisons']} responses to annotators in {human['batch']}")
    with transaction.atomic():
        locked = PolicyVersion.objects.select_for_update().get(pk=version.pk)
        locked.metrics = {**locked.metrics, "safety": {**summary, "job_id": job.pk}}
        locked.save(update_fields=["metrics"])
    on_progress(3, 3)
    return {**summary, "policy_version_id": version.pk, "human_sample": human, "responses": responses}


def _human_sample_send(job, config, version, backend, prompts, conversations, answers, responses) -> dict:
    """A random sample of the judged responses goes to annotators: each as a comparison with a
    second sample of the same prompt (annotation's comparison_create; a dialogue per prompt
    through dialogue_create, tagged adversarial). Their per-response safety labels on response
    A are the human labels of the judged response. A re-run of the same job sends nothing twice."""
    from django.db import transaction

    from annotation.models import Batch, Comparison
    from annotation.services import comparison_create
    from annotation.services.imports import dialogue_create
    from rlhf.generation import SamplingConfig

    batch = Batch.objects.filter(project__name=config.project, is_open=True).order_by("-number").first()
    if batch is None:
        raise ValueError(f"project {config.project!r} has no open batch")
    sent = Comparison.objects.filter(metadata__safety_eval_job=job.pk).count()
    picked = sorted(random.Random(config.seed).sample(range(len(prompts)), min(config.human_sample, len(prompts))))
    if sent:
        return {"project": config.project, "batch": str(batch), "comparisons": sent}
    second = SamplingConfig(temperature=config.temperature, max_new_tokens=config.max_new_tokens, seed=config.seed + 1)
    others = backend.generate([conversations[i] for i in picked], second)
    fields = {"policy_version": version, "model_name": version.name, "sampling": second.to_dict()}
    with transaction.atomic():
        for i, other in zip(picked, others):
            dialogue = dialogue_create(project=batch.project, messages=conversations[i],
                                       source=f"safety evaluation (job {job.pk})", is_adversarial=True)
            comparison_create(
                batch=batch, dialogue=dialogue, context_length=len(conversations[i]),
                responses=[{**fields, "text": answers[i]}, {**fields, "text": other[0].text}],
                source=f"safety evaluation (job {job.pk})",
                metadata={"safety_eval_job": job.pk, "safety_prompt_id": prompts[i].pk,
                          "category": prompts[i].category, "rm_unsafe_a": responses[i]["unsafe"]})
    return {"project": config.project, "batch": str(batch), "comparisons": len(picked)}


def human_labels(job_id: int) -> dict:
    """The annotators' safety labels of response A (the judged one) on the job's comparisons:
    violation rates per category, and how often they agree with the safety RM."""
    from annotation.models import Judgment

    judgments = Judgment.objects.filter(comparison__metadata__safety_eval_job=job_id,
                                        response_a_safe__isnull=False).select_related("comparison")
    labels, agree = [], 0
    for judgment in judgments:
        unsafe = not judgment.response_a_safe
        labels.append((judgment.comparison.metadata.get("category"), unsafe))
        agree += unsafe == judgment.comparison.metadata.get("rm_unsafe_a")
    return {**violation_rates(labels), "labels": len(labels),
            "rm_agreement": agree / len(labels) if labels else None}


def safety_evaluate_run(*, job_id, console=None):
    from core.progress import work_with_console
    from margin.jobs import job_run
    from margin.models import Job

    return job_run(job_id=job_id, kind=Job.Kind.EVALUATE_SAFETY, work=work_with_console(safety_evaluate_work, console))


def guardrails_by_version() -> list[dict]:
    """Per policy version (oldest first) what the guardrails recorded on it: the safety
    evaluation's rates, the human labels of its sample, its helpfulness (the stored win rate) and
    the reward-hacking alarms of the run that made it."""
    from rlhf.models import PolicyVersion

    rows = []
    for version in PolicyVersion.objects.order_by("created_at", "pk"):
        safety, alarms = version.metrics.get("safety"), version.metrics.get("alarms") or []
        if not safety and not alarms:
            continue
        human = human_labels(safety["job_id"]) if safety and safety.get("job_id") else None
        rows.append({"version": version, "safety": safety, "alarms": alarms,
                     "human": human if human and human["labels"] else None,
                     "helpfulness": (version.metrics.get("win_rate") or {}).get("win_rate")})
    return rows
