"""Readers that turn preference data files into dialogues + response pairs (minimal set).

Only what the demo needs lives here for now: Anthropic HH-RLHF transcripts and the Tulu 1
human-evaluation rows. Validation reports the line number and the field.
"""

import gzip
import hashlib
import json
import re
from dataclasses import dataclass, field

_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


class ImportFormatError(ValueError):
    def __init__(self, path, line, field_name, message):
        super().__init__(f"{path}, line {line}, field “{field_name}”: {message}")


@dataclass
class PairRecord:
    """One prompt context with two candidate responses, as read from a file."""

    context: list  # chat messages, ending with the user turn both responses answer
    response_a: str
    response_b: str
    source: str
    model_a: str = ""
    model_b: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def source_key(self):
        payload = json.dumps([self.context, self.response_a, self.response_b], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def hh_transcript_messages(transcript):
    """'\\n\\nHuman: hi\\n\\nAssistant: hello' -> [{'role': 'user', ...}, {'role': 'assistant', ...}]."""
    parts = _HH_TURN.split(transcript)
    if parts[0].strip() or len(parts) < 3:
        raise ValueError("expected a transcript of '\\n\\nHuman:' / '\\n\\nAssistant:' turns")
    return [
        {"role": _HH_ROLES[speaker], "content": text.strip()}
        for speaker, text in zip(parts[1::2], parts[2::2])
    ]


def hh_pair(chosen, rejected):
    """Split two HH transcripts into their shared context and the two final assistant turns."""
    chosen_turns, rejected_turns = hh_transcript_messages(chosen), hh_transcript_messages(rejected)
    context = chosen_turns[:-1]
    if rejected_turns[:-1] != context:
        raise ValueError("chosen and rejected do not share the same context")
    if chosen_turns[-1]["role"] != "assistant" or rejected_turns[-1]["role"] != "assistant":
        raise ValueError("both transcripts must end with an Assistant turn")
    return context, chosen_turns[-1]["content"], rejected_turns[-1]["content"]


def _json_lines(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as bad:
                    raise ImportFormatError(path, number, "(line)", f"not JSON: {bad}") from bad


def read_hh_pairs(path, limit=None):
    """HH-RLHF records; response A is the human-preferred one (the record says so)."""
    for number, record in _json_lines(path):
        for name in ("chosen", "rejected"):
            if not isinstance(record.get(name), str):
                raise ImportFormatError(path, number, name, "missing or not a string")
        try:
            context, chosen, rejected = hh_pair(record["chosen"], record["rejected"])
        except ValueError as bad:
            raise ImportFormatError(path, number, "chosen", str(bad)) from bad
        yield PairRecord(context, chosen, rejected, source=f"hh-rlhf:{path.name}:{number}")
        if limit is not None and number >= limit:
            return


def read_tulu_pairs(path, limit=None):
    """Tulu 1 human evaluation rows, one pair per distinct prompt and model pair."""
    seen = set()
    for number, record in _json_lines(path):
        for name in ("prompt", "completion_a", "completion_b"):
            if not isinstance(record.get(name), str):
                raise ImportFormatError(path, number, name, "missing or not a string")
        key = (record["prompt"], record.get("model_a"), record.get("model_b"))
        if key in seen:
            continue
        seen.add(key)
        yield PairRecord(
            [{"role": "user", "content": record["prompt"].strip()}],
            record["completion_a"].strip(),
            record["completion_b"].strip(),
            source=f"tulu1-human-eval:{path.name}:{number}",
            model_a=str(record.get("model_a") or ""),
            model_b=str(record.get("model_b") or ""),
        )
        if limit is not None and len(seen) >= limit:
            return
