"""The safety auxiliary loss (Llama 2 Table 29) against hand-computed values, and its config field."""

import math

import pytest
import torch

from core.vocabulary import BOTH_SAFE, CHOSEN_SAFE_OTHER_UNSAFE
from modelruntime.config import ConfigError
from rewardmodel.config import RewardModelConfig
from rewardmodel.data import TrainingPair
from rewardmodel.loss import safety_auxiliary_loss


def pair(safety_bin):
    return TrainingPair(context=[], chosen="a", rejected="b", safety_bin=safety_bin)


def test_safety_auxiliary_loss_is_binary_cross_entropy_on_labelled_responses():
    # Chosen safe at score 2: -log sigmoid(2) = 0.126928; rejected unsafe at -1:
    # -log(1 - sigmoid(-1)) = -log sigmoid(1) = 0.313262; mean 0.220095; the unlabelled pair
    # (no safety bin) adds nothing.
    chosen, rejected = torch.tensor([2.0, 5.0]), torch.tensor([-1.0, 5.0])
    loss = safety_auxiliary_loss(chosen, rejected, [pair(CHOSEN_SAFE_OTHER_UNSAFE), pair("")], weight=1.0)
    assert loss.item() == pytest.approx((0.126928 + 0.313262) / 2, abs=1e-6)
    # Both safe at 0: ln 2 each, weight 2: 2 ln 2.
    both = safety_auxiliary_loss(torch.zeros(1), torch.zeros(1), [pair(BOTH_SAFE)], weight=2.0)
    assert both.item() == pytest.approx(2 * math.log(2), abs=1e-6)


def test_the_term_is_off_by_default_and_on_unlabelled_pairs():
    assert RewardModelConfig().safety_aux_weight == 0.0
    assert safety_auxiliary_loss(torch.ones(1), torch.ones(1), [pair(BOTH_SAFE)], weight=0.0).item() == 0.0
    assert safety_auxiliary_loss(torch.ones(1), torch.ones(1), [pair("")], weight=1.0).item() == 0.0


def test_unsafe_response_scores_fall_under_the_term():
    score = torch.tensor([1.0], requires_grad=True)  # an unsafe chosen response scored high
    safety_auxiliary_loss(score, torch.tensor([3.0]), [pair("both_unsafe")], weight=1.0).backward()
    assert score.grad.item() > 0  # gradient descent lowers it


def test_a_negative_weight_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match="safety_aux_weight"):
        RewardModelConfig.from_dict({"safety_aux_weight": -1})

