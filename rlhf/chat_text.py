"""Chat-templated text back into messages, for trainers that send a whole dialogue as one string.

OpenRLHF's remote reward model gets `tokenizer.decode(prompt_ids + response_ids,
skip_special_tokens=False)`: the chat template's markers are in the text. Margin's scorers take
messages and render them with the reward model's own template, so the server splits the text at
that template's role markers. The markers are learnt from the template itself, by rendering a
dialogue whose contents are sentinels: what lies between two sentinels is the end-of-turn text
followed by the next role's start (`<|im_end|>\\n<|im_start|>user\\n` for SmolLM2's ChatML).
A template that is not "start(role) content end" (Llama 2's [INST] blocks) gives no markers;
such text is split with the trainer's `prompts` instead. No Django here.
"""

from __future__ import annotations

from dataclasses import dataclass

SENTINEL = "\x00{}\x00"
PROBE_ROLES = ("system", "user", "assistant", "user", "assistant")


class ChatTextError(ValueError):
    """The text is not a dialogue ending with an assistant response."""


@dataclass(frozen=True)
class ChatMarkers:
    starts: dict[str, str]  # role -> the text that opens its turn
    end: str  # the text that closes every turn
    lead: str  # text before the first turn (a BOS token), optional in the input
    ignorable: tuple[str, ...]  # special tokens that may trail a decoded sequence (EOS, padding)


def chat_markers_learn(tokenizer) -> ChatMarkers | None:
    """The role markers of `tokenizer`'s chat template, or None when it has no such shape."""
    for roles in (PROBE_ROLES, PROBE_ROLES[1:]):  # some templates refuse a system turn
        messages = [{"role": role, "content": SENTINEL.format(i)} for i, role in enumerate(roles)]
        try:
            text = tokenizer.apply_chat_template(messages, tokenize=False)
        except Exception:  # a template raising on the probe just means "no markers from this one"
            continue
        markers = _markers_from_probe(text, messages, tokenizer)
        if markers is not None and _round_trips(markers, tokenizer):
            return markers
    return None


def _markers_from_probe(text, messages, tokenizer):
    cuts = [text.find(m["content"]) for m in messages]
    if -1 in cuts or cuts != sorted(cuts):
        return None
    after = [cut + len(m["content"]) for cut, m in zip(cuts, messages)]
    end = text[after[-1]:]
    if not end.strip():
        return None
    starts, gaps = {}, [text[after[i]: cuts[i + 1]] for i in range(len(cuts) - 1)]
    for message, gap in zip(messages[1:], gaps):
        if not gap.startswith(end):
            return None
        start = gap[len(end):]
        if not start or starts.setdefault(message["role"], start) != start:
            return None
    first, before = messages[0]["role"], text[: cuts[0]]
    if first not in starts:  # the system turn comes only first: its start is the user's, renamed
        starts[first] = starts["user"].replace("user", first)
    if not before.endswith(starts[first]):
        return None
    return ChatMarkers(starts=starts, end=end, lead=before[: len(before) - len(starts[first])],
                       ignorable=tuple(t for t in tokenizer.all_special_tokens if t))


def _round_trips(markers, tokenizer) -> bool:
    """The split is the template's inverse on an ordinary dialogue, checked once at start-up."""
    dialogue = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4, of course."}]
    try:
        text = tokenizer.apply_chat_template(dialogue, tokenize=False)
        return messages_from_chat_text(text, markers=markers)[-2:] == dialogue
    except Exception:  # a template that cannot render it, or text the split refuses
        return False


def messages_from_chat_text(text: str, *, markers: ChatMarkers) -> list[dict]:
    """Messages of a chat-templated dialogue; the last turn may lack its end (a truncated response)."""
    position = len(markers.lead) if markers.lead and text.startswith(markers.lead) else 0
    core_end = markers.end.rstrip() or markers.end  # a decoded response stops at EOS, before "\n"
    messages = []
    while True:
        rest = _skip_trailing(text[position:], markers.ignorable)
        if not rest:
            break
        role = next((r for r, start in markers.starts.items() if text.startswith(start, position)), None)
        if role is None:
            raise ChatTextError(f"expected a turn to start at character {position} ({text[position:position + 20]!r})")
        position += len(markers.starts[role])
        close = text.find(core_end, position)
        if close == -1:
            messages.append({"role": role, "content": text[position:]})
            break
        messages.append({"role": role, "content": text[position:close]})
        position = close + len(core_end)
        if text.startswith(markers.end[len(core_end):], position):
            position += len(markers.end) - len(core_end)
    return _dialogue_check(messages)


def _skip_trailing(rest: str, ignorable: tuple[str, ...]) -> str:
    """'' when only special tokens and white space are left, else `rest` unchanged."""
    stripped = rest.strip()
    while stripped:
        token = next((t for t in ignorable if stripped.startswith(t)), None)
        if token is None:
            return rest
        stripped = stripped[len(token):].lstrip()
    return ""


def messages_from_prompt_and_text(text: str, *, prompt: str) -> list[dict]:
    """Plain text: the trainer's prompt is the user turn, what follows it in `text` the response."""
    if not text.startswith(prompt):
        raise ChatTextError("the text does not start with its prompt, so it cannot be split into prompt and response")
    return _dialogue_check([{"role": "user", "content": prompt}, {"role": "assistant", "content": text[len(prompt):]}])


def _dialogue_check(messages: list[dict]) -> list[dict]:
    if not messages or messages[-1]["role"] != "assistant":
        raise ChatTextError("the text does not end with an assistant response to score")
    if not any(m["role"] == "user" for m in messages):
        raise ChatTextError("the text has no user turn before the response")
    return messages


def messages_from_query(text: str, *, prompt: str | None = None, markers: ChatMarkers | None = None) -> list[dict]:
    """A trainer's query as messages: split at the template's markers when it has them, else at its prompt."""
    if markers is not None and any(start in text for start in markers.starts.values()):
        return messages_from_chat_text(text, markers=markers)
    if prompt is None:
        raise ChatTextError("no chat-template turn markers in the text, and no prompt in \"prompts\" to split it at")
    return messages_from_prompt_and_text(text, prompt=prompt)
