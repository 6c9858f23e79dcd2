"""Storing an import without holding the database: rows are written in short chunks into a staging
area that annotators and every query of the project cannot see, then one short transaction makes
them visible (issue 15 item 5: one 27 s transaction locked annotators out of SQLite).

The staging area is a project marked `is_staging` (inactive, with a closed batch), which
`Project.objects` never returns: no queue, page, export, dashboard or training-data query sees it.
Publishing moves the staged dialogues and comparisons into the target project and batch (two
UPDATEs) and stores the new labels of pairs it already had; a failure, a cancel or a dry run
deletes the staging area instead, in chunks too.
"""

from __future__ import annotations

import time

from django.db import connection, transaction

from annotation.models import Comparison, Judgment
from annotation.services import (
    audit_record,
    comparison_create,
    dialogue_create,
    judgments_import,
    staging_area_create,
    staging_area_dialogue_ids,
    staging_area_dialogues_delete,
    staging_area_get,
    staging_area_publish,
)
from dataio.exports import annotator_pseudonym

# Records written per transaction: 0.2-0.4 s of write lock each on SQLite on two busy cores
# (bench/dataio.py), the longest an annotator waits behind an import.
CHUNK_RECORDS = 50
# SQLite queues no one: a writer waiting for the lock retries every 100 ms at most, so an import
# that began its next chunk at once could keep an annotator waiting chunk after chunk. It pauses
# longer than that between chunks (PostgreSQL locks rows, not the database: no pause there).
SQLITE_PAUSE_SECONDS = 0.12
STAGING_PREFIX = "Import in progress · "


def staging_open(*, project, staging_key):
    """A fresh staging area named `staging_key` (a leftover of the same name is removed first: a
    job re-run after its worker died starts again from the file)."""
    staging_discard(staging_key=staging_key)
    return staging_area_create(project=project, name=f"{STAGING_PREFIX}{staging_key}")


def staging_discard(*, staging_key):
    """Delete the staging area of `staging_key` and everything in it, a chunk per transaction."""
    staging = staging_area_get(name=f"{STAGING_PREFIX}{staging_key}")
    if staging is None:
        return
    ids = staging_area_dialogue_ids(staging=staging)
    for start in range(0, len(ids), CHUNK_RECORDS):
        with transaction.atomic():
            staging_area_dialogues_delete(dialogue_ids=ids[start:start + CHUNK_RECORDS])
    staging.delete()


def records_stage(*, records, staging, known, report, queue_judged, adversarial, on_progress=None):
    """Write the new prompts and pairs of `records` into `staging`, CHUNK_RECORDS per transaction.

    Labels for pairs the project already holds cannot be staged (they go on visible rows): they
    come back as [(comparison id, labels)] for `staging_publish`.
    """
    batch = staging.batches.get()
    pending = []
    for start in range(0, len(records), CHUNK_RECORDS):
        with transaction.atomic():
            for record in records[start:start + CHUNK_RECORDS]:
                _record_stage(record, staging=staging, batch=batch, known=known, report=report,
                              pending=pending, queue_judged=queue_judged, adversarial=adversarial)
        if on_progress:  # between transactions: a cancel raised here leaves no transaction open
            on_progress(min(start + CHUNK_RECORDS, len(records)), len(records))
        if connection.vendor == "sqlite":
            time.sleep(SQLITE_PAUSE_SECONDS)
    return pending


def _record_stage(record, *, staging, batch, known, report, pending, queue_judged, adversarial):
    key, swapped = record.key(), record.key(swapped=True)
    labels = record.labels
    if key not in known and swapped in known and not record.is_prompt:
        key, labels = swapped, [label.swapped() for label in record.labels]
    if key in known:
        if record.is_prompt or not labels:
            report.already_present += 1
        else:
            pending.append((known[key], labels))
        return
    dialogue = dialogue_create(project=staging, messages=record.context, source=record.source, source_key=key,
                               is_adversarial=adversarial or record.adversarial)
    if record.is_prompt:
        known[key] = None
        report.prompts_added += 1
        return
    fallback_model = record.source.partition(":")[0]
    comparison = comparison_create(
        batch=batch,
        dialogue=dialogue,
        context_length=len(record.context),
        responses=[
            {"text": r["text"], "model_name": r["model_name"] or fallback_model}
            for r in record.responses
        ],
        judgments_wanted=len(labels) if labels and not queue_judged else None,
        source=record.origin if record.origin is not None else f"{record.source}:{record.line}",
        metadata=record.metadata,
    )
    known[key] = comparison.pk
    report.comparisons_added += 1
    report.judgments_added += judgments_import(comparison=comparison, labels=labels)


def staging_publish(*, staging, project, batch, pending, report, actor=None, dry_run=False):
    """One short transaction: the staged rows join `project` and `batch`, the pending labels are
    stored on the pairs they belong to, and the audit row is written. A dry run counts and rolls
    all of that back (the caller then discards the staging area)."""
    pending = _labels_not_present(pending)
    report.already_present += sum(not labels for _, labels in pending)
    pending = [(pk, labels) for pk, labels in pending if labels]
    with transaction.atomic():
        comparisons = Comparison.objects.in_bulk([pk for pk, _ in pending])
        for pk, labels in pending:
            added = judgments_import(comparison=comparisons[pk], labels=labels,
                                     pseudonym_of=annotator_pseudonym, aggregates=False)
            report.judgments_added += added
            report.already_present += not added
        audit_record(actor=actor, verb="data_import", obj=project,
                     **{k: v for k, v in report.to_dict().items() if k != "errors"})
        if dry_run:
            transaction.set_rollback(True)
        else:
            staging_area_publish(staging=staging, project=project, batch=batch)


def _labels_not_present(pending):
    """The pending labels whose rater has not judged that pair yet, found before the final
    transaction: importing the same file again would otherwise look up every pair inside it
    (1.2 s of lock per 2,000 pairs). judgments_import checks again under the lock."""
    present = {}
    for start in range(0, len(pending), 500):  # SQLite caps the parameters of one query
        ids = [pk for pk, _ in pending[start:start + 500]]
        rows = Judgment.objects.filter(comparison_id__in=ids).values_list(
            "comparison_id", "annotator_id", "external_annotator")
        for pk, user_id, external in rows:
            present.setdefault(pk, set()).add(annotator_pseudonym(user_id) if user_id else external)
    return [
        (pk, [label for label in labels if not label.aggregate and label.rater not in present.get(pk, ())])
        for pk, labels in pending
    ]
