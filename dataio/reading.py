"""The file layer of an import: a binary stream (plain or gzip; JSON Lines or one JSON array) ->
(line, raw object) pairs, within the size limits, with undecodable lines reported by number.

Pure Python (no Django); each format's parser (dataio.formats) turns a raw object into a record.
"""

from __future__ import annotations

import gzip
import json
import zlib

from core.jsonio import BLANK, TOO_DEEP, RecordError, json_line_value
from core.jsonio import not_utf8 as _not_utf8
from dataio.records import Limits


class EmptyFile(ValueError):
    pass


class TooLarge(ValueError):
    """A gzip file whose content, once decompressed, is over the import limit."""


def _too_large(limits):
    return TooLarge(
        f"The file is over the import limit of {limits.max_file_bytes} bytes once decompressed "
        f"({limits.max_file_setting}); nothing was imported."
    )


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
            value = json_line_value(line, number)
        except RecordError as bad:  # reported with the others; reading goes on
            yield number, bad
            continue
        if value is not BLANK:
            yield number, value


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
