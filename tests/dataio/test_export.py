"""Exports: TRL preference rows with margin and metadata, filters, pseudonyms, formats, round trips."""

import json

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Comparison, Demonstration, Judgment, Project
from annotation.services import batch_close, batch_open
from dataio.exports import ExportFilters, annotator_pseudonym, preference_rows
from dataio.writers import ExportError
from tests.dataio.conftest import import_file, write_jsonl
from tests.factories import ComparisonFactory, UserFactory

pytestmark = pytest.mark.django_db


def _judge(comparison, annotator, choice, strength="better", a_safe=None, b_safe=None):
    return Judgment.objects.create(
        comparison=comparison, annotator=annotator, choice=choice, strength=strength,
        response_a_safe=a_safe, response_b_safe=b_safe, a_on_left=True,
    )


@pytest.fixture
def judged(helpful, safety):
    """Helpfulness: one pair judged by three annotators (2 vs 1), one by one annotator in batch 2.
    Safety: one pair with safety labels."""
    alice, bob, carol = (UserFactory(username=n) for n in ("alice", "bob", "carol"))
    first = ComparisonFactory(batch=helpful.batches.get(number=1))
    _judge(first, alice, "b", "significantly_better")
    _judge(first, bob, "b", "better")
    _judge(first, carol, "a", "slightly_better")
    batch_close(batch=helpful.batches.get(number=1))
    second = ComparisonFactory(batch=batch_open(project=helpful))
    _judge(second, alice, "a", "slightly_better")
    risky = ComparisonFactory(batch=safety.batches.get(number=1))
    _judge(risky, bob, "a", "better", a_safe=True, b_safe=False)
    return {"first": first, "second": second, "risky": risky}


def test_trl_rows_carry_chat_messages_margin_and_metadata(judged, helpful, safety):
    rows, skipped = preference_rows(ExportFilters(projects=[helpful, safety]))
    by_id = {row["comparison_id"]: row for row in rows}
    first = by_id[judged["first"].pk]
    assert first["prompt"] == [{"role": "user", "content": judged["first"].dialogue.turns.get().content}]
    assert first["chosen"] == [{"role": "assistant", "content": "Response B text"}]
    assert first["rejected"] == [{"role": "assistant", "content": "Response A text"}]
    # The lower median of the agreeing votes (significantly better, better) is "significantly
    # better" (rewardmodel.data.aggregate); the project's small margin for it is 1.
    assert first["strength"] == "significantly_better" and first["margin"] == 1.0
    assert first["agreement"] == pytest.approx(2 / 3) and first["votes"] == 3
    assert (first["project"], first["batch"], first["objective"]) == ("Helpful", 1, "helpfulness")
    voters = judged["first"].judgments.order_by("pk").values_list("annotator_id", flat=True)
    assert first["annotators"] == [annotator_pseudonym(pk) for pk in voters]
    risky = by_id[judged["risky"].pk]
    assert (risky["chosen_safe"], risky["rejected_safe"], risky["safety_bin"]) == (
        True, False, "chosen_safe_other_unsafe")
    assert skipped == {}


def test_no_username_leaves_in_an_export(judged, helpful, safety, tmp_path):
    for kind in ("trl", "margin"):
        out = tmp_path / f"{kind}.jsonl"
        call_command("export_data", str(out), "--project", "Helpful", "--project", "Safety", kind=kind, verbosity=0)
        text = out.read_text()
        assert not any(name in text for name in ("alice", "bob", "carol"))
        assert annotator_pseudonym(judged["first"].judgments.first().annotator_id) in text


def test_filters_batch_objective_agreement_and_annotator(judged, helpful, safety):
    def ids(**filters):
        rows, _ = preference_rows(ExportFilters(projects=[helpful, safety], **filters))
        return {row["comparison_id"] for row in rows}

    first, second, risky = judged["first"].pk, judged["second"].pk, judged["risky"].pk
    assert ids() == {first, second, risky}
    assert ids(batches=[2]) == {second}
    assert ids(objective="safety") == {risky}
    assert ids(min_agreement=0.9) == {second, risky}
    # Without alice, the first pair is 1 vs 1 (a tie, left out) and the second has no votes.
    assert ids(exclude_annotators=["alice"]) == {risky}
    # bob by his exported pseudonym: the first pair becomes 1 vs 1, the safety pair loses its vote.
    assert ids(exclude_annotators=[annotator_pseudonym(judged["risky"].judgments.get().annotator_id)]) == {second}
    with pytest.raises(ExportError, match="Unknown annotator\\(s\\) to exclude: mallory"):
        ids(exclude_annotators=["mallory"])
    with pytest.raises(ExportError, match="No batch 9"):
        ids(batches=[9])
    with pytest.raises(ExportError, match="between 0 and 1"):
        ids(min_agreement=2)


def test_annotators_staff_excluded_from_training_are_left_out_of_votes_and_names(judged, helpful):
    from annotation.models import AnnotatorProfile

    carol = judged["first"].judgments.get(choice="a").annotator
    AnnotatorProfile.objects.create(user=carol, exclude_from_training=True)
    rows, _ = preference_rows(ExportFilters(projects=[helpful]))
    first = next(row for row in rows if row["comparison_id"] == judged["first"].pk)
    assert first["votes"] == 2 and first["agreement"] == 1.0
    assert annotator_pseudonym(carol.pk) not in first["annotators"] and len(first["annotators"]) == 2


def test_imported_raters_can_be_excluded(helpful, shared_data):
    import_file(helpful, shared_data / "pandalm" / "testset-v1.json", "pandalm")
    rows, _ = preference_rows(ExportFilters(projects=[helpful]))
    without, _ = preference_rows(ExportFilters(projects=[helpful], exclude_annotators=["pandalm:annotator3"]))
    assert all(len(row["annotators"]) == 3 for row in rows)
    assert all("pandalm:annotator3" not in row["annotators"] for row in without)
    assert len(rows) != len(without)


def test_parquet_and_datasets_outputs_load_with_hugging_face_datasets(judged, tmp_path):
    from datasets import load_dataset, load_from_disk

    call_command("export_data", str(tmp_path / "pairs.parquet"), project=["Helpful"], output_format="parquet", verbosity=0)
    call_command("export_data", str(tmp_path / "pairs"), project=["Helpful"], output_format="datasets", verbosity=0)
    parquet = load_dataset("parquet", data_files=str(tmp_path / "pairs.parquet"), split="train")
    on_disk = load_from_disk(str(tmp_path / "pairs"))
    for dataset in (parquet, on_disk):
        assert dataset.num_rows == 2
        assert dataset[0]["chosen"][0]["role"] == "assistant"
        assert {"margin", "strength", "agreement", "batch", "annotators"} <= set(dataset.column_names)


def test_sft_export_writes_demonstrations_as_chat_messages(helpful, tmp_path):
    comparison = ComparisonFactory(batch=helpful.batches.get())
    writer = UserFactory(username="writer")
    Demonstration.objects.create(dialogue=comparison.dialogue, context_length=1, annotator=writer, text="The ideal answer.")
    out = tmp_path / "sft.jsonl"
    call_command("export_data", str(out), project=["Helpful"], kind="sft", verbosity=0)
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["messages"][-1] == {"role": "assistant", "content": "The ideal answer."}
    assert row["messages"][0]["role"] == "user" and row["annotator"] == annotator_pseudonym(writer.pk)


def test_sft_export_writes_rejection_sampling_winners(tmp_path, db):
    from rlhf.models import PolicyVersion
    from rlhf.rejection_sampling import SAMPLES_NAME, Winner, winners_jsonl

    (tmp_path / "rs1").mkdir()
    prompt = [{"role": "user", "content": "Name a prime number."}]
    (tmp_path / "rs1" / SAMPLES_NAME).write_text(winners_jsonl([Winner(prompt, "Seven.", 1.25)]))
    PolicyVersion.objects.create(name="RLHF-V1", kind="rejection_sampling", checkpoint_path=str(tmp_path / "rs1"))
    PolicyVersion.objects.create(name="SFT", checkpoint_path=str(tmp_path / "none"))
    out = tmp_path / "winners.jsonl"
    call_command("export_data", str(out), kind="sft", policy_version=["RLHF-V1"], verbosity=0)
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["messages"] == [*prompt, {"role": "assistant", "content": "Seven."}]
    assert (row["policy_version"], row["reward"], row["source"]) == ("RLHF-V1", 1.25, "RLHF-V1")
    with pytest.raises(CommandError, match="has no rejection-sampling winners"):
        call_command("export_data", str(out), kind="sft", policy_version=["SFT"], verbosity=0)
    with pytest.raises(CommandError, match="No policy version named “V9”"):
        call_command("export_data", str(out), kind="sft", policy_version=["V9"], verbosity=0)
    with pytest.raises(CommandError, match="goes with --kind sft"):
        call_command("export_data", str(out), policy_version=["RLHF-V1"], verbosity=0)
    with pytest.raises(CommandError, match="Choose at least one project"):
        call_command("export_data", str(out), verbosity=0)


def test_export_command_refuses_bad_input(judged, tmp_path):
    with pytest.raises(CommandError, match="No project named “Nope”"):
        call_command("export_data", str(tmp_path / "x.jsonl"), project=["Nope"])
    with pytest.raises(CommandError, match="does not exist"):
        call_command("export_data", str(tmp_path / "no" / "x.jsonl"), project=["Helpful"])
    with pytest.raises(CommandError, match="Unknown annotator"):
        call_command("export_data", str(tmp_path / "x.jsonl"), project=["Helpful"], exclude_annotator=["zed"])
    with pytest.raises(CommandError, match="Nothing to export"):
        call_command("export_data", str(tmp_path / "x.parquet"), project=["Helpful"], output_format="parquet",
                     min_agreement=1.0, batch=[1])


def _margin_export(project, path):
    call_command("export_data", str(path), project=[project.name], kind="margin", verbosity=0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row.pop("project", None)
    return rows


def test_round_trip_import_export_import_adds_nothing_and_loses_nothing(judged, helpful, shared_data, tmp_path):
    import_file(helpful, shared_data / "tulu1-human-eval" / "annotations.jsonl", "tulu")
    write_jsonl(tmp_path / "prompts.jsonl", [{"messages": [{"role": "user", "content": "A prompt to answer"}]}])
    import_file(helpful, tmp_path / "prompts.jsonl", "margin")
    exported = _margin_export(helpful, tmp_path / "one.jsonl")
    assert len(exported) == 2 + 979 + 1

    # Back into the same project: nothing new.
    report = import_file(helpful, tmp_path / "one.jsonl", "margin", batch_number=2)
    assert not report.added_anything and report.already_present == len(exported)

    # Into an empty project: the same content comes out again, judgment for judgment (all in
    # the batch the import went to, where the original spread over batches 1 and 2).
    copy = Project.objects.create(name="Copy", objective="helpfulness", guidelines="g")
    batch_open(project=copy)
    import_file(copy, tmp_path / "one.jsonl", "margin")
    again = _margin_export(copy, tmp_path / "two.jsonl")
    for row in exported + again:
        row.pop("batch", None)
    assert again == exported
    assert Judgment.objects.filter(comparison__batch__project=copy).count() == \
        Judgment.objects.filter(comparison__batch__project=helpful).count()


def test_trl_export_re_imports_without_duplicates(judged, helpful, tmp_path):
    out = tmp_path / "trl.jsonl"
    call_command("export_data", str(out), project=["Helpful"], verbosity=0)
    before = Comparison.objects.count(), Judgment.objects.count()
    report = import_file(helpful, out, "trl")
    assert not report.added_anything
    assert (Comparison.objects.count(), Judgment.objects.count()) == before
