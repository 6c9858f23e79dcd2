"""Judgments -> training pairs, margins and the loss, against numbers worked out by hand."""

import pytest
import torch

from annotation.models import Adjudication, Judgment
from core.heldout import prompt_key
from modelruntime.config import ConfigError
from rewardmodel.config import RewardModelConfig
from rewardmodel.data import (
    BOTH_SAFE,
    CHOSEN_SAFE_OTHER_UNSAFE,
    TrainingPair,
    Vote,
    aggregate,
    margin_for,
    mix,
    pairs_for_projects,
    split,
)
from rewardmodel.loss import margin_ranking_loss
from tests.factories import ComparisonFactory, SafetyProjectFactory, UserFactory


@pytest.mark.parametrize(
    "scheme, expected",
    [
        ("small", [1, 2 / 3, 1 / 3, 0]),
        ("large", [3, 2, 1, 0]),
        ("none", [0, 0, 0, 0]),
    ],
)
def test_margin_table_is_the_papers(scheme, expected):
    levels = ["significantly_better", "better", "slightly_better", "negligibly_better"]
    assert [margin_for(level, scheme) for level in levels] == pytest.approx(expected)
    assert margin_for("", scheme) == 0  # imported labels without a strength get no margin


def test_margin_scheme_must_be_known():
    with pytest.raises(ValueError, match="medium"):
        margin_for("better", "medium")


def test_loss_matches_hand_computed_values():
    chosen, rejected = torch.tensor([2.0, 0.5]), torch.tensor([1.0, 1.0])
    # -log sigmoid(1 - 0) = log(1 + e^-1) = 0.31326; -log sigmoid(-0.5 - 1) = log(1 + e^1.5) = 1.70141
    margins = torch.tensor([0.0, 1.0])
    assert margin_ranking_loss(chosen, rejected, margins).item() == pytest.approx(
        (0.3132617 + 1.7014132) / 2, abs=1e-6
    )
    # A margin makes the same gap cost more: sigmoid(1 - 2/3) = 0.582570 -> -ln = 0.540306,
    # against -ln sigmoid(1) = 0.313262 without it.
    one = torch.tensor([1.0]), torch.tensor([0.0])
    assert margin_ranking_loss(*one, torch.tensor([2 / 3])).item() == pytest.approx(0.540306, abs=1e-6)
    assert margin_ranking_loss(*one, torch.tensor([0.0])).item() == pytest.approx(0.313262, abs=1e-6)


def test_majority_wins_with_strength_from_agreeing_votes():
    votes = [
        Vote("a", "significantly_better"),
        Vote("a", "slightly_better"),
        Vote("a", "better"),
        Vote("b", "significantly_better"),  # disagrees: its strength does not count
    ]
    result, why = aggregate(votes)
    assert why == "" and result.choice == "a"
    assert result.strength == "better"  # median of significantly / better / slightly
    assert result.agreement == 0.75 and result.votes == 4


def test_even_split_is_a_tie_and_ties_only_count_against_agreement():
    assert aggregate([Vote("a", "better"), Vote("b", "better")]) == (None, "tie")
    assert aggregate([Vote("tie"), Vote("tie")]) == (None, "tie")
    result, _ = aggregate([Vote("b"), Vote("tie"), Vote("b")])
    assert result.choice == "b" and result.strength == "" and result.agreement == pytest.approx(2 / 3)


def test_staff_adjudication_settles_a_split_comparison():
    votes = [Vote("a", "better"), Vote("b", "slightly_better")]
    result, _ = aggregate(votes, decided=("b", "significantly_better"))
    assert (result.choice, result.strength, result.agreement) == ("b", "significantly_better", 0.5)


def test_too_few_judgments_are_skipped():
    assert aggregate([Vote("a", "better")], min_judgments=2) == (None, "too_few_judgments")


def test_safety_labels_follow_the_chosen_side():
    result, _ = aggregate([Vote("b", "better", a_safe=False, b_safe=True)] * 2)
    assert (result.chosen_safe, result.rejected_safe) == (True, False)


def test_split_keeps_every_prompt_on_one_side():
    pairs = [
        TrainingPair(context=[{"role": "user", "content": f"prompt {i % 40}"}], chosen="c", rejected="r",
                     prompt_key=prompt_key([{"role": "user", "content": f"prompt {i % 40}"}]))
        for i in range(400)
    ]
    train, heldout = split(pairs, 0.25)
    assert {p.prompt_key for p in train}.isdisjoint({p.prompt_key for p in heldout})
    assert 0.1 < len(heldout) / len(pairs) < 0.45
    assert split(pairs, 0.25)[1] == heldout  # the same split every time


def test_mixing_adds_the_papers_share_of_other_data():
    own = [TrainingPair([], "c", "r", objective="safety") for _ in range(50)]
    other = [TrainingPair([], "c", "r", objective="helpfulness") for _ in range(100)]
    ratio = RewardModelConfig().mix_ratio_for("safety")
    mixed = mix(own, other, ratio)
    assert ratio == 0.1 and sum(p.objective == "helpfulness" for p in mixed) == 5
    assert RewardModelConfig().mix_ratio_for("helpfulness") == 1.0
    assert len(mix(own, other[:20], 1.0)) == 70  # cannot add more than there is


@pytest.mark.parametrize(
    "values, field",
    [
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"margin_scheme": "huge"}, "margin_scheme"),
        ({"batch_size": 0}, "batch_size"),
        ({"heldout_fraction": 1.5}, "heldout_fraction"),
        ({"warmup": 0.1}, "warmup"),
    ],
)
def test_bad_config_values_name_the_field(values, field):
    with pytest.raises(ConfigError) as error:
        RewardModelConfig.from_dict(values)
    assert error.value.field == field and field in str(error.value)


def _judge(comparison, choice, strength, a_safe=None, b_safe=None, external=""):
    annotator = None if external else UserFactory()
    return Judgment.objects.create(
        comparison=comparison, annotator=annotator, external_annotator=external, choice=choice,
        strength=strength, response_a_safe=a_safe, response_b_safe=b_safe,
    )


@pytest.mark.django_db
def test_builder_reads_judgments_and_applies_the_safety_rule():
    project = SafetyProjectFactory(margin_scheme="large")
    agreed = ComparisonFactory(batch__project=project)
    for _ in range(2):
        _judge(agreed, "b", "significantly_better", a_safe=False, b_safe=True)
    _judge(agreed, "a", "slightly_better", a_safe=False, b_safe=True)
    # The chosen response is unsafe while the other is safe: not a safety-RM pair.
    wrong_way = ComparisonFactory(batch=agreed.batch)
    _judge(wrong_way, "a", "better", a_safe=False, b_safe=True)
    tied = ComparisonFactory(batch=agreed.batch)
    _judge(tied, "a", "better", a_safe=True, b_safe=True)
    _judge(tied, "b", "better", a_safe=True, b_safe=True)
    both_safe = ComparisonFactory(batch=agreed.batch)
    _judge(both_safe, "tie", "", external="pandalm:annotator1")
    _judge(both_safe, "a", "", a_safe=True, b_safe=True, external="pandalm:annotator2")
    ComparisonFactory(batch=agreed.batch)  # nobody judged it

    pairs, report = pairs_for_projects([project], objective="safety")
    assert report.skipped == {"chosen_unsafe_other_safe": 1, "tie": 1, "unjudged": 1}
    first, second = pairs
    assert (first.chosen, first.rejected) == ("Response B text", "Response A text")
    assert first.strength == "significantly_better" and first.margin == 3
    assert first.safety_bin == CHOSEN_SAFE_OTHER_UNSAFE and first.agreement == pytest.approx(2 / 3)
    assert first.context == [{"role": "user", "content": agreed.dialogue.turns.get().content}]
    assert second.safety_bin == BOTH_SAFE and second.margin == 0 and second.votes == 2
    # Staff adjudicate the tie on the review screen: it becomes a pair with their answer.
    Adjudication.objects.create(comparison=tied, choice="b", strength="better")
    pairs, report = pairs_for_projects([project], objective="safety")
    assert "tie" not in report.skipped and pairs[1].comparison_id == tied.pk and pairs[1].margin == 2
    # The helpfulness RM keeps the pair the safety rule drops.
    helpful_pairs, _ = pairs_for_projects([project], objective="helpfulness")
    assert len(helpful_pairs) == 4
