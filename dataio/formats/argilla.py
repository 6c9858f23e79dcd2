"""Argilla ranking exports (v1 FeedbackDataset and v2 records)."""

from __future__ import annotations

from core.jsonio import RecordError
from dataio.formats.fields import as_object, field_get, pair_record, user_turn
from dataio.records import Label


def _ranking_choice(ranks, line, where, name_a, name_b):
    """{field name: rank} -> "a" / "b" / "tie" (rank 1 is the best)."""
    if name_a not in ranks or name_b not in ranks:
        raise RecordError(line, where, f"the ranking must rank both {name_a!r} and {name_b!r}")
    if ranks[name_a] == ranks[name_b]:
        return "tie"
    return "a" if ranks[name_a] < ranks[name_b] else "b"


def parse_argilla(raw, line, options):
    """Argilla ranking exports: v1 FeedbackDataset records (responses[].values.<question>.value
    = [{value, rank}]) and v2 records (responses.<question> = [{value: [best, ...], user_id}])."""
    raw = as_object(raw, line)
    names = {
        "prompt": "prompt", "response_a": "response1", "response_b": "response2",
        "question": "ranking", **options.mapping,
    }
    fields = raw.get("fields") if isinstance(raw.get("fields"), dict) else raw
    question, labels = names["question"], []
    responses = raw.get("responses") or []
    if isinstance(responses, dict):  # Argilla 2.x
        responses = [
            {"user_id": r.get("user_id"), "status": r.get("status", "submitted"), "order": r.get("value")}
            for r in responses.get(question) or [] if isinstance(r, dict)
        ]
    for i, response in enumerate(responses):
        if not isinstance(response, dict) or response.get("status", "submitted") != "submitted":
            continue
        where = f"responses[{i}]"
        if "order" in response:
            order = response["order"]
            if not isinstance(order, list):
                raise RecordError(line, f"{where}.{question}", "expected a list of field names")
            ranks = {value: rank for rank, value in enumerate(order, start=1)}
        else:
            value = ((response.get("values") or {}).get(question) or {}).get("value")
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise RecordError(line, f"{where}.values.{question}", "expected [{value, rank}, ...]")
            ranks = {v.get("value"): v.get("rank") for v in value}
        choice = _ranking_choice(ranks, line, f"{where}.{question}", names["response_a"], names["response_b"])
        labels.append(Label(choice, rater=f"argilla:{response.get('user_id')}"))
    return pair_record(
        line, user_turn(field_get(fields, line, names["prompt"])),
        field_get(fields, line, names["response_a"]), field_get(fields, line, names["response_b"]), labels,
        f"argilla:{options.source}", external_id=raw.get("external_id") or raw.get("id"),
    )
