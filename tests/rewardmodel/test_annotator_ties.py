"""A tie an annotator gives (projects with allow_tie, issue 16) reaches the reward-model builder as
an imported tie does: a comparison with only ties is skipped as a tie, and a tie beside votes for a
side only lowers the pair's agreement."""

import pytest

from annotation import services
from rewardmodel.data import pairs_for_projects
from tests.factories import BatchFactory, ComparisonFactory, JudgmentFactory, UserFactory

pytestmark = pytest.mark.django_db


def _tie_from_annotator(comparison):
    annotator = UserFactory()
    services.assignment_next(annotator=annotator, project=comparison.batch.project)
    return services.judgment_submit(
        annotator=annotator, comparison_id=comparison.pk, chosen_side="tie", strength=""
    )


def test_an_annotators_tie_is_skipped_like_an_imported_tie():
    batch = BatchFactory(project__allow_tie=True, project__judgments_per_comparison=3)
    ours, imported = ComparisonFactory(batch=batch), ComparisonFactory(batch=batch)
    tie = _tie_from_annotator(ours)
    assert (tie.choice, tie.strength) == ("tie", "")
    JudgmentFactory(comparison=imported, annotator=None, external_annotator="rater-1",
                    choice="tie", strength="")
    pairs, report = pairs_for_projects([batch.project], objective="helpfulness")
    assert pairs == [] and report.skipped["tie"] == 2


def test_an_annotators_tie_beside_two_votes_only_lowers_agreement_as_an_imported_one_does():
    batch = BatchFactory(project__allow_tie=True, project__judgments_per_comparison=3)
    ours, imported = ComparisonFactory(batch=batch), ComparisonFactory(batch=batch)
    for comparison in (ours, imported):
        JudgmentFactory.create_batch(2, comparison=comparison, choice="a", strength="better")
    _tie_from_annotator(ours)
    JudgmentFactory(comparison=imported, annotator=None, external_annotator="rater-1",
                    choice="tie", strength="")
    pairs, _ = pairs_for_projects([batch.project], objective="helpfulness")
    by_comparison = {pair.comparison_id: pair for pair in pairs}
    assert by_comparison[ours.pk].agreement == by_comparison[imported.pk].agreement == 2 / 3
    assert by_comparison[ours.pk].strength == by_comparison[imported.pk].strength == "better"
