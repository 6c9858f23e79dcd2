"""Tulu 1 human evaluation: one row per evaluator, graded preference and acceptability."""

from __future__ import annotations

from dataio.formats.fields import as_object, field_get, label_pick, pair_record, user_turn
from dataio.records import Label

TULU_PREFERENCES = {
    "a-is-better": ("a", "better"),
    "a-is-slightly-better": ("a", "slightly_better"),
    "tie": ("tie", ""),
    "b-is-slightly-better": ("b", "slightly_better"),
    "b-is-better": ("b", "better"),
}
YES_NO = {"yes": True, "no": False, None: None}


def parse_tulu(raw, line, options):
    """Tulu 1 human evaluation: graded preference -> strength; acceptability per completion."""
    raw = as_object(raw, line)
    if all(value is None for value in raw.values()):
        return None  # the spreadsheet's blank rows
    choice, strength = label_pick(raw, line, "preference", TULU_PREFERENCES)
    label = Label(
        choice,
        strength,
        rater=f"tulu:{field_get(raw, line, 'evaluator')}",
        rationale=str(raw.get("comment") or ""),
        metadata={
            "a_acceptable": label_pick(raw, line, "completion_a_is_acceptable", YES_NO),
            "b_acceptable": label_pick(raw, line, "completion_b_is_acceptable", YES_NO),
            "timestamp": raw.get("timestamp"),
        },
    )
    return pair_record(
        line, user_turn(field_get(raw, line, "prompt")),
        field_get(raw, line, "completion_a"), field_get(raw, line, "completion_b"), [label],
        f"tulu1-human-eval:{options.source}",
        str(raw.get("model_a") or ""), str(raw.get("model_b") or ""),
        instance_id=raw.get("instance_id"),
    )
