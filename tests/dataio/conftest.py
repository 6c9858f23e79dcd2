import gzip
import json

import pytest
from django.conf import settings

from annotation.services import batch_open
from dataio.services import data_import
from tests.factories import ProjectFactory, SafetyProjectFactory


@pytest.fixture
def helpful(db):
    project = ProjectFactory(name="Helpful")
    batch_open(project=project)
    return project


@pytest.fixture
def safety(db):
    project = SafetyProjectFactory(name="Safety")
    batch_open(project=project)
    return project


@pytest.fixture
def shared_data():
    return settings.MARGIN_SHARED_DATA


def write_jsonl(path, rows, gzipped=False):
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    if gzipped:
        with gzip.open(path, "wt", encoding="utf-8") as out:
            out.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def import_file(project, path, fmt, **options):
    with open(path, "rb") as stream:
        return data_import(project=project, stream=stream, fmt=fmt, source_name=path.name, **options)
