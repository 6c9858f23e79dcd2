"""Readers: a file in a known format -> `ImportRecord`s (pure Python, no Django).

`raw_records(stream)` yields (line, object) from JSON Lines (plain or gzip) or from one JSON
array (PandaLM, Label Studio); each format's `parse_*` turns one object into an ImportRecord
or raises RecordError naming the field. See docs/dataio.md for every format's fields.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass, field

from annotation.importers import hh_pair, hh_transcript_messages
from core.jsonio import TOO_DEEP, RecordError
from core.jsonio import not_utf8 as _not_utf8
from dataio.records import ImportRecord, Label, Limits


@dataclass
class ReadOptions:
    objective: str = "helpfulness"  # PKU-SafeRLHF: which of its two labels to import
    mapping: dict = field(default_factory=dict)  # generic / Label Studio / Argilla field names
    source: str = ""  # file name, recorded on every comparison


class EmptyFile(ValueError):
    pass


class TooLarge(ValueError):
    """A gzip file whose content, once decompressed, is over the import limit."""


def _too_large(limits):
    return TooLarge(
        f"The file is over the import limit of {limits.max_file_bytes} bytes once decompressed "
        "(MARGIN_IMPORT_MAX_BYTES); nothing was imported."
    )


# --- the file layer -------------------------------------------------------------------------------


def raw_records(stream, limits: Limits):
    """(line, parsed object or RecordError) for every record of a binary stream.

    Lines are decoded one at a time, so a byte that is not UTF-8 is reported on its own line
    (and `skip_invalid` keeps the lines around it); a UTF-8 byte-order mark is allowed."""
    head = stream.read(2)
    stream.seek(0)
    if head == b"\x1f\x8b":  # gzip magic number
        stream = gzip.GzipFile(fileobj=stream)
    try:
        first = _first_byte(stream)
    except (EOFError, OSError, zlib.error) as bad:  # a truncated or corrupt gzip file
        yield 1, RecordError(1, "(file)", f"cannot be read: {bad}")
        return
    if first == b"":
        raise EmptyFile("The file is empty; nothing was imported.")
    if first == b"[":
        yield from _json_array(stream, limits)
    else:
        yield from _json_lines(stream, limits)


BOM = b"\xef\xbb\xbf"


def _first_byte(stream):
    """The first byte that is not white space (nor the byte-order mark); rewinds the stream."""
    skip = BOM if stream.read(3) == BOM else b""
    stream.seek(len(skip))
    while True:
        byte = stream.read(1)
        if byte == b"" or not byte.isspace():
            stream.seek(0)
            return byte


def _json_lines(stream, limits):
    number = total = 0
    while True:
        number += 1
        try:
            line = stream.readline(limits.max_line_bytes + 1)
        except (EOFError, OSError, zlib.error) as bad:
            yield number, RecordError(number, "(line)", f"cannot be read: {bad}")
            return
        if line == b"":
            return
        total += len(line)
        if total > limits.max_file_bytes:  # a gzip bomb, or a plain file that grew while read
            raise _too_large(limits)
        if len(line) > limits.max_line_bytes and not line.endswith(b"\n"):
            yield number, RecordError(
                number, "(line)", f"longer than the limit of {limits.max_line_bytes} bytes"
            )
            while line and not line.endswith(b"\n"):  # skip the rest of the huge line
                line = stream.readline(limits.max_line_bytes)
                total += len(line)
                if total > limits.max_file_bytes:
                    raise _too_large(limits)
            continue
        if number == 1 and line.startswith(BOM):
            line = line[len(BOM):]
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as bad:
            yield number, RecordError(number, "(line)", _not_utf8(line[bad.start], bad.start + 1))
            continue
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as bad:
            yield number, RecordError(number, "(line)", f"not JSON: {bad.msg} at column {bad.colno}")
        except RecursionError:
            yield number, RecordError(number, "(line)", TOO_DEEP)


def _json_array(stream, limits):
    """A JSON array file; "line" is the record's position (1-based) in the array."""
    try:
        data = stream.read(limits.max_file_bytes + 1)
    except (EOFError, OSError, zlib.error) as bad:
        yield 1, RecordError(1, "(file)", f"cannot be read: {bad}")
        return
    if len(data) > limits.max_file_bytes:
        raise _too_large(limits)
    data = data[len(BOM):] if data.startswith(BOM) else data
    try:
        items = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as bad:
        line = data.count(b"\n", 0, bad.start) + 1
        column = bad.start - data.rfind(b"\n", 0, bad.start)
        yield line, RecordError(line, "(file)", _not_utf8(data[bad.start], column))
        return
    except json.JSONDecodeError as bad:
        yield bad.lineno, RecordError(bad.lineno, "(file)", f"not JSON: {bad.msg} at column {bad.colno}")
        return
    except RecursionError:
        yield 1, RecordError(1, "(file)", TOO_DEEP)
        return
    for number, item in enumerate(items, start=1):
        yield number, item


# --- helpers for the parsers ----------------------------------------------------------------------


def _object(raw, line):
    if not isinstance(raw, dict):
        raise RecordError(line, "(record)", f"expected a JSON object, got {type(raw).__name__}")
    return raw


def _get(raw, line, name, kinds=str):
    if name not in raw or raw[name] is None:
        raise RecordError(line, name, "is missing")
    value = raw[name]
    if not isinstance(value, kinds) or isinstance(value, bool) and kinds is not bool:
        wanted = kinds.__name__ if isinstance(kinds, type) else " or ".join(k.__name__ for k in kinds)
        raise RecordError(line, name, f"expected {wanted}, got {type(value).__name__}")
    return value


def _pick(raw, line, name, table):
    value = raw.get(name)
    key = value.strip().lower() if isinstance(value, str) else value
    if key not in table:
        allowed = ", ".join(repr(k) for k in table)
        raise RecordError(line, name, f"unknown label {value!r}; expected one of {allowed}")
    return table[key]


def _user(text):
    return [{"role": "user", "content": text}]


def _pair(line, context, a, b, labels, source, model_a="", model_b="", **metadata):
    return ImportRecord(
        line=line,
        context=context,
        responses=[{"text": a, "model_name": model_a}, {"text": b, "model_name": model_b}],
        labels=labels,
        source=source,
        metadata={k: v for k, v in metadata.items() if v not in (None, "")},
    )


# --- formats --------------------------------------------------------------------------------------


def parse_margin(raw, line, options):
    """Margin's own JSON Lines: a prompt, a pair, or a pair with all its judgments."""
    raw = _object(raw, line)
    messages = _get(raw, line, "messages", list)
    responses = raw.get("responses") or []
    if not isinstance(responses, list) or any(not isinstance(r, dict) for r in responses):
        raise RecordError(line, "responses", "expected a list of {\"text\", \"model\"} objects")
    judgments = raw.get("judgments") or []
    if not isinstance(judgments, list) or any(not isinstance(j, dict) for j in judgments):
        raise RecordError(line, "judgments", "expected a list of objects")
    return ImportRecord(
        line=line,
        context=[dict(m) if isinstance(m, dict) else m for m in messages],
        responses=[{"text": r.get("text"), "model_name": r.get("model") or ""} for r in responses],
        labels=[
            Label(
                choice=j.get("choice"),
                strength=j.get("strength") or "",
                a_safe=j.get("a_safe"),
                b_safe=j.get("b_safe"),
                rater=str(j.get("annotator") or ""),
                rationale=str(j.get("rationale") or ""),
                metadata=j.get("metadata") if isinstance(j.get("metadata"), dict) else {},
            )
            for j in judgments
        ],
        # An export of ours carries its provenance: kept as it was (even when empty).
        source=str(raw["source"] if isinstance(raw.get("source"), str) else options.source),
        origin=raw["origin"] if isinstance(raw.get("origin"), str) else None,
        adversarial=raw.get("adversarial") is True,
        metadata=raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {},
    )


def parse_hh(raw, line, options):
    """Anthropic HH-RLHF: shared prefix -> context, final assistant turns -> the two responses."""
    raw = _object(raw, line)
    chosen, rejected = _get(raw, line, "chosen"), _get(raw, line, "rejected")
    try:
        context, chosen_text, rejected_text = hh_pair(chosen, rejected)
    except ValueError as bad:
        raise RecordError(line, "chosen", _hh_problem(chosen, rejected, bad)) from bad
    # HH records one anonymous crowdworker preference: response A is the chosen one.
    return _pair(line, context, chosen_text, rejected_text, [Label("a")], f"hh-rlhf:{options.source}")


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


def parse_pku(raw, line, options):
    """PKU-SafeRLHF: the helpfulness label (better_response_id) or the safety label
    (safer_response_id), by the project's objective; both responses' safety labels always."""
    raw = _object(raw, line)
    prompt = _get(raw, line, "prompt")
    texts = [_get(raw, line, f"response_{i}") for i in (0, 1)]
    safe = [_get(raw, line, f"is_response_{i}_safe", bool) for i in (0, 1)]
    which = "safer_response_id" if options.objective == "safety" else "better_response_id"
    choice = _pick(raw, line, which, {0: "a", 1: "b"})
    label = Label(choice, a_safe=safe[0], b_safe=safe[1])
    extra = {k: raw[k] for k in raw if "severity" in k or "harm_category" in k}
    return _pair(line, _user(prompt), *texts, [label], f"pku-saferlhf:{options.source}", **extra)


PANDALM_CHOICES = {0: "tie", 1: "a", 2: "b"}


def parse_pandalm(raw, line, options):
    """PandaLM test set: three annotators per pair -> three labels on one comparison."""
    raw = _object(raw, line)
    instruction = _get(raw, line, "instruction")
    extra_input = raw.get("input") or ""
    if not isinstance(extra_input, str):
        raise RecordError(line, "input", f"expected str, got {type(extra_input).__name__}")
    prompt = f"{instruction.strip()}\n\n{extra_input.strip()}" if extra_input.strip() else instruction
    labels = [
        Label(_pick(raw, line, f"annotator{i}", PANDALM_CHOICES), rater=f"pandalm:annotator{i}")
        for i in (1, 2, 3)
    ]
    model_a, _, model_b = str(raw.get("cmp_key") or "").partition("_")
    # Two records hold a bare JSON true where the model answered "True": read back as text.
    texts = [str(raw.get(f"response{i}")) if isinstance(raw.get(f"response{i}"), bool)
             else _get(raw, line, f"response{i}") for i in (1, 2)]
    return _pair(
        line, _user(prompt), *texts, labels,
        f"pandalm:{options.source}", model_a, model_b,
        idx=raw.get("idx"), motivation_app=raw.get("motivation_app"),
    )


TULU_PREFERENCES = {
    "a-is-better": ("a", "better"),
    "a-is-slightly-better": ("a", "slightly_better"),
    "tie": ("tie", ""),
    "b-is-slightly-better": ("b", "slightly_better"),
    "b-is-better": ("b", "better"),
}
YES_NO = {"yes": True, "no": False, None: None}


def parse_tulu(raw, line, options):
    """Tulu 1 human evaluation: graded preference -> strength; acceptability per completion."""
    raw = _object(raw, line)
    if all(value is None for value in raw.values()):
        return None  # the spreadsheet's blank rows
    choice, strength = _pick(raw, line, "preference", TULU_PREFERENCES)
    label = Label(
        choice,
        strength,
        rater=f"tulu:{_get(raw, line, 'evaluator')}",
        rationale=str(raw.get("comment") or ""),
        metadata={
            "a_acceptable": _pick(raw, line, "completion_a_is_acceptable", YES_NO),
            "b_acceptable": _pick(raw, line, "completion_b_is_acceptable", YES_NO),
            "timestamp": raw.get("timestamp"),
        },
    )
    return _pair(
        line, _user(_get(raw, line, "prompt")),
        _get(raw, line, "completion_a"), _get(raw, line, "completion_b"), [label],
        f"tulu1-human-eval:{options.source}",
        str(raw.get("model_a") or ""), str(raw.get("model_b") or ""),
        instance_id=raw.get("instance_id"),
    )


AUTOJ_LABELS = {0: "a", 1: "b", 2: "tie"}


def parse_autoj(raw, line, options):
    """Auto-J pairwise: label 0 = first better, 1 = second better, 2 = tie."""
    raw = _object(raw, line)
    label = Label(_pick(raw, line, "label", AUTOJ_LABELS), rater="auto-j")
    return _pair(
        line, _user(_get(raw, line, "prompt")),
        _get(raw, line, "response 1"), _get(raw, line, "response 2"), [label],
        f"auto-j:{options.source}", scenario=raw.get("scenario"),
    )


def _chat_or_text(raw, line, name):
    value = _get(raw, line, name, (str, list))
    if isinstance(value, str):
        return value
    if len(value) != 1 or not isinstance(value[0], dict) or value[0].get("role") != "assistant":
        raise RecordError(line, name, "expected one assistant message")
    return value[0].get("content")


def parse_trl(raw, line, options):
    """TRL / Hugging Face preference rows (what `export_data --format trl` writes)."""
    raw = _object(raw, line)
    prompt = _get(raw, line, "prompt", (str, list))
    context = _user(prompt) if isinstance(prompt, str) else [dict(m) for m in prompt]
    strength = raw.get("strength") or ""
    label = Label(
        "a", strength, a_safe=raw.get("chosen_safe"), b_safe=raw.get("rejected_safe"), aggregate=True
    )
    return _pair(
        line, context, _chat_or_text(raw, line, "chosen"), _chat_or_text(raw, line, "rejected"),
        [label], f"trl:{options.source}",
    )


GENERIC_DEFAULTS = {
    "prompt": "prompt", "response_a": "response_a", "response_b": "response_b",
    "label": "", "rater": "", "label_a": "a", "label_b": "b", "label_tie": "tie",
}


def parse_generic(raw, line, options):
    """Any flat JSON record: --map prompt=FIELD,response_a=FIELD,response_b=FIELD[,label=FIELD,
    label_a=VALUE,label_b=VALUE,label_tie=VALUE,rater=FIELD]."""
    raw = _object(raw, line)
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
    return _pair(
        line, _user(_get(raw, line, names["prompt"])),
        _get(raw, line, names["response_a"]), _get(raw, line, names["response_b"]), labels,
        f"generic:{options.source}",
    )


LABEL_STUDIO_SIDES = {"left": "a", "right": "b"}


def parse_labelstudio(raw, line, options):
    """Label Studio JSON export of a Pairwise task (the "Human preference collection for RLHF"
    template: data prompt / answer1 / answer2, result value {"selected": "left" | "right"})."""
    raw = _object(raw, line)
    data = _object(_get(raw, line, "data", dict), line)
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
    return _pair(
        line, _user(_get(data, line, names["prompt"])),
        _get(data, line, names["response_a"]), _get(data, line, names["response_b"]), labels,
        f"labelstudio:{options.source}", task_id=raw.get("id"),
    )


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
    raw = _object(raw, line)
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
    return _pair(
        line, _user(_get(fields, line, names["prompt"])),
        _get(fields, line, names["response_a"]), _get(fields, line, names["response_b"]), labels,
        f"argilla:{options.source}", external_id=raw.get("external_id") or raw.get("id"),
    )


PARSERS = {
    "margin": parse_margin,
    "hh": parse_hh,
    "pku": parse_pku,
    "pandalm": parse_pandalm,
    "tulu": parse_tulu,
    "autoj": parse_autoj,
    "trl": parse_trl,
    "generic": parse_generic,
    "labelstudio": parse_labelstudio,
    "argilla": parse_argilla,
}


def mapping_parse(text: str) -> dict:
    """'prompt=question,response_a=answer1' -> {'prompt': 'question', 'response_a': 'answer1'}."""
    mapping = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"mapping entry {part!r} is not NAME=FIELD")
        mapping[name.strip()] = value.strip()
    return mapping
