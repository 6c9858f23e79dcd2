"""The reward scorer reads a prompt once however many responses to it it scores, and scores
exactly what a plain forward over the whole dialogue scores."""

import pytest
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


LONG_ANSWER = "The quick brown fox jumps over the lazy dog. " * 12


def _trained_with(tiny_reward_model_path, tmp_path, side):
    """The tiny RM's checkpoint, as if trained with max_length 48 and `side` (its margin.json says so)."""
    import json
    import shutil

    from modelruntime.modelstore import MARKER_NAME

    path = tmp_path / side
    shutil.copytree(tiny_reward_model_path, path)
    metadata = json.loads((path / MARKER_NAME).read_text())
    (path / MARKER_NAME).write_text(json.dumps({**metadata, "config": {"max_length": 48, "truncation_side": side}}))
    return path


def test_the_scorer_cuts_long_dialogues_as_the_model_was_trained_and_evaluated(tiny_reward_model_path, tmp_path):
    from rewardmodel.data import TrainingPair
    from rewardmodel.evaluation import score_pairs

    questions = ["Summarise this fable in one line, please.", "Translate this fable into French."]
    pairs = [TrainingPair(context=[{"role": "user", "content": q}], chosen=LONG_ANSWER + "The end.",
                          rejected=LONG_ANSWER + "Fin.", objective="helpfulness") for q in questions]
    for side in ("left", "right"):
        scorer = load_scorer(_trained_with(tiny_reward_model_path, tmp_path, side), "cpu")
        assert (scorer.max_length, scorer.truncation_side) == (48, side)
        dialogues = [[*p.context, {"role": "assistant", "content": text}] for p in pairs for text in (p.chosen, p.rejected)]
        scored = scorer.score(dialogues)
        # PPO's reward and the held-out evaluation read the same tokens.
        evaluated = [s for pair in score_pairs(scorer.model, scorer.tokenizer, pairs, 48, truncation_side=side) for s in pair]
        torch.testing.assert_close(torch.tensor(scored), torch.tensor(evaluated), atol=1e-4, rtol=1e-4)
        if side == "left":  # reads the answers' ends: the question is gone, the endings differ
            assert scored[0] == pytest.approx(scored[2], abs=1e-5) and scored[0] != pytest.approx(scored[1], abs=1e-5)
        else:  # reads the question and the answers' starts: the endings are cut, the questions differ
            assert scored[0] == pytest.approx(scored[1], abs=1e-5) and scored[0] != pytest.approx(scored[2], abs=1e-5)
