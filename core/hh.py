"""Anthropic HH-RLHF transcripts ('\n\nHuman: ...\n\nAssistant: ...'), read by the HH importer
(dataio/formats/hh.py) and the safety-prompt importer (rlhf/safety_eval.py)."""

import re

from core.vocabulary import ASSISTANT, USER

HH_TURN = re.compile(r"\n\n(Human|Assistant): ")
HH_ROLES = {"Human": USER, "Assistant": ASSISTANT}


def hh_transcript_messages(transcript: str) -> list[dict]:
    """'\\n\\nHuman: hi\\n\\nAssistant: hello' -> [{'role': 'user', ...}, {'role': 'assistant', ...}]."""
    parts = HH_TURN.split(transcript)
    if parts[0].strip() or len(parts) < 3:
        raise ValueError("expected a transcript of '\\n\\nHuman:' / '\\n\\nAssistant:' turns")
    return [{"role": HH_ROLES[speaker], "content": text.strip()} for speaker, text in zip(parts[1::2], parts[2::2])]
