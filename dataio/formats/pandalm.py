"""PandaLM's human-annotated test set: three annotators per pair."""

from __future__ import annotations

from core.jsonio import RecordError
from dataio.formats.fields import as_object, field_get, label_pick, pair_record, user_turn
from dataio.records import Label

PANDALM_CHOICES = {0: "tie", 1: "a", 2: "b"}


def parse_pandalm(raw, line, options):
    """PandaLM test set: three annotators per pair -> three labels on one comparison."""
    raw = as_object(raw, line)
    instruction = field_get(raw, line, "instruction")
    extra_input = raw.get("input") or ""
    if not isinstance(extra_input, str):
        raise RecordError(line, "input", f"expected str, got {type(extra_input).__name__}")
    prompt = f"{instruction.strip()}\n\n{extra_input.strip()}" if extra_input.strip() else instruction
    labels = [
        Label(label_pick(raw, line, f"annotator{i}", PANDALM_CHOICES), rater=f"pandalm:annotator{i}")
        for i in (1, 2, 3)
    ]
    model_a, _, model_b = str(raw.get("cmp_key") or "").partition("_")
    # Two records hold a bare JSON true where the model answered "True": read back as text.
    texts = [str(raw.get(f"response{i}")) if isinstance(raw.get(f"response{i}"), bool)
             else field_get(raw, line, f"response{i}") for i in (1, 2)]
    return pair_record(
        line, user_turn(prompt), *texts, labels,
        f"pandalm:{options.source}", model_a, model_b,
        idx=raw.get("idx"), motivation_app=raw.get("motivation_app"),
    )
