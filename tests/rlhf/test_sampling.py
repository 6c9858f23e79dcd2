"""The sampling engine: K samples per prompt, exact token ids, stop rules, seeds, left padding."""

import pytest
import torch

from rlhf.generation import SamplingConfig, nucleus_sample, sample_responses

SHORT = [{"role": "user", "content": "Hi"}]
QUESTION = [{"role": "user", "content": "What is a reward model?"}]
LONG = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper and a storm. " * 3}]


def test_k_samples_per_prompt_come_back_grouped_under_their_prompt(tiny_lm):
    model, tokenizer = tiny_lm
    config = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=8, seed=1)

    samples = sample_responses(model, tokenizer, [LONG, SHORT, QUESTION], config, k=4, batch_size=5)

    assert [len(per_prompt) for per_prompt in samples] == [4, 4, 4]
    for index, per_prompt in enumerate(samples):
        assert {s.prompt_index for s in per_prompt} == {index}
        assert tokenizer.decode(per_prompt[0].prompt_ids).endswith("assistant\n")
    # Sampling at temperature 1 gives a prompt's K samples different texts.
    assert len({s.text for s in samples[1]}) > 1


def test_response_tokens_stop_at_end_of_turn_or_at_max_new_tokens(tiny_lm):
    model, tokenizer = tiny_lm
    config = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=6, seed=2)

    samples = [s for per_prompt in sample_responses(model, tokenizer, [SHORT, LONG], config, k=8) for s in per_prompt]

    for sample in samples:
        assert 1 <= len(sample.response_ids) <= 6
        assert sample.text == tokenizer.decode(sample.response_ids, skip_special_tokens=True).strip()
        if sample.finished:
            assert sample.response_ids[-1] == tokenizer.eos_token_id
            assert tokenizer.eos_token_id not in sample.response_ids[:-1]
        else:
            assert len(sample.response_ids) == 6


def test_ignore_eos_makes_every_response_max_new_tokens_long(tiny_lm):
    model, tokenizer = tiny_lm
    config = SamplingConfig(temperature=1.0, max_new_tokens=7, seed=3)

    samples = sample_responses(model, tokenizer, [SHORT, QUESTION], config, k=3, ignore_eos=True)

    assert {len(s.response_ids) for per_prompt in samples for s in per_prompt} == {7}


def test_same_seed_same_samples(tiny_lm):
    model, tokenizer = tiny_lm
    config = SamplingConfig(temperature=1.2, top_p=0.9, max_new_tokens=6, seed=11)

    def texts(seed_config):
        return [[s.text for s in p] for p in sample_responses(model, tokenizer, [SHORT, LONG], seed_config, k=3)]

    assert texts(config) == texts(config)
    assert texts(config) != texts(SamplingConfig(temperature=1.2, top_p=0.9, max_new_tokens=6, seed=12))


def test_greedy_samples_do_not_depend_on_batch_neighbours(tiny_lm):
    model, tokenizer = tiny_lm
    greedy = SamplingConfig(temperature=0, max_new_tokens=10)

    alone = sample_responses(model, tokenizer, [QUESTION], greedy, k=1)[0][0]
    mixed = sample_responses(model, tokenizer, [LONG, QUESTION, SHORT], greedy, k=2, batch_size=6)[1]

    assert [s.response_ids for s in mixed] == [alone.response_ids] * 2


def test_k_must_be_positive(tiny_lm):
    model, tokenizer = tiny_lm
    with pytest.raises(ValueError, match="k must be"):
        sample_responses(model, tokenizer, [SHORT], SamplingConfig(), k=0)


def _hf_nucleus(logits, temperature, top_p):
    """HF's own temperature + top-p warpers: the distribution our sampler must draw from."""
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    scores = TopPLogitsWarper(top_p)(None, TemperatureLogitsWarper(temperature)(None, logits.clone()))
    return torch.softmax(scores, dim=-1)


@pytest.mark.parametrize("top_p, candidates", [
    (0.9, 16),   # the nucleus lies inside the top candidates
    (0.9, 3),    # it reaches past them: the row is sorted whole
    (1.0, 16),   # no nucleus: the whole vocabulary
])
def test_nucleus_sampler_draws_from_hf_top_p_distribution(top_p, candidates):
    torch.manual_seed(0)
    logits = torch.randn(2, 40) * 2
    expected = _hf_nucleus(logits, 0.8, top_p)
    draws = 20_000
    tokens = nucleus_sample(logits.repeat(draws, 1), 0.8, top_p, candidates).view(draws, 2)
    for row in range(2):
        counts = torch.bincount(tokens[:, row], minlength=40).float() / draws
        assert counts[expected[row] == 0].sum() == 0  # never a token outside the nucleus
        assert torch.allclose(counts, expected[row], atol=0.012), (counts - expected[row]).abs().max()


def test_engine_samples_only_nucleus_tokens_at_every_step(tiny_lm):
    # top_p so small that only the most likely token survives: sampling must equal greedy.
    model, tokenizer = tiny_lm
    nucleus = SamplingConfig(temperature=1.0, top_p=1e-6, max_new_tokens=8, seed=3)
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=8)
    sampled = sample_responses(model, tokenizer, [SHORT, LONG], nucleus, k=3)
    expected = sample_responses(model, tokenizer, [SHORT, LONG], greedy, k=1)
    for per_prompt, (alone,) in zip(sampled, expected):
        assert {tuple(s.response_ids) for s in per_prompt} == {tuple(alone.response_ids)}


@pytest.mark.parametrize("k", [1, 2])  # k=1 decodes the whole prompt first; k=2 shares a prefill
def test_recorded_policy_outputs_match_a_separate_forward_pass(tiny_lm, k):
    # PPO takes its old log-probs and value inputs from the sampling pass: they must equal what a
    # forward pass of the policy over the finished rollouts gives, token by token.
    from rlhf.ppo import policy_forward, rollout_batch

    model, tokenizer = tiny_lm
    config = SamplingConfig(temperature=0.9, top_p=1.0, max_new_tokens=7, seed=4)
    samples = [s for per in sample_responses(model, tokenizer, [SHORT, LONG, QUESTION], config, k=k,
                                             batch_size=4, record_policy=True) for s in per]
    head = torch.nn.Linear(model.config.hidden_size, 1)
    batch = rollout_batch(samples, tokenizer.pad_token_id)
    with torch.no_grad():
        logprobs, values, _ = policy_forward(model, head, batch, temperature=0.9)
        for row, sample in enumerate(samples):
            n = len(sample.response_ids)
            assert sample.logprobs.shape == (n,) and sample.hidden.shape == (n, model.config.hidden_size)
            assert torch.allclose(sample.logprobs, logprobs[row, :n], atol=1e-4)
            assert torch.allclose(head(sample.hidden).squeeze(-1), values[row, :n], atol=1e-4)


def test_recording_needs_sampling(tiny_lm):
    model, tokenizer = tiny_lm
    with pytest.raises(ValueError, match="record_policy needs sampling"):
        sample_responses(model, tokenizer, [SHORT], SamplingConfig(temperature=0.0), record_policy=True)
