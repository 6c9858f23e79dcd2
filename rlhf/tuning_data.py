"""What the fine-tuning jobs train on, read from the database and files: annotators'
demonstrations, imported SFT rows, rejection-sampling winners (SFT), and preference pairs from
judged comparisons (DPO), the latter through the reward models' own pair builder
(rewardmodel/data.py: aggregation, the safety rule, strengths and margins).

Every source keeps only the training side of core/heldout.py's split, so `evaluate_policy` and
the RM's evaluation never see a prompt the new version was fine-tuned on.
"""

from __future__ import annotations

from pathlib import Path

from annotation.models import Demonstration, Project
from core.heldout import prompt_is_heldout
from core.jsonio import RecordError, jsonl_rows
from core.vocabulary import ASSISTANT, ROLES

# --- SFT ---------------------------------------------------------------------------------------


def demonstration_pairs(*, project_name: str, heldout_fraction: float) -> list[tuple[list[dict], str]]:
    """(context, the annotator's answer) of each demonstration, training prompts only; annotators
    staff excluded from training are left out, as from the RM's pairs."""
    from rewardmodel.data import _excluded_annotator_ids  # the one list of excluded annotators

    demonstrations = (Demonstration.objects.exclude(annotator_id__in=_excluded_annotator_ids())
                      .prefetch_related("dialogue__turns").order_by("pk"))
    if project_name:
        demonstrations = demonstrations.filter(dialogue__project__name=project_name)
    pairs = []
    for demo in demonstrations:
        context = demo.dialogue.messages(upto=demo.context_length)
        if context and not prompt_is_heldout(context, fraction=heldout_fraction):
            pairs.append((context, demo.text))
    return pairs


def sft_file_pairs(path: Path | str, *, heldout_fraction: float) -> list[tuple[list[dict], str]]:
    """(context, answer) from a JSONL of {"messages": [..., {"role": "assistant", ...}]} rows (TRL's
    SFT format, what `export --kind sft` writes). RecordError names the bad line and field."""
    pairs = []
    for number, row in jsonl_rows(path):
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or len(messages) < 2:
            raise RecordError(number, "messages", "needs a list of at least a user and an assistant message")
        for index, message in enumerate(messages):
            if (not isinstance(message, dict) or not isinstance(message.get("content"), str)
                    or message.get("role") not in ROLES):
                raise RecordError(number, f"messages[{index}]",
                                  "needs a role (system, user or assistant) and a text content")
        if messages[-1]["role"] != ASSISTANT:
            raise RecordError(number, "messages", "the last message must be the assistant's answer")
        context = [{"role": m["role"], "content": m["content"]} for m in messages[:-1]]
        if not prompt_is_heldout(context, fraction=heldout_fraction):
            pairs.append((context, messages[-1]["content"]))
    return pairs


def winner_pairs(version, *, heldout_fraction: float) -> list[tuple[list[dict], str]]:
    """The rejection-sampling winners saved beside the versions of `version`'s lineage."""
    from rlhf.models import PolicyVersion
    from rlhf.rejection_sampling import SAMPLES_NAME, winners_load

    pairs = []
    for ancestor in version.lineage():
        samples = Path(ancestor.checkpoint_path) / SAMPLES_NAME
        if ancestor.kind == PolicyVersion.Kind.REJECTION_SAMPLING and samples.is_file():
            pairs += [(w.prompt, w.response) for w in winners_load(samples, ancestor.name)
                      if not prompt_is_heldout(w.prompt, fraction=heldout_fraction)]
    return pairs


# --- DPO ---------------------------------------------------------------------------------------


def preference_pairs(*, project_name: str, min_judgments: int, heldout_fraction: float):
    """(train, held-out) PreferencePairs of every judged comparison, built as the reward models
    build theirs: each project under its own objective's safety rule and margin scheme.
    Returns (train, heldout, report dict)."""
    from rewardmodel.data import pairs_for_projects, split
    from rlhf.dpo import PreferencePair

    projects = Project.objects.filter(name=project_name) if project_name else Project.objects.all()
    built, report = [], {"pairs": 0, "skipped": {}}
    for project in projects.order_by("pk"):
        pairs, build = pairs_for_projects([project], objective=project.objective, min_judgments=min_judgments)
        built += pairs
        report["pairs"] += build.pairs
        for why, count in build.skipped.items():
            report["skipped"][why] = report["skipped"].get(why, 0) + count
    train, heldout = split(built, heldout_fraction)

    def preference(pair):
        return PreferencePair(pair.context, pair.chosen, pair.rejected, pair.margin)

    return [preference(p) for p in train], [preference(p) for p in heldout], report
