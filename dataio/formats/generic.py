"""Any flat JSON record, read through a field mapping."""

from __future__ import annotations

from core.jsonio import RecordError
from dataio.formats.fields import as_object, field_get, pair_record, user_turn
from dataio.records import Label

GENERIC_DEFAULTS = {
    "prompt": "prompt", "response_a": "response_a", "response_b": "response_b",
    "label": "", "rater": "", "label_a": "a", "label_b": "b", "label_tie": "tie",
}


def parse_generic(raw, line, options):
    """Any flat JSON record: --map prompt=FIELD,response_a=FIELD,response_b=FIELD[,label=FIELD,
    label_a=VALUE,label_b=VALUE,label_tie=VALUE,rater=FIELD]."""
    raw = as_object(raw, line)
    names = {**GENERIC_DEFAULTS, **options.mapping}
    labels = []
    if names["label"]:
        value = raw.get(names["label"])
        table = {str(names[f"label_{c}"]).lower(): c for c in ("a", "b", "tie")}
        choice = table.get(str(value).strip().lower())
        if choice is None:
            allowed = ", ".join(repr(k) for k in table)
            raise RecordError(line, names["label"], f"unknown label {value!r}; expected one of {allowed}")
        rater = str(raw.get(names["rater"]) or "") if names["rater"] else ""
        labels.append(Label(choice, rater=rater))
    return pair_record(
        line, user_turn(field_get(raw, line, names["prompt"])),
        field_get(raw, line, names["response_a"]), field_get(raw, line, names["response_b"]), labels,
        f"generic:{options.source}",
    )
