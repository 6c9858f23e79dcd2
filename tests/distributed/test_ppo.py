"""PPO as 2 torchrun processes (FSDP2, gloo, tiny policy and reward model) ends with the same
policy as one process: every rank draws the same rollouts with the same seed, and the update's
losses are weighted by each rank's share of a minibatch's response tokens."""

import pytest
import torch

from modelruntime.modelstore import load_policy
from rlhf.config import PPOConfig
from rlhf.ppo import ppo_train, reward_fn_from_spec

PROMPTS = [[{"role": "user", "content": text}] for text in ("Hi", "Name a colour.", "Count to three.", "Say yes.")]


def config(**extra):
    # 2 iterations of 4 rollouts, minibatches of 2 (one row per rank). Large eps, no clipping:
    # Adam's update then follows the gradient's size (see test_reward_model.py).
    return PPOConfig(iterations=2, batch_size=4, minibatch_size=2, max_new_tokens=4, learning_rate=1e-3,
                     checkpoint_every=1, adam_eps=1e-3, max_grad_norm=1000.0, **extra)


def test_two_process_ppo_makes_the_same_policy_as_one(tiny_model_path, tiny_reward_model_path, tmp_path):
    reward_spec = {"helpfulness_rm": str(tiny_reward_model_path), "safety_rm": "", "safety_keys": []}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank: the same sums in the same order, so the same samples
    try:
        one = ppo_train(config(), tiny_model_path, PROMPTS, reward_fn_from_spec(reward_spec), tmp_path / "one")
    finally:
        torch.set_num_threads(threads)
    seen = []
    two = ppo_train(config(processes=2), tiny_model_path, PROMPTS, None, tmp_path / "two",
                    on_progress=lambda done, total, record: seen.append(done), reward_spec=reward_spec)

    assert seen == [1, 2]  # rank 0's records relayed
    for a, b in zip(one.iterations, two.iterations):
        assert a["reward/score"] == pytest.approx(b["reward/score"], abs=1e-5)  # the same rollouts
        assert a["ppo/response_length"] == b["ppo/response_length"]
        assert a["loss/policy"] == pytest.approx(b["loss/policy"], abs=1e-5)  # token-weighted over ranks
    a, _ = load_policy(one.checkpoint, "cpu")
    b, _ = load_policy(two.checkpoint, "cpu")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4, msg=name)


def test_several_processes_need_reward_model_paths(tiny_model_path, tmp_path):
    with pytest.raises(ValueError, match="needs reward-model paths"):
        ppo_train(config(processes=2), tiny_model_path, PROMPTS, lambda conversations: [0.0], tmp_path / "x")


def test_a_ppo_job_hands_the_ranks_reward_model_paths_and_safety_prompts(db, tiny_reward_model_path):
    from types import SimpleNamespace

    from rewardmodel.models import RewardModel
    from rlhf.work import ppo_reward_spec

    RewardModel.objects.create(name="tiny-helpful", objective="helpfulness", base_model="tiny",
                               checkpoint_path=str(tiny_reward_model_path))
    prompts = [SimpleNamespace(key="a", is_safety=False), SimpleNamespace(key="b", is_safety=True)]
    spec = ppo_reward_spec(config(helpfulness_rm="tiny-helpful", processes=2), prompts)
    assert spec == {"helpfulness_rm": str(tiny_reward_model_path), "safety_rm": "", "gate": None, "safety_keys": ["b"]}
