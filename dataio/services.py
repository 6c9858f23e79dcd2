"""Importing preference data: read and check every record first, then store them in short
transactions into a staging area that becomes visible at once at the end (dataio.staging).

All or nothing by default: one bad record and nothing is written (the report lists every bad
record with its line and field). With `skip_invalid` the good records are stored and the bad ones
reported. Re-importing adds nothing: dialogues carry the content hash of their context and
responses, and a rater's label is stored once per comparison.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

from django.conf import settings

from annotation.models import Batch, Comparison, Turn
from annotation.services import batch_current
from dataio.formats import PARSERS, ReadOptions
from dataio.reading import EmptyFile, TooLarge, raw_records
from dataio.records import MAX_NUMBER, Limits, RecordError, content_key, record_validate, records_merge
from dataio.staging import records_stage, staging_discard, staging_open, staging_publish

SHOWN_ERRORS = 50  # the report keeps this many error lines; the count is always exact


class ImportRejected(Exception):
    """The file (or part of it) is bad; `report` says where. Nothing was stored."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


@dataclass
class ImportReport:
    format: str = ""
    records: int = 0  # valid records read (before merging rows of the same pair)
    comparisons_added: int = 0
    prompts_added: int = 0
    judgments_added: int = 0
    already_present: int = 0  # records whose pair (and every label) was stored before
    merged_in_file: int = 0  # rows of a pair met earlier in the same file (their labels merged)
    blank: int = 0
    invalid: int = 0
    errors: list = field(default_factory=list)  # the first SHOWN_ERRORS, as text
    batch: int | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @property
    def added_anything(self) -> bool:
        return bool(self.comparisons_added or self.prompts_added or self.judgments_added)


def import_limits(max_file_bytes=None) -> Limits:
    """The configured limits; a web upload passes its own, smaller, limit on the file's content."""
    return Limits(
        max_text_chars=settings.MARGIN_MAX_TEXT_CHARS,
        max_line_bytes=settings.MARGIN_IMPORT_MAX_LINE_BYTES,
        max_records=settings.MARGIN_IMPORT_MAX_RECORDS,
        max_file_bytes=max_file_bytes or settings.MARGIN_IMPORT_MAX_BYTES,
        max_file_setting="MARGIN_UPLOAD_MAX_BYTES" if max_file_bytes else "MARGIN_IMPORT_MAX_BYTES",
    )


def records_read(*, stream, fmt, options: ReadOptions, limits: Limits, report: ImportReport):
    """Parse and check every record of `stream`; bad ones go to `report`. Returns the good ones."""
    if fmt not in PARSERS:
        raise ImportRejected(f"Unknown format {fmt!r}; use one of: {', '.join(PARSERS)}.")
    size = _stream_size(stream)
    if size is not None and size > limits.max_file_bytes:
        raise ImportRejected(
            f"The file is {size} bytes; the import limit is {limits.max_file_bytes} bytes "
            f"({limits.max_file_setting})."
        )
    parse, records = PARSERS[fmt], []
    try:
        for line, raw in raw_records(stream, limits):
            _record_read(parse, line, raw, options, limits, records, report)
    except (EmptyFile, TooLarge) as refused:
        raise ImportRejected(f"{options.source}: {refused}" if options.source else str(refused), report) from refused
    report.records = len(records)
    return records


def _record_read(parse, line, raw, options, limits, records, report):
    try:
        if isinstance(raw, RecordError):
            raise raw
        record = parse(raw, line, options)
        if record is None:
            report.blank += 1
            return
        records.append(record_validate(record, limits))
    except RecordError as bad:
        report.invalid += 1
        if len(report.errors) < SHOWN_ERRORS:
            # "harmless.jsonl, line 831, field “chosen”: ..." (the file, then where in it)
            report.errors.append(f"{options.source}, {bad}" if options.source else str(bad))
    if len(records) > limits.max_records:
        raise ImportRejected(
            f"More than {limits.max_records} records; split the file (MARGIN_IMPORT_MAX_RECORDS).",
            report,
        )


def _stream_size(stream):
    try:
        return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        if hasattr(stream, "getbuffer"):
            return stream.getbuffer().nbytes
        return None


def data_import(
    *,
    project,
    stream,
    fmt,
    batch_number=None,
    mapping=None,
    source_name="",
    skip_invalid=False,
    queue_judged=False,
    adversarial=False,
    dry_run=False,
    actor=None,
    on_progress=None,
    max_file_bytes=None,
    staging_key=None,
    first=None,
    keep_labels=True,
):
    """Import a preference-data file into `project`. Returns an ImportReport.

    `batch_number`: an existing batch (open or closed) of the project; default the open one.
    `queue_judged`: also serve already-judged imported pairs to our annotators (for overlap with
    the imported raters); by default a judged pair counts as complete.
    `dry_run`: do everything, report what would be added, and store nothing.
    `max_file_bytes`: the limit on the content, decompressed (default MARGIN_IMPORT_MAX_BYTES).
    `staging_key` names the staging area (dataio.staging); a job passes its own, so that a re-run
    replaces what a dead worker left.
    `first`: store only the first records (after rows of one pair are merged); `keep_labels=False`
    stores the pairs without the file's labels, for our annotators to judge (the demo does both).
    Rows are written in short transactions that annotators never wait long behind, and become
    visible together at the end; on any failure (or a cancel raised by `on_progress`) none do.
    """
    report = ImportReport(format=fmt)
    options = ReadOptions(objective=project.objective, mapping=mapping or {}, source=source_name)
    limits = import_limits(max_file_bytes)
    records = records_read(stream=stream, fmt=fmt, options=options, limits=limits, report=report)
    if report.invalid and not skip_invalid:
        raise ImportRejected(
            f"{report.invalid} invalid record(s); nothing was imported "
            "(fix them, or import the rest with --skip-invalid).", report,
        )
    if not records and not report.blank:
        raise ImportRejected("No valid records in the file; nothing was imported.", report)
    merged = records_merge(records)
    report.merged_in_file, records = len(records) - len(merged), merged
    records = records[:first] if first is not None else records
    if not keep_labels:
        for record in records:
            record.labels = []
    batch = _batch_for(project, batch_number)
    report.batch = batch.number
    staging_key = staging_key or uuid.uuid4().hex[:12]
    staging = staging_open(project=project, staging_key=staging_key)
    try:
        pending = records_stage(
            records=records, staging=staging, known=_known_keys(project), report=report,
            queue_judged=queue_judged, adversarial=adversarial, on_progress=on_progress,
        )
        staging_publish(staging=staging, project=project, batch=batch, pending=pending,
                        report=report, actor=actor, dry_run=dry_run)
    finally:
        staging_discard(staging_key=staging_key)  # nothing left once published; everything otherwise
    return report


def _batch_for(project, number):
    if number is None:
        return batch_current(project=project)
    batch = Batch.objects.filter(project=project, number=number).first() if number <= MAX_NUMBER else None
    if batch is None:
        raise ImportRejected(f"Project “{project}” has no batch {number}.")
    return batch


def _known_keys(project):
    """Content key -> comparison id (pairs) or None (prompts) of everything in the project,
    imported or written here, so an export of it imports back as nothing new."""
    # Two flat queries: a prefetch over thousands of dialogues overflows SQLite's expression depth.
    messages = {}
    turns = Turn.objects.filter(dialogue__project=project).order_by("dialogue_id", "index")
    for dialogue_id, role, content in turns.values_list("dialogue_id", "role", "content"):
        messages.setdefault(dialogue_id, []).append({"role": role, "content": content})
    known = {}
    comparisons = Comparison.objects.filter(dialogue__project=project).values_list(
        "pk", "dialogue_id", "context_length", "response_a__text", "response_b__text"
    )
    for pk, dialogue_id, context_length, text_a, text_b in comparisons:
        context = messages.get(dialogue_id, [])[:context_length]
        known.setdefault(content_key(context, [text_a, text_b]), pk)
    for context in messages.values():
        known.setdefault(content_key(context), None)
    return known
