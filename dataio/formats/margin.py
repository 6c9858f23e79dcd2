"""Margin's own JSON Lines (what `export_data --kind margin` writes)."""

from __future__ import annotations

from core.jsonio import RecordError
from dataio.formats.fields import as_object, field_get
from dataio.records import ImportRecord, Label


def parse_margin(raw, line, options):
    """Margin's own JSON Lines: a prompt, a pair, or a pair with all its judgments."""
    raw = as_object(raw, line)
    messages = field_get(raw, line, "messages", list)
    responses = raw.get("responses") or []
    if not isinstance(responses, list) or any(not isinstance(r, dict) for r in responses):
        raise RecordError(line, "responses", "expected a list of {\"text\", \"model\"} objects")
    judgments = raw.get("judgments") or []
    if not isinstance(judgments, list) or any(not isinstance(j, dict) for j in judgments):
        raise RecordError(line, "judgments", "expected a list of objects")
    return ImportRecord(
        line=line,
        context=[dict(m) if isinstance(m, dict) else m for m in messages],
        responses=[{"text": r.get("text"), "model_name": r.get("model") or ""} for r in responses],
        labels=[
            Label(
                choice=j.get("choice"),
                strength=j.get("strength") or "",
                a_safe=j.get("a_safe"),
                b_safe=j.get("b_safe"),
                rater=str(j.get("annotator") or ""),
                rationale=str(j.get("rationale") or ""),
                metadata=j.get("metadata") if isinstance(j.get("metadata"), dict) else {},
            )
            for j in judgments
        ],
        # An export of ours carries its provenance: kept as it was (even when empty).
        source=str(raw["source"] if isinstance(raw.get("source"), str) else options.source),
        origin=raw["origin"] if isinstance(raw.get("origin"), str) else None,
        adversarial=raw.get("adversarial") is True,
        metadata=raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {},
    )
