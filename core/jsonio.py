"""Reading JSON that people hand us: files that may not be UTF-8, nest too deep, or hold the
wrong shape. Every error names the line and the field, so a command or a page can show it as is.
"""

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

TOO_DEEP = "JSON nested too deeply to read (lists or objects inside each other about 1000 levels)"


class RecordError(ValueError):
    """One bad record: where it is, which field, what is wrong (shown to the user as is)."""

    def __init__(self, line, field_name, message):
        self.line, self.field, self.message = line, field_name, message
        super().__init__(f"line {line}, field “{field_name}”: {message}")


def not_utf8(byte: int, column: int) -> str:
    return f"not UTF-8 text: byte 0x{byte:02x} at byte {column} of the line (save the file as UTF-8)"


def utf8_check(path) -> None:
    """Raise RecordError naming the first line of the file at `path` that is not UTF-8 text
    (commands call it before reading a JSON file, so the error says where, not a traceback)."""
    with open(path, "rb") as stream:
        for number, line in enumerate(stream, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as bad:
                raise RecordError(number, "(line)", not_utf8(line[bad.start], bad.start + 1)) from None


BLANK = object()  # what json_line_value returns for an empty line (JSON null is None)


def json_line_value(raw: bytes, number: int):
    """The JSON value of one line of a JSONL file, BLANK for a blank line; RecordError names the
    line when it is not UTF-8 or not JSON (the one decoder of every JSONL reader)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise RecordError(number, "(line)", not_utf8(raw[bad.start], bad.start + 1)) from None
    if not text.strip():
        return BLANK
    try:
        return json.loads(text)
    except json.JSONDecodeError as bad:
        raise RecordError(number, "(line)", f"not JSON: {bad.msg} at column {bad.colno}") from None
    except RecursionError:
        raise RecordError(number, "(line)", TOO_DEEP) from None


def jsonl_rows(path) -> Iterator[tuple[int, object]]:
    """(line number, value) of each non-blank line of a JSONL file, gzip-compressed when its name
    ends in .gz; RecordError at the first line that cannot be read."""
    path = Path(path)
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            value = json_line_value(raw, number)
            if value is not BLANK:
                yield number, value


def json_object_read(path: Path, what: str) -> dict:
    """A JSON file holding one object (a config file, say); ValueError naming `what` otherwise.

    `what` is how the user named the file, e.g. "--config recipe.json"."""
    try:
        utf8_check(path)
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as problem:
        raise ValueError(f"Cannot read {what}: {problem}") from problem
    except RecordError as problem:  # "--config ppo.json, line 2, field “(line)”: not UTF-8 ..."
        raise ValueError(f"{what}, {problem}") from problem
    except json.JSONDecodeError as problem:
        raise ValueError(f"{what} is not JSON: {problem}") from problem
    except RecursionError:
        raise ValueError(f"{what}: {TOO_DEEP}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{what} must hold a JSON object of field values")
    return values
