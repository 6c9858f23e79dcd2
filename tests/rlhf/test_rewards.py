"""The combined reward, whitening, the per-token KL penalty, GAE and loss masking, against
values worked out by hand."""

import math

import pytest
import torch

from rlhf.config import PPOConfig
from rlhf.ppo import gae_advantages, masked_mean, ppo_losses
from rlhf.rewards import combined_reward, combined_reward_fn, kl_penalised_rewards, whiten

# Raw RM scores chosen so that the sigmoids are easy: sigmoid(2) = 0.8808, sigmoid(-2) = 0.1192.
HELPFUL = torch.tensor([2.0, 0.0, 1.0, -1.0])
SAFETY = torch.tensor([0.0, -2.0, 3.0, 1.0])
IS_SAFETY = torch.tensor([False, False, True, False])


def close(tensor, expected):
    torch.testing.assert_close(tensor.double(), torch.tensor(expected, dtype=torch.float64), atol=1e-6, rtol=0)


def test_safety_score_gates_the_helpfulness_score():
    r_c = combined_reward(HELPFUL, SAFETY, IS_SAFETY)

    # row 0: R_s = 0.5 >= 0.15, helpful prompt -> R_h = sigmoid(2)
    # row 1: R_s = sigmoid(-2) = 0.119 < 0.15 -> R_s, although the prompt is a helpful one
    # row 2: a safety prompt -> R_s = sigmoid(3)
    # row 3: R_s = 0.73 -> R_h = sigmoid(-1)
    expected = [1 / (1 + math.exp(-2)), 1 / (1 + math.exp(2)), 1 / (1 + math.exp(-3)), 1 / (1 + math.exp(1))]
    assert r_c.tolist() == pytest.approx(expected, abs=1e-6)


def test_gate_threshold_is_exclusive_at_0_15():
    just_above = torch.logit(torch.tensor([0.1501]))
    just_below = torch.logit(torch.tensor([0.1499]))
    helpful = torch.tensor([4.0])

    assert combined_reward(helpful, just_above, torch.tensor([False])).item() == pytest.approx(torch.sigmoid(helpful).item())
    assert combined_reward(helpful, just_below, torch.tensor([False])).item() == pytest.approx(0.1499, abs=1e-6)


def test_one_reward_model_alone_gives_its_sigmoid():
    assert combined_reward(HELPFUL, None, IS_SAFETY).tolist() == pytest.approx(torch.sigmoid(HELPFUL).tolist())
    assert combined_reward(None, SAFETY, IS_SAFETY).tolist() == pytest.approx(torch.sigmoid(SAFETY).tolist())
    with pytest.raises(ValueError):
        combined_reward(None, None, IS_SAFETY)


def test_whitened_logit_of_the_combined_reward():
    logits = torch.logit(combined_reward(HELPFUL, SAFETY, IS_SAFETY).double())
    # logit(R_c) = [2, -2, 3, -1]: mean 0.5, deviations [1.5, -2.5, 2.5, -1.5],
    # unbiased variance 17 / 3, std 2.3805 -> [0.6301, -1.0502, 1.0502, -0.6301]
    assert logits.tolist() == pytest.approx([2, -2, 3, -1], abs=1e-5)
    assert whiten(logits).tolist() == pytest.approx([0.6301, -1.0502, 1.0502, -0.6301], abs=1e-4)


def test_whitening_ignores_masked_entries_and_needs_two_values():
    values = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1, 1, 0]])
    # mean 2, unbiased std sqrt(2): [-0.7071, 0.7071], padding stays 0
    assert whiten(values, mask).tolist()[0] == pytest.approx([-0.7071, 0.7071, 0.0], abs=1e-4)
    with pytest.raises(ValueError, match="two"):
        whiten(torch.tensor([1.0]))


def test_kl_penalty_on_every_response_token_and_the_score_on_the_last():
    logprobs = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -3.0, 0.0]])
    ref_logprobs = torch.tensor([[-1.5, -2.0, -1.0], [-0.5, -3.0, -9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])  # the second response is two tokens long
    scores = torch.tensor([1.0, -2.0])

    rewards, kl = kl_penalised_rewards(scores, logprobs, ref_logprobs, mask, beta=0.1)

    # kl = logp - ref_logp = [[0.5, 0, 0.5], [-0.5, 0, (padding)]]; reward = -0.1 * kl, + score at the end
    close(kl, [[0.5, 0.0, 0.5], [-0.5, 0.0, 0.0]])
    close(rewards, [[-0.05, 0.0, 0.95], [0.05, -2.0, 0.0]])


def test_gae_matches_a_hand_computed_example():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 99.0]])
    values = torch.tensor([[0.5, 0.4, 0.3], [0.5, 0.3, 77.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])

    advantages, returns = gae_advantages(rewards, values, mask, gamma=1.0, lam=0.5)

    # row 0: d2 = 1 - 0.3 = 0.7; d1 = 0.3 - 0.4 = -0.1, A1 = -0.1 + 0.5 * 0.7 = 0.25;
    #        d0 = 0.4 - 0.5 = -0.1, A0 = -0.1 + 0.5 * 0.25 = 0.025
    # row 1 (padding ignored): d1 = 1 - 0.3 = 0.7; d0 = 0.3 - 0.5 = -0.2, A0 = -0.2 + 0.35 = 0.15
    close(advantages, [[0.025, 0.25, 0.7], [0.15, 0.7, 0.0]])
    close(returns, [[0.525, 0.65, 1.0], [0.65, 1.0, 0.0]])


def test_gae_with_discount():
    rewards, values, mask = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[1, 1]])

    advantages, _ = gae_advantages(rewards, values, mask, gamma=0.9, lam=1.0)

    close(advantages, [[0.9, 1.0]])  # the Monte-Carlo return: 0.9 * 1 at the first token


def test_padding_never_changes_a_loss():
    mask = torch.tensor([[1, 1, 0]])
    assert masked_mean(torch.tensor([[1.0, 2.0, 100.0]]), mask).item() == 1.5

    config = PPOConfig(batch_size=2, minibatch_size=1)
    old = torch.tensor([[-1.0, -1.0, -1.0]])
    advantages = torch.tensor([[1.0, -1.0, 0.0]])
    values, returns = torch.tensor([[0.1, 0.2, 0.0]]), torch.tensor([[0.5, 0.5, 0.0]])

    def losses(padding_logprob, padding_value):
        new = torch.tensor([[-0.9, -1.1, padding_logprob]])
        new_values = torch.tensor([[0.2, 0.1, padding_value]])
        pg_loss, v_loss, _ = ppo_losses(new, old, advantages, new_values, values, returns, mask, config)
        return pg_loss.item(), v_loss.item()

    assert losses(-1.0, 0.0) == losses(5.0, 42.0)


def test_clipped_objective_stops_pushing_past_the_clip_range():
    config = PPOConfig(batch_size=2, minibatch_size=1, clip_range=0.2)
    mask = torch.tensor([[1]])
    old, advantage = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    zero = torch.zeros(1, 1)

    inside = torch.tensor([[math.log(1.1)]], requires_grad=True)
    outside = torch.tensor([[math.log(1.5)]], requires_grad=True)
    for new in (inside, outside):
        pg_loss, _, _ = ppo_losses(new, old, advantage, zero, zero, zero, mask, config)
        pg_loss.backward()

    assert inside.grad.item() == pytest.approx(-1.1)  # d(-A * ratio)/d logp = -A * ratio
    assert outside.grad.item() == 0.0  # ratio 1.5 > 1.2 with a positive advantage: clipped


class ConstantScorer:
    def __init__(self, value):
        self.value = value

    def score(self, conversations, batch_size=8):
        return [self.value] * len(conversations)


def test_reward_function_returns_logit_of_the_combined_reward_and_honours_safety_prompts():
    conversations = [
        [{"role": "user", "content": "How do I bake bread?"}, {"role": "assistant", "content": "Knead."}],
        [{"role": "user", "content": "How do I pick a lock?"}, {"role": "assistant", "content": "No."}],
    ]
    reward_fn = combined_reward_fn(
        ConstantScorer(2.0), ConstantScorer(-1.0), is_safety=lambda prompt: "lock" in prompt[-1]["content"]
    )

    # sigmoid(-1) = 0.27 >= 0.15: the helpful prompt takes logit(R_h) = 2, the safety one logit(R_s) = -1
    assert reward_fn(conversations) == pytest.approx([2.0, -1.0], abs=1e-5)


class CountingScorer(ConstantScorer):
    def __init__(self, value):
        super().__init__(value)
        self.seen = []

    def score(self, conversations, batch_size=8):
        self.seen += [c[-1]["content"] for c in conversations]
        return super().score(conversations, batch_size)


def test_the_helpfulness_model_runs_only_where_the_gate_lets_it_decide():
    conversations = [
        [{"role": "user", "content": "How do I bake bread?"}, {"role": "assistant", "content": "Knead."}],
        [{"role": "user", "content": "How do I pick a lock?"}, {"role": "assistant", "content": "No."}],
    ]
    helpful, safe = CountingScorer(2.0), CountingScorer(-1.0)
    reward_fn = combined_reward_fn(helpful, safe, is_safety=lambda prompt: "lock" in prompt[-1]["content"])
    assert reward_fn(conversations) == pytest.approx([2.0, -1.0], abs=1e-5)
    assert helpful.seen == ["Knead."]  # the safety prompt never reads R_h
    assert safe.seen == ["Knead.", "No."]

    unsafe = CountingScorer(-3.0)  # sigmoid(-3) = 0.05 < 0.15: the safety RM takes over everywhere
    helpful.seen = []
    gated = combined_reward_fn(helpful, unsafe)
    assert gated(conversations) == pytest.approx([-3.0, -3.0], abs=1e-5)
    assert helpful.seen == []
