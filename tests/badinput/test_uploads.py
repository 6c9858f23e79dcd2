"""The staff upload page (and the import command on the same files) with bad files: every
error names the file, the line and the field, the page is a 422 and nothing is stored. The
record-level matrix of tests/dataio/test_bad_files.py (not JSON, wrong types, unknown labels,
NUL in messages, oversized text...) is not repeated; these are the cases it does not reach."""

import gzip
import json
import tracemalloc

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.models import Comparison, Dialogue, Judgment
from annotation.services import batch_open
from dataio.import_jobs import import_job_run
from dataio.services import ImportRejected
from margin.models import Job
from tests.badinput.conftest import SCRIPT, assert_unchanged, db_snapshot
from tests.factories import ProjectFactory

# db_sensitive: PostgreSQL refuses NUL characters and over-long text where SQLite stores them,
# so scripts/test runs this matrix on both.
pytestmark = [pytest.mark.django_db, pytest.mark.db_sensitive]
PAIR = {"messages": [{"role": "user", "content": "Hi"}], "responses": [{"text": "A"}, {"text": "B"}]}


@pytest.fixture
def project(db):
    project = ProjectFactory(name="Helpful")
    batch_open(project=project)
    return project


def lines(*rows):
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def judged(**judgment):
    return {**PAIR, "judgments": [{"choice": "a", "annotator": "r1", **judgment}]}


def upload(client, project, content, name="data.jsonl", **fields):
    data = {"project": project.pk, "format": "margin", "file": SimpleUploadedFile(name, content), **fields}
    return client.post(reverse("dataio:import"), data)


BAD_FILES = {
    "invalid UTF-8 on a later line": (
        lines(PAIR, PAIR, b'{"messages": [{"role": "user", "content": "caf\xe9"}]}'),
        "data.jsonl, line 3, field “(line)”: not UTF-8 text: byte 0xe9 at byte 47 of the line",
    ),
    "invalid UTF-8 far into a big file": (
        lines(*[{**PAIR, "messages": [{"role": "user", "content": f"q{i} " + "x" * 200}]} for i in range(60)],
              b'{"messages": [{"role": "user", "content": "\xff"}]}'),
        "data.jsonl, line 61, field “(line)”: not UTF-8 text: byte 0xff",
    ),
    "raw NUL byte in a line": (
        lines(PAIR, b'{"messages": [{"role": "user", "content": "a\x00b"}]}'),
        "data.jsonl, line 2, field “(line)”: not JSON: Invalid control character at",
    ),
    "NUL in a judgment's rationale": (
        lines(judged(rationale="fine\u0000")), "data.jsonl, line 1, field “judgments[0].rationale”: contains a NUL",
    ),
    "NUL in a rater id": (
        lines(judged(annotator="r\u00001")), "line 1, field “judgments[0].annotator”: contains a NUL",
    ),
    "NUL in a model name": (
        lines({**PAIR, "responses": [{"text": "A", "model": "m\u0000"}, {"text": "B"}]}),
        "line 1, field “responses[0].model”: contains a NUL",
    ),
    "NUL in the source": (lines({**PAIR, "source": "x\u0000"}), "line 1, field “source”: contains a NUL"),
    "NUL in the origin": (lines({**PAIR, "origin": "x\u0000"}), "line 1, field “origin”: contains a NUL"),
    "NUL in metadata": (
        lines({**PAIR, "metadata": {"tags": ["ok", "bad\u0000"]}}), "line 1, field “metadata.tags[1]”: contains a NUL",
    ),
    "NUL in a metadata key": (
        lines(judged(metadata={"k\u0000": 1})), "line 1, field “judgments[0].metadata”: contains a NUL",
    ),
    "NaN in metadata": (
        lines(b'{"messages": [{"role": "user", "content": "Hi"}], "responses": [{"text": "A"}, {"text": "B"}], '
              b'"metadata": {"score": NaN}}'),
        "line 1, field “metadata.score”: NaN is not a number JSON can hold",
    ),
    "JSON nested too deeply": (
        lines(PAIR, b"[" * 100_000 + b"]" * 100_000), "data.jsonl, line 2, field “(line)”: JSON nested too deeply",
    ),
    "metadata nested too deeply": (
        lines({**PAIR, "metadata": json.loads('{"a": ' * 60 + "1" + "}" * 60)}),
        "line 1, field “metadata" + ".a" * 51 + "”: nested more than 50 levels deep",
    ),
    "rationale too long": (
        lines(judged(rationale="r" * (settings.MARGIN_MAX_TEXT_CHARS + 1))),
        f"line 1, field “judgments[0].rationale”: is {settings.MARGIN_MAX_TEXT_CHARS + 1} characters long",
    ),
    "unknown choice label": (lines(PAIR, judged(choice="c")), "line 2, field “judgments[0].choice”: unknown choice 'c'"),
    "choice of the wrong type": (lines(judged(choice=1)), "line 1, field “judgments[0].choice”: unknown choice 1"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_upload_of_a_bad_file_names_file_line_and_field_and_stores_nothing(staff_client, project, case):
    content, message = BAD_FILES[case]
    before = db_snapshot()
    response = upload(staff_client, project, content)
    assert response.status_code == 422
    page = response.content.decode()
    assert "nothing was imported" in page and message.replace("'", "&#x27;") in page, page[-1500:]
    assert_unchanged(before)


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_import_command_names_file_line_and_field_of_the_same_files(project, tmp_path, case):
    content, message = BAD_FILES[case]
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    before = db_snapshot()
    with pytest.raises(CommandError) as refused:
        call_command("import_data", str(path), project="Helpful", fmt="margin", verbosity=0)
    assert message in str(refused.value)
    assert_unchanged(before)


def test_skip_invalid_imports_the_lines_around_a_bad_byte(staff_client, project):
    content = lines({**PAIR, "messages": [{"role": "user", "content": "one"}]}, b'{"x": "\xe9"}',
                    {**PAIR, "messages": [{"role": "user", "content": "three"}]})
    response = upload(staff_client, project, content, skip_invalid="on")
    assert response.status_code == 200
    assert "line 2, field “(line)”: not UTF-8 text" in response.content.decode()
    assert sorted(Dialogue.objects.values_list("turns__content", flat=True)) == ["one", "three"]


def test_invalid_utf8_in_a_json_array_names_its_line(project, tmp_path):
    path = tmp_path / "pandalm.json"
    path.write_bytes(b'[\n{"instruction": "a"},\n{"instruction": "caf\xe9"}\n]')
    with pytest.raises(CommandError, match="pandalm.json, line 3, field “\\(file\\)”: not UTF-8 text: byte 0xe9"):
        call_command("import_data", str(path), project="Helpful", fmt="pandalm", verbosity=0)
    assert not Dialogue.objects.exists()


def test_a_utf8_byte_order_mark_is_not_an_error(staff_client, project):
    response = upload(staff_client, project, b"\xef\xbb\xbf" + lines(PAIR))
    assert response.status_code == 200 and Comparison.objects.count() == 1


def test_a_gzip_upload_is_held_to_the_upload_limit_once_decompressed(staff_client, project, tmp_path, settings):
    """A 530 KB gzip of a 520 MB JSON array raised the server's memory by 520 MB: the upload limit
    holds for the decompressed content too, and reading stops there."""
    settings.MARGIN_UPLOAD_MAX_BYTES = 2**20
    path = tmp_path / "bomb.json.gz"
    record = json.dumps({"instruction": "x" * 200, "response1": "a", "response2": "b"}).encode() + b",\n"
    with gzip.open(path, "wb") as out:  # 48 MB of JSON, written a block at a time
        out.write(b"[")
        for _ in range(200):
            out.write(record * 1000)
        out.write(b"{}]")
    assert path.stat().st_size < settings.MARGIN_UPLOAD_MAX_BYTES / 4
    response = upload(staff_client, project, path.read_bytes(), name="bomb.json.gz", format="pandalm")
    job = Job.objects.get(kind=Job.Kind.IMPORT_DATA)
    tracemalloc.start()
    try:
        with pytest.raises(ImportRejected):
            import_job_run(job_id=job.pk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"reading the upload took {peak / 2**20:.0f} MiB"
    page = staff_client.get(response["Location"]).content.decode()
    assert ("bomb.json.gz: The file is over the import limit of 1048576 bytes once decompressed "
            "(MARGIN_UPLOAD_MAX_BYTES); nothing was imported.") in page
    assert not Dialogue.objects.exists()


def test_a_path_like_file_name_is_kept_to_its_last_part(staff_client, project):
    response = upload(staff_client, project, lines(PAIR, {**PAIR, "messages": "x"}), name="../../etc/passwd.jsonl")
    page = response.content.decode()
    assert response.status_code == 422 and "passwd.jsonl, line 2, field “messages”" in page
    assert "../" not in page.split("Invalid records")[1].split("</ol>")[0]
    upload(staff_client, project, lines(PAIR), name="../../etc/passwd.jsonl", skip_invalid="on")
    assert Dialogue.objects.get().source == "passwd.jsonl"


def test_html_payloads_are_stored_as_text_and_shown_escaped(staff_client, project):
    row = {"messages": [{"role": "user", "content": SCRIPT}], "responses": [{"text": SCRIPT}, {"text": "B"}],
           "judgments": [{"choice": "a", "annotator": SCRIPT, "rationale": SCRIPT}]}
    response = upload(staff_client, project, lines(row), name="<b>x</b>.jsonl")
    assert response.status_code == 200 and "<script>alert" not in response.content.decode()
    judgment = Judgment.objects.get()
    assert judgment.rationale == SCRIPT and judgment.external_annotator == SCRIPT
    assert judgment.comparison.dialogue.turns.get().content == SCRIPT


def test_duplicate_records_in_a_file_become_one_comparison_and_are_counted(staff_client, project):
    response = upload(staff_client, project, lines(judged(), judged(), judged(annotator="r2")))
    page = response.content.decode()
    assert response.status_code == 200
    assert "1 comparisons, 2 judgments, 0 prompts added" in page
    assert "2 rows merged into an earlier row of the same pair" in page
    # The same file again adds nothing.
    page = upload(staff_client, project, lines(judged(), judged(annotator="r2"))).content.decode()
    assert "0 comparisons, 0 judgments, 0 prompts added" in page and "1 already present" in page
    assert Comparison.objects.count() == 1 and Judgment.objects.count() == 2


FORM_CASES = {
    "no file": ({"file": None}, "file", "This field is required."),
    "no fields at all": ({"project": None, "format": None, "file": None}, "project", "This field is required."),
    "unknown format": ({"format": "csv"}, "format", "Select a valid choice. csv is not one of"),
    "project of the wrong type": ({"project": "Helpful"}, "project", "Select a valid choice"),
    "batch of the wrong type": ({"batch": "two"}, "batch", "Enter a whole number."),
    "batch zero": ({"batch": "0"}, "batch", "greater than or equal to 1"),
    "batch past any integer": ({"batch": "9" * 30}, "batch", "less than or equal to"),
    "project past any integer": ({"project": "9" * 30}, "project", "Select a valid choice"),
    "NUL in the mapping": ({"format": "generic", "mapping": "prompt=q\x00"}, "mapping", "Null characters are not allowed."),
    "an empty file": ({"file": SimpleUploadedFile("empty.jsonl", b"")}, "file", "The submitted file is empty."),
}


@pytest.mark.parametrize("case", FORM_CASES, ids=list(FORM_CASES))
def test_upload_form_refuses_bad_fields(staff_client, project, case):
    changes, field, message = FORM_CASES[case]
    data = {"project": project.pk, "format": "margin", "file": SimpleUploadedFile("d.jsonl", lines(PAIR)), **changes}
    before = db_snapshot()
    response = staff_client.post(reverse("dataio:import"), {k: v for k, v in data.items() if v is not None})
    assert response.status_code == 422
    assert message in response.context["form"].errors[field][0]
    assert message.replace("'", "&#x27;") in response.content.decode()
    assert_unchanged(before)


def test_an_unknown_batch_is_refused_by_name(staff_client, project):
    before = db_snapshot()
    response = upload(staff_client, project, lines(PAIR), batch="7")
    assert response.status_code == 422 and "Project “Helpful” has no batch 7." in response.content.decode()
    assert_unchanged(before)


EXPORT_CASES = {
    "no project": ({"projects": ""}, "projects", "“” is not a valid value."),
    "project of the wrong type": ({"projects": "abc"}, "projects", "“abc” is not a valid value."),
    "unknown kind": ({"kind": "sql"}, "kind", "Select a valid choice."),
    "path-like output format": ({"output_format": "../../x"}, "output_format", "Select a valid choice."),
    "batches not numbers": ({"batches": "1, two"}, "batches", "Give batch numbers separated by commas"),
    "project past any integer": ({"projects": "9" * 30}, "projects", "Select a valid choice"),
    "batch past any integer": ({"batches": "9" * 30}, "batches", "Batch numbers stop at 2147483647."),
    "agreement out of range": ({"min_agreement": "2"}, "min_agreement", "less than or equal to 1"),
    "agreement not a number": ({"min_agreement": "most"}, "min_agreement", "Enter a number."),
    "NUL in the annotators": ({"exclude_annotators": "a\x00"}, "exclude_annotators", "Null characters are not allowed."),
}


@pytest.mark.parametrize("case", EXPORT_CASES, ids=list(EXPORT_CASES))
def test_export_form_refuses_bad_fields(staff_client, project, case):
    changes, field, message = EXPORT_CASES[case]
    response = staff_client.get(reverse("dataio:export"), {"projects": project.pk, "kind": "trl",
                                                         "output_format": "jsonl", **changes})
    assert response.status_code == 422
    assert message in response.context["form"].errors[field][0]


@pytest.mark.parametrize("changes, message", [
    ({"batches": "9"}, "No batch 9 in the chosen projects."),
    ({"exclude_annotators": "zed"}, "Unknown annotator(s) to exclude: zed."),
])
def test_export_filters_that_match_nothing_say_which(staff_client, project, changes, message):
    response = staff_client.get(reverse("dataio:export"), {"projects": project.pk, "kind": "trl",
                                                         "output_format": "jsonl", **changes})
    assert response.status_code == 422 and message in response.content.decode()
