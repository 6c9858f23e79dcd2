"""What every importer produces, and the checks every record passes before anything is stored.

Pure Python (no Django): a reader turns one raw record of some format into an `ImportRecord`,
`record_validate` checks it, and the service stores it. Errors carry the line and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

from core.jsonio import RecordError  # noqa: F401  (re-exported: the readers raise it)
from core.vocabulary import CHOICE_A, CHOICE_B, CHOICE_TIE, ROLES, STRENGTHS  # noqa: F401

CHOICES = (CHOICE_A, CHOICE_B, CHOICE_TIE)
# Ids and batch numbers past this name no row; SQLite cannot even compare them (OverflowError).
MAX_NUMBER = 2**31 - 1


@dataclass
class Label:
    """One rater's judgment of response A against response B."""

    choice: str  # "a", "b" or "tie"
    strength: str = ""  # one of STRENGTHS, or "" when the source has no graded strength
    a_safe: bool | None = None
    b_safe: bool | None = None
    # The source's rater id ("" for an anonymous one, as in HH): a comparison holds one label
    # per rater, so re-importing adds nothing.
    rater: str = ""
    rationale: str = ""
    metadata: dict = field(default_factory=dict)
    # A majority label summarising other raters (TRL rows): stored with a new comparison only,
    # never on top of the judgments it summarises.
    aggregate: bool = False

    def swapped(self) -> Label:
        """The same label seen with A and B exchanged."""
        return Label(
            choice={"a": "b", "b": "a"}.get(self.choice, self.choice),
            strength=self.strength,
            a_safe=self.b_safe,
            b_safe=self.a_safe,
            rater=self.rater,
            rationale=self.rationale,
            metadata=self.metadata,
            aggregate=self.aggregate,
        )


@dataclass
class ImportRecord:
    """A prompt (no responses) or a comparison (two responses, zero or more labels)."""

    line: int
    context: list  # chat messages; the last one is the user turn the responses answer
    responses: list = field(default_factory=list)  # [] or two {"text": ..., "model_name": ...}
    labels: list = field(default_factory=list)
    source: str = ""  # format and file, e.g. "hh-rlhf:harmless-base.dev.jsonl.gz"
    origin: str | None = None  # where the pair came from, kept on the comparison; default source:line
    adversarial: bool = False
    metadata: dict = field(default_factory=dict)

    @property
    def is_prompt(self) -> bool:
        return not self.responses

    def key(self, swapped=False) -> str:
        texts = [r["text"] for r in self.responses]
        return content_key(self.context, texts[::-1] if swapped else texts)


def content_key(context, texts=()) -> str:
    """Content hash of a prompt or a pair: the same context and responses give the same key,
    whether they come from a file or from the database (whitespace around texts ignored)."""
    messages = [[m["role"], m["content"].strip()] for m in context]
    payload = [messages, *(text.strip() for text in texts)]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


@dataclass
class Limits:
    """Defaults of the MARGIN_IMPORT_* settings; the service passes the configured ones."""

    max_text_chars: int = 20_000
    max_line_bytes: int = 2**20
    max_records: int = 200_000
    max_file_bytes: int = 500 * 2**20
    max_file_setting: str = "MARGIN_IMPORT_MAX_BYTES"  # named when the limit is hit


def _text(value, line, name, limits, allow_empty=False):
    if not isinstance(value, str):
        raise RecordError(line, name, f"expected text, got {type(value).__name__}")
    text = value.strip()
    if not text and not allow_empty:
        raise RecordError(line, name, "is empty")
    if "\x00" in text:
        raise RecordError(line, name, "contains a NUL character")
    if len(text) > limits.max_text_chars:
        raise RecordError(
            line, name, f"is {len(text)} characters long; the limit is {limits.max_text_chars}"
        )
    return text


def _stored_text(value, line, name, limits=None):
    """A short string stored as it is (a model name, a rater id, a source): PostgreSQL refuses a
    NUL character in any text column, so it is an error here rather than a crash later."""
    if isinstance(value, str) and "\x00" in value:
        raise RecordError(line, name, "contains a NUL character")
    if limits and isinstance(value, str) and len(value) > limits.max_text_chars:
        raise RecordError(line, name, f"is {len(value)} characters long; the limit is {limits.max_text_chars}")


MAX_JSON_DEPTH = 50


def _json_value(value, line, name, depth=0):
    """Metadata goes to a JSON column: no NUL characters (PostgreSQL's jsonb refuses them) and no
    NaN or infinity (Python's json reads them; JSON itself, and so the database, does not)."""
    if depth > MAX_JSON_DEPTH:
        raise RecordError(line, name, f"nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, str):
        _stored_text(value, line, name)
    elif isinstance(value, float) and not math.isfinite(value):
        shown = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
        raise RecordError(line, name, f"{shown} is not a number JSON can hold")
    elif isinstance(value, dict):
        for key, item in value.items():
            _stored_text(key, line, name)
            _json_value(item, line, f"{name}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _json_value(item, line, f"{name}[{i}]", depth + 1)


def record_validate(record: ImportRecord, limits: Limits) -> ImportRecord:
    """Check and normalise (strip) a record in place; raise RecordError on the first problem."""
    line = record.line
    if not isinstance(record.context, list) or not record.context:
        raise RecordError(line, "messages", "needs at least one message")
    for i, message in enumerate(record.context):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RecordError(line, where, "expected an object with “role” and “content”")
        if message.get("role") not in ROLES:
            raise RecordError(
                line, f"{where}.role", f"unknown role {message.get('role')!r}; use {', '.join(ROLES)}"
            )
        message["content"] = _text(message.get("content"), line, f"{where}.content", limits)
    if record.context[-1]["role"] != "user":
        raise RecordError(line, "messages", "the last message must be the user's (what is answered)")
    _stored_text(record.source, line, "source")
    _stored_text(record.origin, line, "origin")
    _json_value(record.metadata, line, "metadata")
    if record.is_prompt:
        if record.labels:
            raise RecordError(line, "judgments", "a prompt without responses cannot be judged")
        return record
    if len(record.responses) != 2:
        raise RecordError(line, "responses", f"needs exactly two responses, got {len(record.responses)}")
    for i, response in enumerate(record.responses):
        # A model can answer with nothing (PandaLM, Tulu and Auto-J hold such pairs): kept, and
        # kept verbatim (leading spaces are part of what the model generated).
        _text(response.get("text"), line, f"responses[{i}].text", limits, allow_empty=True)
        response["model_name"] = str(response.get("model_name") or "")[:200]
        _stored_text(response["model_name"], line, f"responses[{i}].model")
    raters = set()
    for i, label in enumerate(record.labels):
        where = f"judgments[{i}]"
        if label.choice not in CHOICES:
            raise RecordError(line, f"{where}.choice", f"unknown choice {label.choice!r}; use a, b or tie")
        if label.strength not in ("", *STRENGTHS):
            raise RecordError(
                line, f"{where}.strength",
                f"unknown strength {label.strength!r}; use {', '.join(STRENGTHS)} or leave it empty",
            )
        for name in ("a_safe", "b_safe"):
            value = getattr(label, name)
            if value is not None and not isinstance(value, bool):  # 1 / 0 are not labels
                raise RecordError(line, f"{where}.{name}", "expected true, false or null")
        label.rater = str(label.rater or "")[:200]
        _stored_text(label.rater, line, f"{where}.annotator")
        _stored_text(label.rationale, line, f"{where}.rationale", limits)
        _json_value(label.metadata, line, f"{where}.metadata")
        if label.rater in raters:
            who = repr(label.rater) if label.rater else "an anonymous rater"
            raise RecordError(line, f"{where}.annotator", f"{who} judges this pair twice")
        raters.add(label.rater)
    return record


def records_merge(records):
    """Records of the same pair (Tulu: one row per evaluator) become one record with all labels.

    A later row of the same rater on the same pair replaces the earlier one (a corrected label).
    """
    merged = {}
    for record in records:
        key = record.key()
        if key not in merged:
            swapped = record.key(swapped=True)
            if not record.is_prompt and swapped in merged:
                key, record = swapped, _swap(record)
        kept = merged.setdefault(key, record)
        if kept is record:
            continue
        position = {label.rater: i for i, label in enumerate(kept.labels)}
        for label in record.labels:
            if label.rater in position:
                kept.labels[position[label.rater]] = label
            else:
                position[label.rater] = len(kept.labels)
                kept.labels.append(label)
    return list(merged.values())


def _swap(record):
    record.responses = list(reversed(record.responses))
    record.labels = [label.swapped() for label in record.labels]
    return record
