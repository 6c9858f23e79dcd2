"""The annotation services the importer stores through: comparisons with their origin, and
raters' labels as judgments (one per rater, so re-importing adds nothing)."""

import pytest

from annotation import services
from annotation.models import Judgment
from dataio.records import Label
from tests.factories import BatchFactory, ComparisonFactory, DialogueFactory, JudgmentFactory

pytestmark = pytest.mark.django_db


def test_comparison_is_created_with_where_it_came_from():
    batch = BatchFactory()
    comparison = services.comparison_create(
        batch=batch,
        dialogue=DialogueFactory(project=batch.project),
        context_length=1,
        responses=[{"text": "Yes."}, {"text": "No."}],
        source="hh-rlhf:harmless-base.dev.jsonl.gz:7",
        metadata={"scenario": "refusal"},
    )
    comparison.refresh_from_db()
    assert comparison.source == "hh-rlhf:harmless-base.dev.jsonl.gz:7"
    assert comparison.metadata == {"scenario": "refusal"}


def test_imported_labels_are_stored_once_per_rater():
    comparison = ComparisonFactory()
    labels = [
        Label(choice="a", strength="better", a_safe=True, b_safe=False, rater="r1",
              rationale="  A refuses.  ", metadata={"confidence": 3}),
        Label(choice="tie", rater="r2"),
    ]
    assert services.judgments_import(comparison=comparison, labels=labels) == 2
    stored = Judgment.objects.get(comparison=comparison, external_annotator="r1")
    assert (stored.choice, stored.strength, stored.response_a_safe, stored.response_b_safe) == (
        "a", "better", True, False
    )
    assert stored.rationale == "A refuses." and stored.metadata == {"confidence": 3}
    assert stored.annotator is None
    assert services.judgments_import(comparison=comparison, labels=labels) == 0
    assert comparison.judgments.count() == 2


def test_our_annotators_exported_judgments_and_aggregates_are_not_stored_again():
    comparison = ComparisonFactory()
    ours = JudgmentFactory(comparison=comparison)
    labels = [
        Label(choice="b", rater=f"annotator-{ours.annotator_id}"),  # our judgment, exported
        Label(choice="a", rater="majority", aggregate=True),
        Label(choice="a", rater="r9"),
    ]
    added = services.judgments_import(
        comparison=comparison, labels=labels,
        pseudonym_of=lambda user_id: f"annotator-{user_id}", aggregates=False,
    )
    assert added == 1
    assert sorted(comparison.judgments.values_list("external_annotator", flat=True)) == ["", "r9"]
