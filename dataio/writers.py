"""Writers: export rows -> a JSON Lines, CSV or parquet file, or a `datasets` folder (no Django)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

OUTPUT_FORMATS = ("jsonl", "csv", "parquet", "datasets")


class ExportError(ValueError):
    """A bad filter or destination; the message says which."""


def rows_write(rows, destination, output_format="jsonl", on_progress=None):
    """Write rows to `destination`; returns how many. `datasets` writes a save_to_disk folder."""
    if output_format not in OUTPUT_FORMATS:
        raise ExportError(f"Unknown output format {output_format!r}; use {', '.join(OUTPUT_FORMATS)}.")
    destination = Path(destination)
    if not destination.parent.is_dir():
        raise ExportError(f"The folder {destination.parent} does not exist.")
    rows = list(rows)
    try:
        if output_format == "jsonl":
            return _jsonl_write(rows, destination, on_progress)
        if output_format == "csv":
            return _csv_write(rows, destination, on_progress)
    except OSError as problem:  # a folder where the file goes, no permission, a full disk
        raise ExportError(f"Cannot write {destination}: {problem.strerror}.") from problem
    from datasets import Dataset  # heavy import, only when asked for

    if not rows:
        raise ExportError("Nothing to export with these filters; parquet and datasets need rows.")
    dataset = Dataset.from_list(rows)
    if output_format == "parquet":
        dataset.to_parquet(str(destination))
    else:
        dataset.save_to_disk(str(destination))
    if on_progress:
        on_progress(len(rows), len(rows))
    return len(rows)


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection"),
# also behind white space (a non-breaking or ideographic space too) and in their full-width forms,
# which spreadsheets with East Asian input read as the ASCII ones.
FORMULA_STARTS = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# Characters that show nothing: a formula behind them still runs. str.isspace() covers the rest.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"


def csv_cell(value):
    """One CSV cell for a spreadsheet: a chat of one message is its text, other lists and objects
    are JSON, and text that would run as a formula gets a leading ' (shown, never run). Numbers
    stay numbers. defusedcsv was not used: it lets "-2" through and leaves tab and CR alone."""
    if value is None:
        return ""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict) and "content" in value[0]:
        value = value[0]["content"]
    if isinstance(value, (list, dict)):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and _runs_as_formula(value):
        return "'" + value
    return value


def _runs_as_formula(text):
    if text.startswith(("\t", "\r")):
        return True
    start = 0
    while start < len(text) and (text[start].isspace() or text[start] in INVISIBLE):
        start += 1
    return text.startswith(FORMULA_STARTS, start)


def _jsonl_write(rows, destination, on_progress):
    with open(destination, "w", encoding="utf-8") as out:
        for step, row in enumerate(rows, start=1):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            if on_progress:
                on_progress(step, len(rows))
    return len(rows)


def _csv_write(rows, destination, on_progress):
    """CSV for reading in a spreadsheet (JSONL is the lossless, re-importable export)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(destination, "w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns, restval="")
        writer.writeheader()
        for step, row in enumerate(rows, start=1):
            writer.writerow({key: csv_cell(value) for key, value in row.items()})
            if on_progress:
                on_progress(step, len(rows))
    return len(rows)
