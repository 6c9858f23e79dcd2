"""Anthropic HH-RLHF: two full transcripts, chosen and rejected, that share all but the last turn."""

from __future__ import annotations

from core.hh import hh_transcript_messages
from core.jsonio import RecordError
from dataio.formats.fields import as_object, field_get, pair_record
from dataio.records import Label


def hh_pair(chosen, rejected):
    """Split two HH transcripts into their shared context and the two final assistant turns."""
    chosen_turns, rejected_turns = hh_transcript_messages(chosen), hh_transcript_messages(rejected)
    context = chosen_turns[:-1]
    if rejected_turns[:-1] != context:
        raise ValueError("chosen and rejected do not share the same context")
    if chosen_turns[-1]["role"] != "assistant" or rejected_turns[-1]["role"] != "assistant":
        raise ValueError("both transcripts must end with an Assistant turn")
    return context, chosen_turns[-1]["content"], rejected_turns[-1]["content"]


def parse_hh(raw, line, options):
    """Anthropic HH-RLHF: shared prefix -> context, final assistant turns -> the two responses."""
    raw = as_object(raw, line)
    chosen, rejected = field_get(raw, line, "chosen"), field_get(raw, line, "rejected")
    try:
        context, chosen_text, rejected_text = hh_pair(chosen, rejected)
    except ValueError as bad:
        raise RecordError(line, "chosen", _hh_problem(chosen, rejected, bad)) from bad
    # HH records one anonymous crowdworker preference: response A is the chosen one.
    return pair_record(line, context, chosen_text, rejected_text, [Label("a")], f"hh-rlhf:{options.source}")


def _hh_problem(chosen, rejected, error):
    try:
        turns = hh_transcript_messages(chosen), hh_transcript_messages(rejected)
    except ValueError:
        return str(error)
    differ = next((i for i, (c, r) in enumerate(zip(*turns)) if c != r), None)
    if differ is not None and differ < max(map(len, turns)) - 1:
        return (
            f"{error} (they differ at turn {differ + 1} of {len(turns[0])}, before the final "
            "Assistant turn; often a turn marker without its blank line)"
        )
    return str(error)
