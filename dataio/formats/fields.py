"""What every format's parser shares: its options, and picking typed fields out of a raw object
with errors that name the line and the field."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.jsonio import RecordError
from dataio.records import ImportRecord


@dataclass
class ReadOptions:
    objective: str = "helpfulness"  # PKU-SafeRLHF: which of its two labels to import
    mapping: dict = field(default_factory=dict)  # generic / Label Studio / Argilla field names
    source: str = ""  # file name, recorded on every comparison


def as_object(raw, line):
    if not isinstance(raw, dict):
        raise RecordError(line, "(record)", f"expected a JSON object, got {type(raw).__name__}")
    return raw


def field_get(raw, line, name, kinds=str):
    if name not in raw or raw[name] is None:
        raise RecordError(line, name, "is missing")
    value = raw[name]
    if not isinstance(value, kinds) or isinstance(value, bool) and kinds is not bool:
        wanted = kinds.__name__ if isinstance(kinds, type) else " or ".join(k.__name__ for k in kinds)
        raise RecordError(line, name, f"expected {wanted}, got {type(value).__name__}")
    return value


def label_pick(raw, line, name, table):
    value = raw.get(name)
    key = value.strip().lower() if isinstance(value, str) else value
    if key not in table:
        allowed = ", ".join(repr(k) for k in table)
        raise RecordError(line, name, f"unknown label {value!r}; expected one of {allowed}")
    return table[key]


def user_turn(text):
    return [{"role": "user", "content": text}]


def pair_record(line, context, a, b, labels, source, model_a="", model_b="", **metadata):
    return ImportRecord(
        line=line,
        context=context,
        responses=[{"text": a, "model_name": model_a}, {"text": b, "model_name": model_b}],
        labels=labels,
        source=source,
        metadata={k: v for k, v in metadata.items() if v not in (None, "")},
    )
