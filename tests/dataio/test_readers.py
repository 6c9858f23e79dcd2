"""Each format's reader on real records from ../shared/data and on the public export shapes."""

import gzip
import io
import json

import pytest

from dataio.formats import (
    ReadOptions,
    mapping_parse,
    parse_argilla,
    parse_autoj,
    parse_generic,
    parse_hh,
    parse_labelstudio,
    parse_pandalm,
    parse_pku,
    parse_tulu,
)
from dataio.reading import raw_records
from dataio.records import Label, Limits, RecordError, record_validate, records_merge

OPTIONS = ReadOptions(source="test.jsonl")


def _records(path, parse, options=OPTIONS):
    """(valid records, lines of the invalid ones) of a whole file."""
    records, bad_lines = [], []
    with open(path, "rb") as stream:
        for line, raw in raw_records(stream, Limits()):
            try:
                records.append(record_validate(parse(raw, line, options), Limits()))
            except RecordError:
                bad_lines.append(line)
    return records, bad_lines


def test_hh_transcripts_split_into_the_shared_context_and_the_two_last_assistant_turns(shared_data):
    path = shared_data / "hh-rlhf-harmless" / "harmless-base.dev.jsonl.gz"
    raw = json.loads(gzip.open(path, "rt").readline())
    record = record_validate(parse_hh(raw, 1, OPTIONS), Limits())
    # Line 1: five shared turns (Human, Assistant, Human, Assistant, Human), then the two
    # different final Assistant turns.
    assert [m["role"] for m in record.context] == ["user", "assistant", "user", "assistant", "user"]
    assert record.context[0]["content"] == "what are some pranks with a pen i can do?"
    assert record.context[2]["content"] == "yep"
    assert record.context[4]["content"] == "okay some of these do not have anything to do with pens"
    assert record.responses[0]["text"].startswith("No, sorry!  All of these involve a pen")
    assert raw["chosen"].endswith(record.responses[0]["text"])
    assert raw["rejected"].endswith(record.responses[1]["text"])
    assert record.labels == [Label("a")]  # the chosen transcript is response A
    records, bad_lines = _records(path, parse_hh)
    assert len(records) == 1530
    for record in records:
        assert record.context[-1]["role"] == "user"
        assert record.context[0]["role"] == "user"
    # Four transcripts lack the blank line before a "Human:" turn, so their prefixes differ.
    assert bad_lines == [831, 1130, 1300, 1301]


def test_pandalm_gives_three_annotators_labels_per_pair_with_ties(shared_data):
    items = json.loads((shared_data / "pandalm" / "testset-v1.json").read_text())
    record = parse_pandalm(items[0], 1, OPTIONS)
    assert [label.rater for label in record.labels] == [f"pandalm:annotator{i}" for i in (1, 2, 3)]
    assert [label.choice for label in record.labels] == ["b", "b", "b"]  # annotator1..3 = 2
    assert [r["model_name"] for r in record.responses] == ["bloom-7b", "llama-7b"]
    assert record.context[0]["content"].startswith(items[0]["instruction"])
    assert items[0]["input"] in record.context[0]["content"]
    tie = next(item for item in items if item["annotator1"] == 0)
    assert parse_pandalm(tie, 2, OPTIONS).labels[0].choice == "tie"
    # The source stores a model's answer "True" as a JSON boolean: read back as text.
    boolean = next(item for item in items if item["response1"] is True)
    assert parse_pandalm(boolean, 3, OPTIONS).responses[0]["text"] == "True"


def test_tulu_graded_preferences_become_strength_levels_and_acceptability_is_kept(shared_data):
    rows = [json.loads(line) for line in open(shared_data / "tulu1-human-eval" / "annotations.jsonl")]
    seen = {}
    for number, row in enumerate(rows, start=1):
        record = parse_tulu(row, number, OPTIONS)
        if record is None:
            assert all(v is None for v in row.values())  # the spreadsheet's blank rows
            continue
        seen[row["preference"]] = record.labels[0]
    assert (seen["a-is-better"].choice, seen["a-is-better"].strength) == ("a", "better")
    assert (seen["b-is-slightly-better"].choice, seen["b-is-slightly-better"].strength) == ("b", "slightly_better")
    assert (seen["tie"].choice, seen["tie"].strength) == ("tie", "")
    first = parse_tulu(rows[0], 1, OPTIONS).labels[0]
    assert first.rater == "tulu:yo" and first.metadata["a_acceptable"] is True


def test_autoj_label_two_is_a_tie(shared_data):
    with gzip.open(shared_data / "autoj-pairwise" / "autoj_pairwise.jsonl.gz", "rt") as lines:
        rows = [json.loads(line) for line in lines]
    by_label = {row["label"]: parse_autoj(row, 1, OPTIONS) for row in rows}
    assert {k: r.labels[0].choice for k, r in by_label.items()} == {0: "a", 1: "b", 2: "tie"}
    assert by_label[0].metadata["scenario"]


PKU = {
    "prompt": "How do I pick a lock?",
    "response_0": "Here is how to pick any lock ...",
    "response_1": "I can't help with breaking into property; a locksmith can help you.",
    "is_response_0_safe": False,
    "is_response_1_safe": True,
    "better_response_id": 0,
    "safer_response_id": 1,
    "response_0_severity_level": 2,
}


def test_pku_gives_the_helpfulness_or_the_safety_label_by_objective_with_safety_labels():
    helpful = parse_pku(PKU, 1, ReadOptions(objective="helpfulness"))
    safe = parse_pku(PKU, 1, ReadOptions(objective="safety"))
    assert helpful.labels[0].choice == "a" and safe.labels[0].choice == "b"
    for record in (helpful, safe):
        assert (record.labels[0].a_safe, record.labels[0].b_safe) == (False, True)
    assert helpful.metadata["response_0_severity_level"] == 2
    with pytest.raises(RecordError, match="safer_response_id.*unknown label 2"):
        parse_pku({**PKU, "safer_response_id": 2}, 7, ReadOptions(objective="safety"))


def test_generic_mapping_reads_other_field_names_and_label_values():
    options = ReadOptions(mapping=mapping_parse(
        "prompt=question,response_a=first,response_b=second,label=winner,label_a=1,label_b=2,label_tie=0,rater=who"
    ))
    raw = {"question": "Q?", "first": "one", "second": "two", "winner": 2, "who": "r7"}
    record = parse_generic(raw, 4, options)
    assert record.labels == [Label("b", rater="r7")]
    with pytest.raises(RecordError, match="line 4, field “winner”: unknown label 3"):
        parse_generic({**raw, "winner": 3}, 4, options)
    with pytest.raises(ValueError, match="not NAME=FIELD"):
        mapping_parse("prompt")


def test_label_studio_pairwise_export():
    task = {
        "id": 12,
        "data": {"prompt": "Say hi", "answer1": "Hi!", "answer2": "Go away."},
        "annotations": [
            {"completed_by": 3, "was_cancelled": False,
             "result": [{"from_name": "comparison", "to_name": "answer1,answer2", "type": "pairwise",
                         "value": {"selected": "left"}}]},
            {"completed_by": {"id": 4, "email": "x@example.org"}, "result": [
                {"type": "pairwise", "value": {"selected": "right"}}]},
            {"completed_by": 5, "was_cancelled": True, "result": []},
        ],
    }
    record = parse_labelstudio(task, 1, OPTIONS)
    assert [(label.choice, label.rater) for label in record.labels] == [("a", "labelstudio:3"), ("b", "labelstudio:4")]
    task["annotations"][0]["result"][0]["value"]["selected"] = "middle"
    with pytest.raises(RecordError, match="selected.*'middle'"):
        parse_labelstudio(task, 1, OPTIONS)


def test_argilla_ranking_exports_v1_and_v2():
    v1 = {
        "fields": {"prompt": "Say hi", "response1": "Hi!", "response2": "Go away."},
        "responses": [
            {"user_id": "u1", "status": "submitted", "values": {"ranking": {"value": [
                {"value": "response1", "rank": 1}, {"value": "response2", "rank": 2}]}}},
            {"user_id": "u2", "status": "discarded", "values": {}},
            {"user_id": "u3", "status": "submitted", "values": {"ranking": {"value": [
                {"value": "response1", "rank": 1}, {"value": "response2", "rank": 1}]}}},
        ],
    }
    assert [(label.choice, label.rater) for label in parse_argilla(v1, 1, OPTIONS).labels] == [
        ("a", "argilla:u1"), ("tie", "argilla:u3")
    ]
    v2 = {"fields": v1["fields"], "responses": {"ranking": [{"value": ["response2", "response1"], "user_id": "u9"}]}}
    assert [(label.choice, label.rater) for label in parse_argilla(v2, 1, OPTIONS).labels] == [("b", "argilla:u9")]


def test_rows_of_one_pair_merge_and_a_swapped_pair_flips_its_labels():
    base = parse_autoj({"prompt": "P", "response 1": "x", "response 2": "y", "label": 0}, 1, OPTIONS)
    base.labels[0].rater = "r1"
    other = parse_autoj({"prompt": "P", "response 1": "y", "response 2": "x", "label": 0}, 2, OPTIONS)
    other.labels[0].rater = "r2"
    [merged] = records_merge([base, other])
    assert [(label.rater, label.choice) for label in merged.labels] == [("r1", "a"), ("r2", "b")]


def test_json_array_files_and_gzip_are_detected_by_content():
    array = io.BytesIO(b' [{"a": 1}, {"a": 2}]')
    assert [line for line, _ in raw_records(array, Limits())] == [1, 2]
    zipped = io.BytesIO(gzip.compress(b'{"a": 1}\n\n{"a": 2}\n'))
    assert [line for line, _ in raw_records(zipped, Limits())] == [1, 3]
