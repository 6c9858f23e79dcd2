"""One packed row per pair scores each side exactly as two separate dialogues would."""

import pytest
import torch

from modelruntime.packing import fit, pack, packed_batch, packed_scores
from rewardmodel.modeling import encode, load_for_scoring, pad_batch, scores

CONTEXT = [
    {"role": "user", "content": "Tell me about tea in a few words."},
    {"role": "assistant", "content": "Tea came from China."},
    {"role": "user", "content": "And coffee?"},
]
RESPONSES = [("Coffee came from Ethiopia, centuries ago.", "No."), ("Yes", "It is made from roasted beans."),
             ("A", "B")]


def _ids(tokenizer, response):
    return encode(tokenizer, [*CONTEXT, {"role": "assistant", "content": response}], 10**6)


def test_packed_scores_equal_separate_scores(tiny_reward_model_path):
    model, tokenizer = load_for_scoring(tiny_reward_model_path)
    packed = [pack(_ids(tokenizer, c), _ids(tokenizer, r), 10**6) for c, r in RESPONSES]
    separate = [ids for c, r in RESPONSES for ids in (_ids(tokenizer, c), _ids(tokenizer, r))]
    assert all(p.prefix > 20 for p in packed)  # the dialogue is shared, not repeated
    with torch.no_grad():
        chosen, rejected = packed_scores(model, *packed_batch(packed, tokenizer.pad_token_id))
        expected = scores(model, *pad_batch(separate, tokenizer.pad_token_id))
    assert torch.allclose(chosen, expected[0::2], atol=1e-5)
    assert torch.allclose(rejected, expected[1::2], atol=1e-5)


def test_long_pairs_lose_old_context_first_and_keep_both_responses():
    context = list(range(100, 200))
    packed = pack(context + [1, 2, 3], context + [7, 8], max_length=10)
    assert packed.ids == list(range(193, 200)) + [1, 2, 3] + [7, 8]
    assert (packed.prefix, packed.chosen, packed.rejected) == (7, 3, 2)
    # A response longer than the limit keeps its end, where the score is read.
    long = pack([5] + list(range(20)), [5, 9], max_length=4)
    assert long.ids == [16, 17, 18, 19, 9] and long.prefix == 0


def test_right_truncation_keeps_the_question_and_the_answers_start_and_end_of_turn():
    context = list(range(100, 200))
    packed = pack(context + list(range(20)) + [99], context + [7, 8, 99], max_length=10, side="right")
    # The prompt keeps half the room (its newest tokens); the long answer its first 4 tokens and its
    # end-of-turn token, the short one all of it.
    assert packed.ids == list(range(195, 200)) + [0, 1, 2, 3, 99] + [7, 8, 99]
    assert (packed.prefix, packed.chosen, packed.rejected) == (5, 5, 3)
    # Short answers leave the prompt more than half.
    short = pack(context + [1, 99], context + [2, 99], max_length=10, side="right")
    assert short.ids == list(range(192, 200)) + [1, 99, 2, 99]
    with pytest.raises(ValueError, match="truncation side must be left or right, got 'middle'"):
        fit([1], [[2]], 10, "middle")
