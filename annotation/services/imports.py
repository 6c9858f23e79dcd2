"""Imported data: raters' labels from a file as judgments (dataio reads the file and stores the
pairs with comparison_create)."""

from annotation.models import Judgment


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
