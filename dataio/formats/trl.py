"""TRL / Hugging Face preference rows (prompt / chosen / rejected)."""

from __future__ import annotations

from core.jsonio import RecordError
from dataio.formats.fields import as_object, field_get, pair_record, user_turn
from dataio.records import Label


def _chat_or_text(raw, line, name):
    value = field_get(raw, line, name, (str, list))
    if isinstance(value, str):
        return value
    if len(value) != 1 or not isinstance(value[0], dict) or value[0].get("role") != "assistant":
        raise RecordError(line, name, "expected one assistant message")
    return value[0].get("content")


def parse_trl(raw, line, options):
    """TRL / Hugging Face preference rows (what `export_data --format trl` writes)."""
    raw = as_object(raw, line)
    prompt = field_get(raw, line, "prompt", (str, list))
    context = user_turn(prompt) if isinstance(prompt, str) else [dict(m) for m in prompt]
    strength = raw.get("strength") or ""
    label = Label(
        "a", strength, a_safe=raw.get("chosen_safe"), b_safe=raw.get("rejected_safe"), aggregate=True
    )
    return pair_record(
        line, context, _chat_or_text(raw, line, "chosen"), _chat_or_text(raw, line, "rejected"),
        [label], f"trl:{options.source}",
    )
