"""Rejection sampling's fine-tuning as 2 torchrun processes (FSDP2, gloo, tiny model) ends with the
same policy as the one-process run: same samples, same steps, gradients over the same tokens."""

import pytest
import torch

from modelruntime.modelstore import load_policy
from rlhf.config import RejectionSamplingConfig
from rlhf.rejection_sampling import rejection_sample

PROMPTS = [[{"role": "user", "content": text}] for text in
           ("Hi", "What is a reward model?", "Name a colour.", "Count to three.", "Say yes.")]


def characters(conversations):
    return [float(len(c[-1]["content"])) for c in conversations]


def config(**extra):
    # 5 kept samples, 2 a step (the last step has 1: one rank runs a zero-weight pass): 3 steps.
    # Large eps, no clipping: Adam's update then follows the gradient's size (test_reward_model.py).
    return RejectionSamplingConfig(k=2, temperature=1.0, max_new_tokens=6, learning_rate=1e-3, epochs=1.0,
                                   batch_size=2, micro_batch_size=1, checkpoint_every=2, adam_eps=1e-3,
                                   max_grad_norm=1000.0, **extra)


def test_two_process_fine_tuning_makes_the_same_policy_as_one(tiny_model_path, tmp_path):
    one = rejection_sample(config(), tiny_model_path, PROMPTS, characters, tmp_path / "one")
    seen = []
    two = rejection_sample(config(processes=2), tiny_model_path, PROMPTS, characters, tmp_path / "two",
                           on_progress=lambda step, total, metrics=None, log_line=None: seen.append(metrics))

    assert [w.response for w in two.winners] == [w.response for w in one.winners]
    assert two.sft["steps"] == one.sft["steps"] == 3
    assert two.sft["loss"] == pytest.approx(one.sft["loss"], abs=1e-5)
    assert {"loss/sft": pytest.approx(one.sft["loss"][-1], abs=1e-5)} in seen  # rank 0's progress relayed
    a, _ = load_policy(one.checkpoint, "cpu")
    b, _ = load_policy(two.checkpoint, "cpu")
    # As for the reward model (test_reward_model.py): rounding differs between 1 and 2 processes
    # by ~1e-7 per step; a step over other examples or another token count moves weights ~1e-3.
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4, msg=name)
    assert not (tmp_path / "two-resume").exists()
