"""A matrix of bad files: each gives a clear error (line and field) and leaves the database as it was."""

import gzip
import json

import pytest
from django.core.management import CommandError, call_command

from annotation.models import AuditEvent, Comparison, Dialogue, Judgment, Turn

pytestmark = pytest.mark.django_db

PAIR = {"messages": [{"role": "user", "content": "Hi"}], "responses": [{"text": "A"}, {"text": "B"}]}


def _line(**changes):
    return json.dumps({**PAIR, **changes})


BAD_FILES = {
    "not JSON": ("margin", [_line(), "{'messages': oops}"], "line 2, field “(line)”: not JSON"),
    "not an object": ("margin", [_line(), '"just text"'], "line 2, field “(record)”: expected a JSON object, got str"),
    "wrong type": ("margin", [_line(messages="Hi")], "line 1, field “messages”: expected list, got str"),
    "wrong type in a message": (
        "margin", [_line(messages=[{"role": "user", "content": 5}])],
        "line 1, field “messages[0].content”: expected text, got int",
    ),
    "missing field": ("hh", [json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: yo"})], "line 1, field “rejected”: is missing"),
    "missing responses text": ("margin", [_line(responses=[{"text": "A"}, {}])], "field “responses[1].text”: expected text, got NoneType"),
    "one response": ("margin", [_line(responses=[{"text": "A"}])], "needs exactly two responses, got 1"),
    "unknown label": (
        "autoj", [json.dumps({"prompt": "P", "response 1": "a", "response 2": "b", "label": 5})],
        "line 1, field “label”: unknown label 5; expected one of 0, 1, 2",
    ),
    "unknown strength": (
        "margin", [_line(judgments=[{"choice": "a", "strength": "much_better"}])],
        "field “judgments[0].strength”: unknown strength 'much_better'",
    ),
    "unknown role": ("margin", [_line(messages=[{"role": "bot", "content": "x"}])], "unknown role 'bot'"),
    "ends with the assistant": (
        "margin", [_line(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])],
        "the last message must be the user's",
    ),
    "empty prompt": ("margin", [_line(messages=[{"role": "user", "content": "   "}])], "“messages[0].content”: is empty"),
    "empty file": ("margin", [], "The file is empty; nothing was imported"),
    "array of non-objects": ("pandalm", ["[1, 2]"], "line 1, field “(record)”: expected a JSON object, got int"),
    "only blank lines": ("margin", ["", "   "], "The file is empty; nothing was imported"),
    "NUL character": ("margin", [_line(messages=[{"role": "user", "content": "a\u0000b"}])], "contains a NUL character"),
    "text too long": ("margin", [_line(responses=[{"text": "x" * 20_001}, {"text": "B"}])], "is 20001 characters long; the limit is 20000"),
    "safety label not a boolean": (
        "margin", [_line(judgments=[{"choice": "a", "a_safe": "yes"}])], "“judgments[0].a_safe”: expected true, false or null",
    ),
    "safety label a number": (
        "margin", [_line(judgments=[{"choice": "a", "b_safe": 1}])], "“judgments[0].b_safe”: expected true, false or null",
    ),
    "same rater twice": (
        "margin", [_line(judgments=[{"choice": "a", "annotator": "r1"}, {"choice": "b", "annotator": "r1"}])],
        "'r1' judges this pair twice",
    ),
    "wrong format chosen": ("hh", [_line()], "line 1, field “chosen”: is missing"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_file_gives_a_clear_error_and_changes_nothing(case, helpful, tmp_path, settings):
    fmt, lines, message = BAD_FILES[case]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(line + "\n" for line in lines) if lines else "", encoding="utf-8")
    before = [model.objects.count() for model in (Dialogue, Turn, Comparison, Judgment, AuditEvent)]
    with pytest.raises(CommandError) as refused:
        call_command("import_data", str(path), project="Helpful", fmt=fmt, verbosity=0)
    assert message in str(refused.value)
    assert [model.objects.count() for model in (Dialogue, Turn, Comparison, Judgment, AuditEvent)] == before


def test_a_huge_line_is_refused_without_reading_it_into_a_record(helpful, tmp_path, settings):
    settings.MARGIN_IMPORT_MAX_LINE_BYTES = 1000
    path = tmp_path / "huge.jsonl"
    path.write_text(_line() + "\n" + _line(responses=[{"text": "x" * 5000}, {"text": "B"}]) + "\n" + _line() + "\n")
    with pytest.raises(CommandError, match="line 2, field “\\(line\\)”: longer than the limit of 1000"):
        call_command("import_data", str(path), project="Helpful", fmt="margin", verbosity=0)
    assert not Comparison.objects.exists()
    # With --skip-invalid the huge line is skipped and the next line keeps its number.
    call_command("import_data", str(path), project="Helpful", fmt="margin", skip_invalid=True, verbosity=0)
    assert Comparison.objects.count() == 1


def test_file_size_and_record_count_limits(helpful, tmp_path, settings):
    path = tmp_path / "many.jsonl"
    path.write_text("".join(_line(messages=[{"role": "user", "content": f"q{i}"}]) + "\n" for i in range(5)))
    settings.MARGIN_IMPORT_MAX_RECORDS = 3
    with pytest.raises(CommandError, match="More than 3 records; split the file"):
        call_command("import_data", str(path), project="Helpful", fmt="margin", verbosity=0)
    settings.MARGIN_IMPORT_MAX_RECORDS = 100
    settings.MARGIN_IMPORT_MAX_BYTES = 100
    with pytest.raises(CommandError, match="the import limit is 100 bytes"):
        call_command("import_data", str(path), project="Helpful", fmt="margin", verbosity=0)
    assert not Dialogue.objects.exists()


@pytest.mark.parametrize("fmt, body", [
    ("margin", (_line() + "\n").encode() * 3 + b" " * 400_000),  # blank lines do not count as records
    ("pandalm", b"[" + b" " * 400_000 + b"]"),
])
def test_a_gzip_file_over_the_limit_once_decompressed_is_refused(helpful, tmp_path, settings, fmt, body):
    # Under 1 KB on disk, 400 KB inside: the limit applies to what is read, not to the file.
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(body))
    assert bomb.stat().st_size < 1000
    settings.MARGIN_IMPORT_MAX_BYTES = 100_000
    with pytest.raises(CommandError, match="bomb.json.gz: The file is over the import limit of 100000 bytes once decompressed"):
        call_command("import_data", str(bomb), project="Helpful", fmt=fmt, verbosity=0)
    assert not Dialogue.objects.exists()
    settings.MARGIN_IMPORT_MAX_BYTES = 1_000_000
    if fmt == "margin":  # under a higher limit the same file imports
        call_command("import_data", str(bomb), project="Helpful", fmt=fmt, verbosity=0)
        assert Comparison.objects.exists()


def test_not_utf8_and_broken_gzip_are_reported(helpful, tmp_path):
    latin = tmp_path / "latin.jsonl"
    record = {**PAIR, "messages": [{"role": "user", "content": "caf\u00e9"}]}
    latin.write_bytes(json.dumps(record, ensure_ascii=False).encode("latin-1") + b"\n")
    with pytest.raises(CommandError, match="latin.jsonl, line 1, field “\\(line\\)”: not UTF-8 text: byte 0xe9"):
        call_command("import_data", str(latin), project="Helpful", fmt="margin", verbosity=0)
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress((_line() + "\n").encode() * 50)[:-30])
    with pytest.raises(CommandError, match="cannot be read"):
        call_command("import_data", str(broken), project="Helpful", fmt="margin", verbosity=0)
    broken_array = tmp_path / "broken.json"
    broken_array.write_bytes(b"[" + b'{"a": "x"}, ' * 2000 + b'{"instruction": "caf\xe9"}]')  # past the first read
    with pytest.raises(CommandError, match="broken.json, line 1, field “\\(file\\)”: not UTF-8 text: byte 0xe9"):
        call_command("import_data", str(broken_array), project="Helpful", fmt="pandalm", verbosity=0)
    assert not Dialogue.objects.exists()


def test_command_arguments_are_checked(helpful, tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text(_line() + "\n")
    with pytest.raises(CommandError, match="No project named “Nope”"):
        call_command("import_data", str(path), project="Nope", fmt="margin")
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_data", str(tmp_path / "missing.jsonl"), project="Helpful", fmt="margin")
    with pytest.raises(CommandError, match="--map: mapping entry 'prompt' is not NAME=FIELD"):
        call_command("import_data", str(path), project="Helpful", fmt="generic", mapping="prompt")
    with pytest.raises(CommandError, match="invalid choice: 'csv'"):
        call_command("import_data", str(path), "--project", "Helpful", "--format", "csv")


def test_html_in_text_is_data_stored_verbatim(helpful, tmp_path):
    """Prompts about web pages contain markup: it is stored as written and escaped when shown
    (tests/dataio/test_views.py checks the escaping)."""
    html = '<script>alert("x")</script><b onmouseover="steal()">bold</b>'
    path = tmp_path / "html.jsonl"
    path.write_text(_line(messages=[{"role": "user", "content": html}]) + "\n")
    call_command("import_data", str(path), project="Helpful", fmt="margin", verbosity=0)
    assert Turn.objects.get().content == html
