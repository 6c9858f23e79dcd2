"""The reward scorer reads a prompt once however many responses to it it scores, and scores
exactly what a plain forward over the whole dialogue scores."""

import torch

from rewardmodel.modeling import encode, pad_batch, scores
from rewardmodel.scoring import load_scorer

PROMPTS = ["How do I bake bread?", "Name three rivers in Europe, please.", "Is it safe to eat raw eggs?"]
ANSWERS = ["Knead the dough.", "The Rhine, the Danube and the Loire.", "No.", "Usually, if pasteurised."]


def plain_scores(scorer, conversations):
    encoded = [encode(scorer.tokenizer, c, scorer.max_length) for c in conversations]
    with torch.inference_mode():
        return scores(scorer.model, *pad_batch(encoded, scorer.tokenizer.pad_token_id)).tolist()


def test_k_responses_to_one_prompt_read_the_prompt_once_and_score_as_a_full_forward(tiny_reward_model_path):
    scorer = load_scorer(tiny_reward_model_path, "cpu")
    conversations = [[{"role": "user", "content": p}, {"role": "assistant", "content": a}]
                     for p in PROMPTS for a in ANSWERS]  # K = 4 responses per prompt
    conversations.append([{"role": "assistant", "content": "A reply with no question before it."}])

    first = scorer.score(conversations, batch_size=4)
    again = scorer.score(conversations, batch_size=4)

    torch.testing.assert_close(torch.tensor(first), torch.tensor(plain_scores(scorer, conversations)),
                               atol=1e-4, rtol=1e-4)
    assert again == first
    # Each prompt was computed once; the second call found all of them (the lone reply has no prompt).
    assert scorer.prompts.misses == len(PROMPTS)
    assert scorer.prompts.hits == 2 * len(PROMPTS) * len(ANSWERS) - len(PROMPTS)
