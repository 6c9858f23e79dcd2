"""Imported data: dialogues and raters' labels from a file, and the staging area an import is
written into before it becomes visible (dataio reads the file, chunks the work and stores the
pairs with comparison_create; the rows themselves are written only here)."""

from annotation.models import Batch, Comparison, Dialogue, Judgment, Project, Turn


def staging_area_create(*, project, name):
    """A hidden project (`is_staging`: Project.objects never returns it) with one closed batch,
    where an import into `project` is written chunk by chunk before it is published."""
    staging = Project.with_staging.create(
        name=name[:200], objective=project.objective, is_active=False, is_staging=True,
        guidelines=f"Rows of an import into “{project}”, shown there once the import has finished.",
    )
    Batch.objects.create(project=staging, number=1, is_open=False)
    return staging


def staging_area_get(*, name):
    return Project.with_staging.filter(name=name[:200], is_staging=True).first()


def staging_area_dialogue_ids(*, staging):
    return list(Dialogue.objects.filter(project=staging).values_list("pk", flat=True))


def staging_area_dialogues_delete(*, dialogue_ids):
    """Delete staged dialogues and their comparisons (call inside the caller's transaction)."""
    # Comparisons first: they protect their batch and their responses from deletion.
    Comparison.objects.filter(dialogue_id__in=dialogue_ids).delete()
    Dialogue.objects.filter(pk__in=dialogue_ids).delete()


def staging_area_publish(*, staging, project, batch):
    """Move every staged dialogue into `project` and comparison into `batch`, then drop the
    staging area (call inside the caller's transaction: all of it becomes visible at once)."""
    Dialogue.objects.filter(project=staging).update(project=project)
    Comparison.objects.filter(batch__project=staging).update(batch=batch)
    staging.delete()


def dialogue_create(*, project, messages, source="", source_key="", is_adversarial=False):
    """A dialogue with its turns as given (imports, the demo). `source_key` is only ever the
    content hash of an imported record (dataio.records), which finds it again when the same file
    is imported twice; empty for anything else."""
    dialogue = Dialogue.objects.create(
        project=project, source=source[:200], source_key=source_key, is_adversarial=is_adversarial,
    )
    Turn.objects.bulk_create(
        Turn(dialogue=dialogue, index=i, role=m["role"], content=m["content"]) for i, m in enumerate(messages)
    )
    return dialogue


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
