"""Chat-templated text back into messages: the split the reward server makes of OpenRLHF's queries."""

import copy

import pytest

from rlhf.chat_text import ChatTextError, chat_markers_learn, messages_from_chat_text, messages_from_query

DIALOGUE = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi\nthere"},
            {"role": "assistant", "content": "Hello!\n\nHow can I help?"}, {"role": "user", "content": "A joke."},
            {"role": "assistant", "content": "No."}]
# Llama 2's template: the system prompt sits inside the first [INST] block, so there are no role markers.
LLAMA2_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
                   "{% elif m['role'] == 'assistant' %} {{ m['content'] }} </s>{% endif %}{% endfor %}")


@pytest.fixture(scope="module")
def tokenizer(tiny_reward_model_path):
    from rewardmodel.modeling import _tokenizer

    return _tokenizer(tiny_reward_model_path)


@pytest.fixture(scope="module")
def markers(tokenizer):
    return chat_markers_learn(tokenizer)


def test_smollm2s_chatml_markers_are_learnt_from_its_template(markers):
    assert markers.starts == {"system": "<|im_start|>system\n", "user": "<|im_start|>user\n",
                              "assistant": "<|im_start|>assistant\n"}
    assert markers.end == "<|im_end|>\n"


def test_a_rendered_dialogue_splits_back_into_its_messages(tokenizer, markers):
    text = tokenizer.apply_chat_template(DIALOGUE, tokenize=False)

    assert messages_from_chat_text(text, markers=markers) == DIALOGUE


def test_a_decoded_rollout_with_eos_and_padding_after_it_splits_the_same(tokenizer, markers):
    prompt = tokenizer.apply_chat_template(DIALOGUE[:-1], tokenize=False, add_generation_prompt=True)

    assert messages_from_chat_text(prompt + "No.<|im_end|><|endoftext|><|im_end|>", markers=markers) == DIALOGUE
    truncated = messages_from_chat_text(prompt + "No, becau", markers=markers)  # cut at max_tokens
    assert truncated[-1] == {"role": "assistant", "content": "No, becau"}


def test_the_default_system_prompt_the_template_adds_is_kept(tokenizer, markers):
    text = tokenizer.apply_chat_template(DIALOGUE[1:3], tokenize=False)

    messages = messages_from_chat_text(text, markers=markers)
    assert messages[0]["role"] == "system" and messages[1:] == DIALOGUE[1:3]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == text  # the RM reads the same tokens


@pytest.mark.parametrize("text, problem", [
    ("<|im_start|>user\nHi<|im_end|>\n", "does not end with an assistant response"),
    ("<|im_start|>assistant\nHi<|im_end|>\n", "no user turn"),
    ("junk<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>", "expected a turn to start at character 0"),
])
def test_text_that_is_not_a_scorable_dialogue_is_refused(markers, text, problem):
    with pytest.raises(ChatTextError, match=problem):
        messages_from_chat_text(text, markers=markers)


def test_plain_text_is_split_at_its_prompt_and_refused_without_one(markers):
    assert messages_from_query("Q? A.", prompt="Q?", markers=markers) == [
        {"role": "user", "content": "Q?"}, {"role": "assistant", "content": " A."}]
    with pytest.raises(ChatTextError, match="no prompt"):
        messages_from_query("Q? A.", markers=markers)


def test_a_template_without_role_markers_gives_none(tokenizer):
    llama2 = copy.deepcopy(tokenizer)
    llama2.chat_template = LLAMA2_TEMPLATE

    assert chat_markers_learn(llama2) is None
