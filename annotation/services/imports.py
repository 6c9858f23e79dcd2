"""Imported data: pairs from a file as unjudged comparisons, and raters' labels as judgments."""

from django.db import transaction

from annotation.models import Dialogue, Judgment, Turn
from annotation.services.comparisons import comparison_create


def pairs_import(*, project, batch, records, is_adversarial=False):
    """Store read PairRecords as unjudged comparisons; records already imported are skipped.

    All or nothing: one transaction for the whole file. Returns how many were added.
    """
    added = 0
    with transaction.atomic():
        known = set(
            Dialogue.objects.filter(project=project).exclude(source_key="")
            .values_list("source_key", flat=True)
        )
        for record in records:
            if record.source_key in known:
                continue
            known.add(record.source_key)
            dialogue = Dialogue.objects.create(
                project=project,
                source=record.source,
                source_key=record.source_key,
                is_adversarial=is_adversarial,
            )
            Turn.objects.bulk_create(
                Turn(dialogue=dialogue, index=i, role=m["role"], content=m["content"])
                for i, m in enumerate(record.context)
            )
            comparison_create(
                batch=batch,
                dialogue=dialogue,
                context_length=len(record.context),
                responses=[
                    {"text": record.response_a, "model_name": record.model_a or record.source},
                    {"text": record.response_b, "model_name": record.model_b or record.source},
                ],
            )
            added += 1
    return added


def judgments_import(*, comparison, labels, pseudonym_of=None, aggregates=True):
    """Store raters' labels from a file as judgments on `comparison`; returns how many were added.

    Each label has choice ("a", "b" or "tie"), strength ("" when the source has none), a_safe,
    b_safe, rater (the source's rater id, "" for an anonymous one), rationale, metadata and
    aggregate (a majority label summarising other raters). A comparison holds one label per rater,
    so a label whose rater already judged it is skipped and re-importing adds nothing; with
    `pseudonym_of` (user id -> the id our annotators carry in exports) an exported judgment of
    ours counts as present too. `aggregates=False` drops aggregate labels: they go with a new
    comparison only, never on top of the judgments they summarise.
    """
    present = {
        pseudonym_of(user_id) if user_id and pseudonym_of else external
        for user_id, external in comparison.judgments.values_list("annotator_id", "external_annotator")
    }
    fresh = [
        label for label in labels
        if label.rater not in present and (aggregates or not label.aggregate)
    ]
    Judgment.objects.bulk_create(
        Judgment(
            comparison=comparison,
            external_annotator=label.rater,
            choice=label.choice,
            strength=label.strength,
            response_a_safe=label.a_safe,
            response_b_safe=label.b_safe,
            rationale=label.rationale.strip(),
            metadata=label.metadata,
        )
        for label in fresh
    )
    return len(fresh)
