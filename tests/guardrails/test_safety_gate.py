"""The gate staff set on a safety RM replaces Llama 2's 0.15 in the combined reward."""

import math

import pytest

from rewardmodel.models import RewardModel
from rlhf.rewards import combined_reward_fn
from rlhf.work import safety_gate_for


class Toy:
    def __init__(self, score):
        self.value = score

    def score(self, conversations, batch_size=8):
        return [self.value] * len(conversations)


CONVERSATION = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
SAFETY_SCORE = math.log(0.3 / 0.7)  # sigmoid 0.3: above the paper's gate, below a gate of 0.4


@pytest.mark.django_db
def test_the_stored_gate_decides_which_reward_model_scores(tiny_reward_model_path):
    rm = RewardModel.objects.create(name="safe", objective="safety", base_model="b",
                                    checkpoint_path=str(tiny_reward_model_path))
    assert safety_gate_for("safe") is None and safety_gate_for("") is None
    paper = combined_reward_fn(Toy(2.0), Toy(SAFETY_SCORE), gate=safety_gate_for("safe"))
    assert paper([CONVERSATION]) == pytest.approx([2.0])  # R_s 0.3 >= 0.15: the helpfulness RM's logit
    rm.safety_gate = 0.4
    rm.save()
    assert safety_gate_for("safe") == 0.4
    gated = combined_reward_fn(Toy(2.0), Toy(SAFETY_SCORE), gate=safety_gate_for("safe"))
    assert gated([CONVERSATION]) == pytest.approx([SAFETY_SCORE])  # R_s 0.3 < 0.4: the safety RM's
