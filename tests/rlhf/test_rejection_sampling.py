"""Rejection sampling fine-tuning on the tiny Llama with toy rewards: the best of K is kept,
the reward-vs-K curve, pooling with earlier winners, loss on response tokens only."""

import pytest
import torch

from modelruntime.modelstore import checkpoint_is_complete, load_policy
from rlhf.backends import LocalBackend
from rlhf.config import RejectionSamplingConfig, SFTConfig
from rlhf.generation import chat_prompt
from rlhf.rejection_sampling import (
    SAMPLES_NAME,
    Winner,
    best_of_k,
    k_values,
    pool_winners,
    rejection_sample,
    reward_vs_k,
    winners_load,
)
from rlhf.sft import IGNORE, pad_examples, sft_example, sft_loss, sft_train

PROMPTS = [[{"role": "user", "content": text}] for text in ("Hi", "What is a reward model?", "Name a colour.")]


def characters(conversations):
    return [float(len(c[-1]["content"])) for c in conversations]


def test_reward_vs_k_averages_max_and_median_of_the_first_k_over_prompts():
    rewards = [[1.0, 5.0, 3.0, 2.0], [4.0, 0.0, 0.0, 8.0]]

    curve = reward_vs_k(rewards, temperature=1.2)

    # k=1: max = median = (1 + 4) / 2; k=2: max (5 + 4) / 2, median (3 + 2) / 2;
    # k=4: max (5 + 8) / 2, median (2.5 + 2) / 2
    assert curve == [
        {"temperature": 1.2, "k": 1, "max": 2.5, "median": 2.5},
        {"temperature": 1.2, "k": 2, "max": 4.5, "median": 2.5},
        {"temperature": 1.2, "k": 4, "max": 6.5, "median": 2.25},
    ]
    assert k_values(10) == [1, 2, 4, 8, 10]


def test_best_of_k_keeps_the_highest_reward_sample(tiny_lm):
    model, tokenizer = tiny_lm
    config = RejectionSamplingConfig(k=6, max_new_tokens=8, temperature=1.0)

    winners, rewards = best_of_k(LocalBackend(model=model, tokenizer=tokenizer), PROMPTS, characters, config,
                                 temperature=1.0)

    assert [len(r) for r in rewards] == [6, 6, 6]
    for winner, scores in zip(winners, rewards):
        assert winner.reward == max(scores)
        assert len(winner.response) == max(scores)  # the kept text is the one that scored the max
    assert any(len(set(r)) > 1 for r in rewards)  # the choice was a real one


def test_pooling_keeps_an_earlier_winner_that_still_scores_higher():
    prompt_a, prompt_b, prompt_c = PROMPTS
    current = [Winner(prompt_a, "short", 5.0), Winner(prompt_b, "a much longer answer", 20.0)]
    previous = [Winner(prompt_a, "an older, longer answer", 1.0, "RLHF-V1"), Winner(prompt_c, "old", 0.0, "RLHF-V1")]

    pooled = {w.prompt[0]["content"]: w for w in pool_winners(current, previous, characters)}

    assert pooled["Hi"].response == "an older, longer answer" and pooled["Hi"].reward == 23.0  # rescored
    assert pooled["What is a reward model?"].response == "a much longer answer"
    assert pooled["Name a colour."].source == "RLHF-V1"  # prompts of earlier iterations stay in the set


def test_sft_labels_only_the_response_and_its_end_of_turn(tiny_lm):
    _, tokenizer = tiny_lm
    ids, labels = sft_example(tokenizer, PROMPTS[1], "A model that scores answers.", max_length=512)

    prompt_ids = tokenizer(chat_prompt(tokenizer, PROMPTS[1]), add_special_tokens=False)["input_ids"]
    assert ids[: len(prompt_ids)] == prompt_ids
    assert labels[: len(prompt_ids)] == [IGNORE] * len(prompt_ids)
    assert tokenizer.decode([t for t in labels if t != IGNORE]) == "A model that scores answers.<|im_end|>"


def test_sft_truncates_the_prompt_not_the_response(tiny_lm):
    _, tokenizer = tiny_lm
    long_prompt = [{"role": "user", "content": "Tell me everything about lighthouses. " * 40}]

    ids, labels = sft_example(tokenizer, long_prompt, "Short answer.", max_length=32)

    assert len(ids) == 32
    assert tokenizer.decode([t for t in labels if t != IGNORE]) == "Short answer.<|im_end|>"


def test_prompt_tokens_carry_no_loss(tiny_lm):
    model, tokenizer = tiny_lm
    example = sft_example(tokenizer, PROMPTS[0], "Hello!", 512)
    other_prompt = sft_example(tokenizer, [{"role": "user", "content": "Completely different words"}], "Hello!", 512)

    with torch.no_grad():
        loss, tokens = sft_loss(model, *pad_examples([example], tokenizer.pad_token_id, model.device))
        # Same response, same count of labelled tokens; padding or a longer prompt adds none.
        padded = pad_examples([example, other_prompt], tokenizer.pad_token_id, model.device)
        _, both = sft_loss(model, *padded)

    assert tokens == sum(label != IGNORE for label in example[1][1:])
    assert both == 2 * tokens


def test_sft_makes_the_kept_responses_more_likely(tiny_model_dir):
    model, tokenizer = load_policy(tiny_model_dir, "cpu")
    pairs = [(PROMPTS[0], "Hello, how can I help?"), (PROMPTS[2], "Blue.")]
    examples = [sft_example(tokenizer, p, r, 512) for p, r in pairs]

    def loss():
        with torch.no_grad():
            total, tokens = sft_loss(model, *pad_examples(examples, tokenizer.pad_token_id, model.device))
        return total.item() / tokens

    before = loss()
    metrics = sft_train(model, tokenizer, pairs, SFTConfig(learning_rate=1e-2, epochs=20, batch_size=2, micro_batch_size=1))

    assert metrics["steps"] == 20
    assert loss() < 0.5 * before


def test_rejection_sampling_writes_a_new_policy_with_its_winners_and_curve(tiny_model_dir, tmp_path):
    config = RejectionSamplingConfig(k=4, temperature=1.0, curve_temperatures=[0.7], max_new_tokens=6,
                                     learning_rate=1e-3, epochs=1.0, batch_size=4, micro_batch_size=2)
    previous = [Winner([{"role": "user", "content": "An earlier prompt"}], "An earlier answer", 0.0, "RLHF-V1")]

    result = rejection_sample(config, tiny_model_dir, PROMPTS, characters, tmp_path / "v2", previous=previous)

    assert checkpoint_is_complete(result.checkpoint)
    assert {(p["temperature"], p["k"]) for p in result.reward_vs_k} == {(t, k) for t in (1.0, 0.7) for k in (1, 2, 4)}
    for point in result.reward_vs_k:
        assert point["max"] >= point["median"]
    saved = winners_load(result.checkpoint / SAMPLES_NAME, "RLHF-V2")
    assert len(saved) == 4 and result.pooled_from == ["RLHF-V1"]
    assert result.sft["steps"] == 1


def test_rejection_sampling_needs_prompts(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="at least one prompt"):
        rejection_sample(RejectionSamplingConfig(), tiny_model_dir, [], characters, tmp_path)
