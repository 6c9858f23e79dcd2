"""Auto-J pairwise test data (with ties)."""

from __future__ import annotations

from dataio.formats.fields import as_object, field_get, label_pick, pair_record, user_turn
from dataio.records import Label

AUTOJ_LABELS = {0: "a", 1: "b", 2: "tie"}


def parse_autoj(raw, line, options):
    """Auto-J pairwise: label 0 = first better, 1 = second better, 2 = tie."""
    raw = as_object(raw, line)
    label = Label(label_pick(raw, line, "label", AUTOJ_LABELS), rater="auto-j")
    return pair_record(
        line, user_turn(field_get(raw, line, "prompt")),
        field_get(raw, line, "response 1"), field_get(raw, line, "response 2"), [label],
        f"auto-j:{options.source}", scenario=raw.get("scenario"),
    )
