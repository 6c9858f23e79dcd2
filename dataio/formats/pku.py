"""PKU-SafeRLHF: two responses with a helpfulness and a safety preference and per-response safety."""

from __future__ import annotations

from dataio.formats.fields import as_object, field_get, label_pick, pair_record, user_turn
from dataio.records import Label


def parse_pku(raw, line, options):
    """PKU-SafeRLHF: the helpfulness label (better_response_id) or the safety label
    (safer_response_id), by the project's objective; both responses' safety labels always."""
    raw = as_object(raw, line)
    prompt = field_get(raw, line, "prompt")
    texts = [field_get(raw, line, f"response_{i}") for i in (0, 1)]
    safe = [field_get(raw, line, f"is_response_{i}_safe", bool) for i in (0, 1)]
    which = "safer_response_id" if options.objective == "safety" else "better_response_id"
    choice = label_pick(raw, line, which, {0: "a", 1: "b"})
    label = Label(choice, a_safe=safe[0], b_safe=safe[1])
    extra = {k: raw[k] for k in raw if "severity" in k or "harm_category" in k}
    return pair_record(line, user_turn(prompt), *texts, [label], f"pku-saferlhf:{options.source}", **extra)
