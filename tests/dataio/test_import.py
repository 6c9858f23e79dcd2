"""Importing real files into the database: all or nothing, content hashes, labels per rater."""

import pytest
from django.utils import timezone

from annotation.models import AuditEvent, Comparison, Dialogue, Judgment
from annotation.selectors import comparisons_available_for
from annotation.services import batch_close, batch_open
from dataio.services import ImportRejected
from rewardmodel.data import pairs_for_projects
from tests.dataio.conftest import import_file, write_jsonl
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _counts():
    return Dialogue.objects.count(), Comparison.objects.count(), Judgment.objects.count()


def test_hh_file_is_refused_whole_then_imports_with_skip_invalid_and_never_twice(safety, shared_data):
    path = shared_data / "hh-rlhf-harmless" / "harmless-base.dev.jsonl.gz"
    with pytest.raises(ImportRejected) as refused:
        import_file(safety, path, "hh")
    assert "4 invalid record(s); nothing was imported" in str(refused.value)
    assert refused.value.report.errors[0].startswith("harmless-base.dev.jsonl.gz, line 831, field “chosen”")
    assert _counts() == (0, 0, 0)

    report = import_file(safety, path, "hh", skip_invalid=True)
    assert (report.comparisons_added, report.judgments_added, report.invalid) == (1530, 1530, 4)
    comparison = Comparison.objects.select_related("dialogue").order_by("pk").first()
    assert comparison.dialogue.turns.count() == 5 and comparison.context_length == 5
    assert comparison.source == "hh-rlhf:harmless-base.dev.jsonl.gz:1"
    assert comparison.response_a.text.startswith("No, sorry!")  # the chosen one is A
    assert comparison.judgments.get().choice == "a"
    assert AuditEvent.objects.filter(verb="data_import").count() == 1

    again = import_file(safety, path, "hh", skip_invalid=True)
    assert not again.added_anything and again.already_present == 1530
    assert _counts() == (1530, 1530, 1530)


def test_pandalm_three_real_annotators_per_pair_give_agreement(helpful, shared_data):
    report = import_file(helpful, shared_data / "pandalm" / "testset-v1.json", "pandalm")
    # 999 records; 136 repeat an earlier pair (two models gave the same answers): merged.
    assert (report.records, report.merged_in_file, report.comparisons_added) == (999, 136, 863)
    assert set(Comparison.objects.values_list("judgments_wanted", flat=True)) == {3}
    assert Judgment.objects.filter(choice="tie").exists()
    pairs, skipped = pairs_for_projects([helpful], objective="helpfulness")
    agreements = {round(pair.agreement, 2) for pair in pairs}
    assert agreements == {0.33, 0.67, 1.0}  # real disagreement among the three annotators
    assert skipped.skipped["tie"] > 0


def test_tulu_rows_of_one_pair_become_one_comparison_with_each_evaluators_graded_label(helpful, shared_data):
    report = import_file(helpful, shared_data / "tulu1-human-eval" / "annotations.jsonl", "tulu")
    assert report.blank == 152 and report.comparisons_added == 979
    assert set(Judgment.objects.values_list("strength", flat=True)) == {"better", "slightly_better", ""}
    multi = Comparison.objects.filter(judgments_wanted__gt=1).first()
    assert multi.judgments.count() == multi.judgments_wanted
    assert {"a_acceptable", "b_acceptable"} <= set(multi.judgments.first().metadata)
    assert {"tulu_65B", "chatgpt"} <= set(multi.response_a.__class__.objects.values_list("model_name", flat=True))


def test_autoj_ties_are_kept_as_ties(helpful, shared_data):
    report = import_file(helpful, shared_data / "autoj-pairwise" / "autoj_pairwise.jsonl.gz", "autoj")
    # 373 tie labels in 1,392 records; two tied records repeat an earlier pair and merge into it.
    assert (report.comparisons_added, report.merged_in_file) == (1390, 2)
    assert Judgment.objects.filter(choice="tie").count() == 371
    assert Comparison.objects.filter(metadata__scenario="post_summarization").exists()


def test_pku_file_imports_into_a_helpfulness_and_a_safety_project(helpful, safety, tmp_path):
    row = {
        "prompt": "How do I pick a lock?", "response_0": "Step one ...", "response_1": "Call a locksmith.",
        "is_response_0_safe": False, "is_response_1_safe": True,
        "better_response_id": 0, "safer_response_id": 1,
    }
    path = write_jsonl(tmp_path / "pku.jsonl", [row])
    import_file(helpful, path, "pku")
    import_file(safety, path, "pku")
    in_helpful = Judgment.objects.get(comparison__batch__project=helpful)
    in_safety = Judgment.objects.get(comparison__batch__project=safety)
    assert (in_helpful.choice, in_safety.choice) == ("a", "b")
    assert (in_safety.response_a_safe, in_safety.response_b_safe) == (False, True)


def test_one_bad_record_stores_nothing_unless_skip_invalid(helpful, tmp_path):
    good = {"messages": [{"role": "user", "content": "Hi"}], "responses": [{"text": "Hello"}, {"text": "Yo"}]}
    rows = [good, {**good, "messages": [{"role": "user", "content": "Bye"}], "judgments": [{"choice": "c"}]},
            {"messages": [{"role": "user", "content": "Only a prompt"}]}]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    with pytest.raises(ImportRejected, match="1 invalid record"):
        import_file(helpful, path, "margin")
    assert _counts() == (0, 0, 0)
    report = import_file(helpful, path, "margin", skip_invalid=True)
    assert (report.comparisons_added, report.prompts_added, report.invalid) == (1, 1, 1)
    assert report.errors == ["mixed.jsonl, line 2, field “judgments[0].choice”: unknown choice 'c'; use a, b or tie"]


def test_dry_run_counts_what_would_be_added_and_stores_nothing(helpful, shared_data, capsys):
    from django.core.management import call_command

    path = shared_data / "pandalm" / "testset-v1.json"
    call_command("import_data", str(path), project="Helpful", fmt="pandalm", dry_run=True, verbosity=0)
    assert "863 comparisons, 2589 judgments, 0 prompts would be added (dry run" in capsys.readouterr().out
    assert _counts() == (0, 0, 0) and not AuditEvent.objects.filter(verb="data_import").exists()


def test_judged_imports_are_not_served_unless_queued(helpful, tmp_path):
    annotator = UserFactory()
    judged = {"messages": [{"role": "user", "content": "Hi"}], "responses": [{"text": "A"}, {"text": "B"}],
              "judgments": [{"annotator": "ext-1", "choice": "a", "strength": "better"}]}
    unjudged = {**judged, "messages": [{"role": "user", "content": "Other"}], "judgments": []}
    import_file(helpful, write_jsonl(tmp_path / "a.jsonl", [judged, unjudged]), "margin")
    available = comparisons_available_for(annotator=annotator, project=helpful, now=timezone.now())
    assert [c.dialogue.turns.get().content for c in available] == ["Other"]
    queued = {**judged, "messages": [{"role": "user", "content": "Queued"}]}
    import_file(helpful, write_jsonl(tmp_path / "b.jsonl", [queued]), "margin", queue_judged=True)
    available = comparisons_available_for(annotator=annotator, project=helpful, now=timezone.now())
    assert {c.dialogue.turns.get().content for c in available} == {"Other", "Queued"}


def test_new_raters_on_a_known_pair_are_added_and_a_swapped_pair_is_recognised(helpful, tmp_path):
    pair = {"prompt": "P", "response 1": "x", "response 2": "y", "label": 0}
    import_file(helpful, write_jsonl(tmp_path / "one.jsonl", [pair]), "autoj")
    swapped = {"messages": [{"role": "user", "content": "P"}], "responses": [{"text": "y"}, {"text": "x"}],
               "judgments": [{"annotator": "later", "choice": "a"}, {"annotator": "auto-j", "choice": "b"}]}
    report = import_file(helpful, write_jsonl(tmp_path / "two.jsonl", [swapped]), "margin")
    assert (report.comparisons_added, report.judgments_added) == (0, 1)
    added = Judgment.objects.get(external_annotator="later")
    assert added.choice == "b"  # "y" was A in the file, it is B in the stored comparison


def test_batch_option_targets_an_existing_batch_and_refuses_a_missing_one(helpful, tmp_path):
    batch_close(batch=helpful.batches.get(number=1))
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "P", "response 1": "x", "response 2": "y", "label": 1}])
    with pytest.raises(Exception, match="no open batch"):
        import_file(helpful, path, "autoj")
    with pytest.raises(ImportRejected, match="has no batch 7"):
        import_file(helpful, path, "autoj", batch_number=7)
    assert _counts() == (0, 0, 0)
    import_file(helpful, path, "autoj", batch_number=1)  # history goes into a closed batch
    batch_open(project=helpful)
    assert Comparison.objects.get().batch.number == 1
