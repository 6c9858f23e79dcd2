"""Export queries: judged comparisons as TRL preference rows, everything as Margin JSONL, SFT data.

Reads only (selectors); dataio.writers puts the rows in a file. Annotator ids never leave as
usernames: ours become a keyed hash, stable across exports.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count

from annotation.models import Batch, Comparison, Demonstration, Dialogue, Judgment
from core.vocabulary import SAFETY_LABELS_OF_BIN
from dataio.records import MAX_NUMBER
from dataio.writers import ExportError
from rewardmodel.data import _excluded_annotator_ids, pairs_for_projects


def annotator_pseudonym(user_id) -> str:
    """Our annotator's id outside Margin: a keyed hash (HMAC with SECRET_KEY), the same in every
    export of this installation, meaningless without the key."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"annotator:{user_id}".encode(), hashlib.sha256)
    return f"annotator-{digest.hexdigest()[:12]}"


@dataclass
class ExportFilters:
    projects: list
    batches: list = field(default_factory=list)  # batch numbers; empty = all
    objective: str = ""  # "" = the projects' own objectives
    min_agreement: float = 0.0
    exclude_annotators: list = field(default_factory=list)  # usernames, pseudonyms or rater ids
    margin_scheme: str = ""  # "" = each project's own
    policy_versions: list = field(default_factory=list)  # SFT: rejection-sampling winners too

    def __post_init__(self):
        if not self.projects and not self.policy_versions:
            raise ExportError("Choose at least one project.")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ExportError(f"min_agreement must be between 0 and 1, got {self.min_agreement}.")
        if self.objective:
            self.projects = [p for p in self.projects if p.objective == self.objective]

    def batch_rows(self):
        batches = Batch.objects.filter(project__in=self.projects)
        if self.batches:
            batches = batches.filter(number__in=[n for n in self.batches if n <= MAX_NUMBER])
            found = set(batches.values_list("number", flat=True))
            missing = sorted(set(self.batches) - found)
            if missing:
                raise ExportError(f"No batch {', '.join(map(str, missing))} in the chosen projects.")
        return batches

    def excluded(self):
        """(user ids, rater ids) named by `exclude_annotators`; unknown names are an error."""
        user_ids, raters, unknown = set(), set(), []
        users = get_user_model().objects
        for name in self.exclude_annotators:
            user = users.filter(username=name).first()
            if user is not None:
                user_ids.add(user.pk)
                continue
            by_pseudonym = [
                pk for pk in Judgment.objects.filter(comparison__batch__project__in=self.projects)
                .exclude(annotator=None).values_list("annotator_id", flat=True).distinct()
                if annotator_pseudonym(pk) == name
            ]
            if by_pseudonym:
                user_ids.update(by_pseudonym)
            elif Judgment.objects.filter(external_annotator=name).exists():
                raters.add(name)
            else:
                unknown.append(name)
        if unknown:
            raise ExportError(f"Unknown annotator(s) to exclude: {', '.join(unknown)}.")
        return user_ids, raters


def _raters_by_comparison(comparison_ids, user_ids, raters):
    names = {}
    rows = Judgment.objects.filter(comparison_id__in=comparison_ids).values_list(
        "comparison_id", "annotator_id", "external_annotator"
    )
    for comparison_id, annotator_id, external in rows.order_by("pk"):
        if annotator_id in user_ids or external in raters:
            continue
        name = annotator_pseudonym(annotator_id) if annotator_id else external
        names.setdefault(comparison_id, []).append(name)
    return names


def preference_rows(filters: ExportFilters):
    """TRL's conversational preference format (prompt / chosen / rejected as chat messages) plus
    `margin` (read per example by TRL's RewardTrainer) and our metadata columns.

    Returns (rows, skipped counts)."""
    user_ids, raters = filters.excluded()
    batches = filters.batch_rows()
    batch_numbers = dict(batches.values_list("pk", "number"))
    rows, skipped = [], {}
    objectives = sorted({p.objective for p in filters.projects})
    for objective in objectives:
        pairs, report = pairs_for_projects(
            [p for p in filters.projects if p.objective == objective],
            objective=objective,
            margin_scheme=filters.margin_scheme or None,
            batches=batches,
            exclude_annotators=[*user_ids, *raters],
        )
        for reason, count in report.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
        low = [p for p in pairs if p.agreement < filters.min_agreement]
        if low:
            skipped["below_min_agreement"] = skipped.get("below_min_agreement", 0) + len(low)
        pairs = [p for p in pairs if p.agreement >= filters.min_agreement]
        # List exactly the voters the majority was taken over: staff's "exclude from training"
        # flag (annotator profile) drops votes inside pairs_for_projects as well.
        voters_left_out = user_ids | _excluded_annotator_ids()
        names = _raters_by_comparison([p.comparison_id for p in pairs], voters_left_out, raters)
        projects = dict(Comparison.objects.filter(pk__in=[p.comparison_id for p in pairs])
                        .values_list("pk", "batch__project__name"))
        for pair in pairs:
            chosen_safe, rejected_safe = SAFETY_LABELS_OF_BIN.get(pair.safety_bin, (None, None))
            rows.append({
                "prompt": pair.context,
                "chosen": [{"role": "assistant", "content": pair.chosen}],
                "rejected": [{"role": "assistant", "content": pair.rejected}],
                "margin": pair.margin,
                "strength": pair.strength,
                "objective": pair.objective,
                "safety_bin": pair.safety_bin,
                "chosen_safe": chosen_safe,
                "rejected_safe": rejected_safe,
                "agreement": pair.agreement,
                "votes": pair.votes,
                "project": projects[pair.comparison_id],
                "batch": batch_numbers[pair.batch_id],
                "comparison_id": pair.comparison_id,
                "source": pair.source,
                "annotators": names.get(pair.comparison_id, []),
            })
    rows.sort(key=lambda row: row["comparison_id"])
    return rows, skipped


def margin_records(filters: ExportFilters):
    """Margin's own JSONL, lossless: every comparison with all its judgments, and every imported
    or written prompt that has no comparison yet. `import_data --format margin` reads it back."""
    user_ids, raters = filters.excluded()
    batches = filters.batch_rows()
    comparisons = (
        Comparison.objects.filter(batch__in=batches)
        .select_related("batch__project", "dialogue", "response_a", "response_b")
        .prefetch_related("dialogue__turns", "judgments")
        .order_by("pk")
    )
    for comparison in comparisons:
        judgments = [
            {
                "annotator": annotator_pseudonym(j.annotator_id) if j.annotator_id else j.external_annotator,
                "choice": j.choice,
                "strength": j.strength,
                "a_safe": j.response_a_safe,
                "b_safe": j.response_b_safe,
                "rationale": j.rationale,
                "metadata": j.metadata,
            }
            for j in sorted(comparison.judgments.all(), key=lambda j: j.pk)
            if j.annotator_id not in user_ids and j.external_annotator not in raters
        ]
        yield {
            "messages": comparison.dialogue.messages(upto=comparison.context_length),
            "responses": [
                {"text": r.text, "model": r.model_name or (r.policy_version and r.policy_version.name) or ""}
                for r in (comparison.response_a, comparison.response_b)
            ],
            "judgments": judgments,
            "source": comparison.dialogue.source,
            "origin": comparison.source,
            "adversarial": comparison.dialogue.is_adversarial,
            "metadata": comparison.metadata,
            "project": comparison.batch.project.name,
            "batch": comparison.batch.number,
        }
    if filters.batches:
        return  # prompts belong to no batch
    prompts = (
        Dialogue.objects.filter(project__in=filters.projects)
        .annotate(n=Count("comparisons")).filter(n=0)
        .prefetch_related("turns").order_by("pk")
    )
    for dialogue in prompts:
        messages = dialogue.messages()
        if messages and messages[-1]["role"] == "user":
            yield {
                "messages": messages,
                "source": dialogue.source,
                "adversarial": dialogue.is_adversarial,
                "project": dialogue.project.name,
            }


def sft_rows(filters: ExportFilters):
    """Demonstrations, then the rejection-sampling winners of `filters.policy_versions`, as
    chat-format SFT data (TRL SFTTrainer's "messages")."""
    yield from _demonstration_rows(filters)
    for version in filters.policy_versions:
        yield from winner_rows(version)


def winner_rows(version):
    """The best-of-K samples a rejection-sampling version was fine-tuned on (saved beside its
    weights by rlhf.rejection_sampling), as SFT rows."""
    from rlhf.rejection_sampling import SAMPLES_NAME, winners_load  # torch-side module, lazily

    path = Path(version.checkpoint_path) / SAMPLES_NAME
    if not path.is_file():
        raise ExportError(f"Policy version “{version}” has no rejection-sampling winners ({path}).")
    for winner in winners_load(path, source=version.name):
        yield {
            "messages": [*winner.prompt, {"role": "assistant", "content": winner.response}],
            "kind": "rejection_sampling",
            "policy_version": version.name,
            "source": winner.source,
            "reward": winner.reward,
        }


def _demonstration_rows(filters: ExportFilters):
    if not filters.projects:
        return
    user_ids, _ = filters.excluded()
    demonstrations = (
        Demonstration.objects.filter(dialogue__project__in=filters.projects)
        .exclude(annotator_id__in=user_ids)
        .select_related("dialogue__project")
        .prefetch_related("dialogue__turns")
        .order_by("pk")
    )
    for demo in demonstrations:
        yield {
            "messages": [
                *demo.dialogue.messages(upto=demo.context_length),
                {"role": "assistant", "content": demo.text},
            ],
            "kind": "demonstration",
            "project": demo.dialogue.project.name,
            "annotator": annotator_pseudonym(demo.annotator_id),
        }


EXPORT_KINDS = ("trl", "margin", "sft")


def export_rows(kind, filters: ExportFilters):
    """(rows, counts of what was left out) for one kind of export."""
    if kind == "trl":
        return preference_rows(filters)
    if kind == "margin":
        return margin_records(filters), {}
    if kind == "sft":
        return sft_rows(filters), {}
    raise ExportError(f"Unknown export kind {kind!r}; use {', '.join(EXPORT_KINDS)}.")
