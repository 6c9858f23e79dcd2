"""Label Studio's JSON export of a pairwise-preference task."""

from __future__ import annotations

from core.jsonio import RecordError
from dataio.formats.fields import as_object, field_get, pair_record, user_turn
from dataio.records import Label

LABEL_STUDIO_SIDES = {"left": "a", "right": "b"}


def parse_labelstudio(raw, line, options):
    """Label Studio JSON export of a Pairwise task (the "Human preference collection for RLHF"
    template: data prompt / answer1 / answer2, result value {"selected": "left" | "right"})."""
    raw = as_object(raw, line)
    data = as_object(field_get(raw, line, "data", dict), line)
    names = {"prompt": "prompt", "response_a": "answer1", "response_b": "answer2", **options.mapping}
    labels = []
    for i, annotation in enumerate(raw.get("annotations") or []):
        if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
            continue
        results = [r for r in annotation.get("result") or [] if isinstance(r, dict)]
        pairwise = [r for r in results if r.get("type") == "pairwise"]
        if not pairwise:
            continue
        selected = (pairwise[0].get("value") or {}).get("selected")
        if selected not in LABEL_STUDIO_SIDES:
            raise RecordError(
                line, f"annotations[{i}].result.value.selected",
                f"unknown label {selected!r}; expected 'left' or 'right'",
            )
        who = annotation.get("completed_by")
        who = who.get("id", who.get("email")) if isinstance(who, dict) else who
        labels.append(Label(LABEL_STUDIO_SIDES[selected], rater=f"labelstudio:{who}"))
    return pair_record(
        line, user_turn(field_get(data, line, names["prompt"])),
        field_get(data, line, names["response_a"]), field_get(data, line, names["response_b"]), labels,
        f"labelstudio:{options.source}", task_id=raw.get("id"),
    )
