"""Response generation on the tiny Llama: order, seeding, chat template, length limits."""

import pytest
import torch

from rlhf.generation import SamplingConfig, chat_prompt, generate_responses

QUESTION = [{"role": "user", "content": "What is a reward model?"}]
DIALOGUE = [
    {"role": "system", "content": "Answer like a pirate."},
    {"role": "user", "content": "Name a colour of the sea."},
    {"role": "assistant", "content": "Arr, it be deep blue."},
    {"role": "user", "content": "And at night?"},
]
LONG = [{"role": "user", "content": "Tell me a very long story about a lighthouse keeper and the storm. " * 3}]
CONVERSATIONS = [LONG, QUESTION, DIALOGUE, [{"role": "user", "content": "Hi"}]]

GREEDY = SamplingConfig(temperature=0, max_new_tokens=12)


def test_one_response_per_conversation_in_input_order(tiny_lm):
    model, tokenizer = tiny_lm
    config = SamplingConfig(temperature=0, max_new_tokens=6)

    together = generate_responses(model, tokenizer, CONVERSATIONS, config, batch_size=2)
    one_by_one = [generate_responses(model, tokenizer, [c], config)[0] for c in CONVERSATIONS]

    assert all(isinstance(text, str) for text in together)
    assert together == one_by_one


def test_greedy_response_does_not_depend_on_its_batch_neighbours(tiny_lm):
    # Left padding done wrong shows up as different text for a short prompt batched with long ones.
    model, tokenizer = tiny_lm
    alone = generate_responses(model, tokenizer, [QUESTION], GREEDY)
    batched = generate_responses(model, tokenizer, [LONG, QUESTION, DIALOGUE], GREEDY, batch_size=3)

    assert batched[1] == alone[0] != ""


def test_same_seed_gives_same_responses_and_another_seed_differs(tiny_lm):
    model, tokenizer = tiny_lm
    conversations = [QUESTION, DIALOGUE]

    def sample(seed):
        config = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=10, seed=seed)
        return generate_responses(model, tokenizer, conversations, config)

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_seeded_generation_leaves_the_callers_random_stream_alone(tiny_lm):
    model, tokenizer = tiny_lm
    torch.manual_seed(123)
    expected = torch.rand(3)

    torch.manual_seed(123)
    generate_responses(model, tokenizer, [QUESTION], SamplingConfig(max_new_tokens=4, seed=5))

    assert torch.equal(torch.rand(3), expected)


def test_multi_turn_prompt_carries_the_earlier_turns_in_the_chat_template(tiny_lm):
    _, tokenizer = tiny_lm

    prompt = chat_prompt(tokenizer, DIALOGUE)

    turns = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>" for m in DIALOGUE]
    positions = [prompt.index(turn) for turn in turns]
    assert positions == sorted(positions)
    assert prompt.endswith("<|im_start|>assistant\n")


def test_earlier_turns_change_the_reply(tiny_lm):
    model, tokenizer = tiny_lm
    last_turn_only = [DIALOGUE[-1]]

    with_context, without_context = generate_responses(model, tokenizer, [DIALOGUE, last_turn_only], GREEDY)

    assert with_context != without_context


def test_max_new_tokens_caps_the_response(tiny_lm):
    # The tiny model emits arbitrary tokens, whose text need not re-tokenize to the same count;
    # greedy decoding lets us check the cap as "the first N tokens of the longer answer" instead.
    # The real model's token count is checked in test_modelstore.
    model, tokenizer = tiny_lm
    short = generate_responses(model, tokenizer, [QUESTION], SamplingConfig(temperature=0, max_new_tokens=3))[0]
    longer = generate_responses(model, tokenizer, [QUESTION], SamplingConfig(temperature=0, max_new_tokens=30))[0]

    assert short and longer.startswith(short)
    assert len(longer) > len(short)


def test_no_conversations_gives_no_responses(tiny_lm):
    model, tokenizer = tiny_lm

    assert generate_responses(model, tokenizer, [], SamplingConfig()) == []


@pytest.mark.parametrize(
    "conversation",
    [[], [{"role": "assistant", "content": "I speak first"}], [{"role": "robot", "content": "beep"}]],
)
def test_conversation_must_end_with_a_user_turn(tiny_lm, conversation):
    model, tokenizer = tiny_lm

    with pytest.raises(ValueError):
        generate_responses(model, tokenizer, [QUESTION, conversation], SamplingConfig())


@pytest.mark.parametrize("bad", [dict(temperature=-0.1), dict(top_p=0), dict(top_p=1.5), dict(max_new_tokens=0)])
def test_sampling_config_rejects_impossible_settings(bad):
    with pytest.raises(ValueError):
        SamplingConfig(**bad)


def test_sampling_config_is_stored_as_plain_settings():
    config = SamplingConfig(temperature=1.2, seed=3)

    assert config.to_dict() == {"temperature": 1.2, "top_p": 0.9, "max_new_tokens": 128, "seed": 3}
    assert SamplingConfig(**config.to_dict()) == config


def test_k_copies_share_one_prefill_and_decode_as_if_alone(tiny_lm):
    from rlhf.generation import sample_responses, shared_prefill

    model, tokenizer = tiny_lm
    config = SamplingConfig(temperature=0, max_new_tokens=8)
    shared = sample_responses(model, tokenizer, [LONG, QUESTION, DIALOGUE], config, k=3, batch_size=9)
    alone = [sample_responses(model, tokenizer, [c], config, k=1)[0][0] for c in (LONG, QUESTION, DIALOGUE)]
    for copies, single in zip(shared, alone):
        assert [s.response_ids for s in copies] == [single.response_ids] * 3

    batch = tokenizer.pad({"input_ids": [[5, 6, 7], [5, 6, 7], [8, 9]]}, padding_side="left", return_tensors="pt")
    cache = shared_prefill(model, batch["input_ids"], batch["attention_mask"])
    assert cache.get_seq_length() == 2 and cache.layers[0].keys.shape[0] == 3  # 2 distinct rows run, 3 rows kept
    assert shared_prefill(model, batch["input_ids"][1:], batch["attention_mask"][1:]) is None  # nothing to share
