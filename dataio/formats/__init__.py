"""One parser per format: a raw object read from a file (dataio.reading) -> an `ImportRecord`,
or RecordError naming the line and the field. Pure Python (no Django); docs/dataio.md lists every
format's fields.
"""

from pathlib import Path

from core.jsonio import RecordError
from dataio.formats.argilla import parse_argilla
from dataio.formats.autoj import parse_autoj
from dataio.formats.fields import ReadOptions
from dataio.formats.generic import parse_generic
from dataio.formats.hh import parse_hh
from dataio.formats.labelstudio import parse_labelstudio
from dataio.formats.margin import parse_margin
from dataio.formats.pandalm import parse_pandalm
from dataio.formats.pku import parse_pku
from dataio.formats.trl import parse_trl
from dataio.formats.tulu import parse_tulu
from dataio.reading import raw_records
from dataio.records import Limits, record_validate

__all__ = ["PARSERS", "ReadOptions", "file_records", "mapping_parse", *(f"parse_{name}" for name in (
    "argilla", "autoj", "generic", "hh", "labelstudio", "margin", "pandalm", "pku", "tulu", "trl"))]

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


def file_records(path, fmt, options=None, limits=None):
    """The valid records of a data file, in order, with no database: benchmarks and scripts read
    data sets this way (the importer, dataio.services, reports the invalid ones instead)."""
    options, limits = options or ReadOptions(source=Path(path).name), limits or Limits()
    with open(path, "rb") as stream:
        for line, raw in raw_records(stream, limits):
            try:
                record = None if isinstance(raw, RecordError) else PARSERS[fmt](raw, line, options)
                if record is not None:
                    yield record_validate(record, limits)
            except RecordError:
                continue
