"""Training on the tiny model: it learns separable pairs, and a killed run resumes to the same model."""

import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardmodel.evaluation import report, score_pairs
from rewardmodel.modeling import encode, load_for_scoring
from rewardmodel.training import RESUME_DIR, micro_batches, pieces, train
from tests.conftest import REPO
from tests.rewardmodel.synthetic import resume_config, separable_pairs


def _heldout_accuracy(checkpoint, pairs):
    model, tokenizer = load_for_scoring(checkpoint)
    return report(pairs, score_pairs(model, tokenizer, pairs, 64))


def test_training_lowers_the_loss_and_beats_chance_on_unseen_prompts(tiny_model_path, tmp_path):
    losses = []
    config = resume_config(checkpoint_every=1000, epochs=2.0)
    result = train(config, separable_pairs(48), tmp_path / "rm", base_path=tiny_model_path,
                   on_progress=lambda step, total, metrics: losses.append(metrics["loss/rm"]))
    assert result.steps == len(losses) == 12
    assert losses[-1] < losses[0] * 0.7
    heldout = _heldout_accuracy(result.checkpoint, separable_pairs(30, offset=1000))
    assert heldout["accuracy"] >= 0.9
    assert set(heldout["per_strength"]) == {"better", "slightly_better", "negligibly_better"}
    assert not (tmp_path / "rm" / RESUME_DIR).exists()  # resume state is dropped once saved


@pytest.mark.parametrize("options", [{"train_layers": 1}, {"lora_rank": 4}])
def test_cpu_budget_options_train_only_part_of_the_model(tiny_model_path, tmp_path, options):
    config = resume_config(checkpoint_every=1000, epochs=2.0, **options)
    result = train(config, separable_pairs(48), tmp_path / "rm", base_path=tiny_model_path)
    trained, _ = load_for_scoring(result.checkpoint)
    original = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    # The embeddings never train under either option; the scores still separate the pairs.
    assert torch.equal(trained.model.embed_tokens.weight, original.model.embed_tokens.weight)
    first_layer_same = torch.equal(
        trained.model.layers[0].self_attn.q_proj.weight, original.model.layers[0].self_attn.q_proj.weight
    )
    assert first_layer_same == ("train_layers" in options)
    assert _heldout_accuracy(result.checkpoint, separable_pairs(20, offset=500))["accuracy"] >= 0.8


def test_long_dialogues_lose_their_oldest_context_not_the_response(tiny_model_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    messages = [{"role": "user", "content": "blah " * 500}, {"role": "assistant", "content": "The end."}]
    ids = encode(tokenizer, messages, 32)
    assert len(ids) == 32
    assert tokenizer.decode(ids).endswith("The end.<|im_end|>")


def test_length_grouping_keeps_similar_lengths_together_in_a_seeded_order():
    lengths = [i % 97 for i in range(512)]
    batches = micro_batches(lengths, 8, 1.0, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(512))  # every pair once
    assert batches == micro_batches(lengths, 8, 1.0, seed=1)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 10  # random batches would span most of 0..96


@pytest.mark.parametrize("where", ["after-step", "in-checkpoint"])
def test_a_killed_run_resumes_to_the_same_model(tiny_model_path, tmp_path, where):
    pairs = separable_pairs(96)  # 12 optimizer steps, a checkpoint every 3
    whole = train(resume_config(), pairs, tmp_path / "whole", base_path=tiny_model_path)
    killed = subprocess.run(
        [sys.executable, "-m", "tests.rewardmodel.synthetic", str(tiny_model_path),
         str(tmp_path / "killed"), "7" if where == "after-step" else "6", where],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = train(resume_config(), pairs, tmp_path / "killed", base_path=tiny_model_path)
    assert resumed.resumed_from_step == (6 if where == "after-step" else 3)
    probe = separable_pairs(12, offset=200)
    a = _scores(whole.checkpoint, probe)
    b = _scores(resumed.checkpoint, probe)
    assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-3), (a, b)


def _scores(checkpoint, pairs):
    model, tokenizer = load_for_scoring(checkpoint)
    return [s for pair in score_pairs(model, tokenizer, pairs, 64) for s in pair]


def test_a_token_cap_runs_long_micro_batches_in_pieces_to_the_same_model(tiny_model_path, tmp_path):
    lengths = [30, 10, 50, 20]
    assert pieces([0, 1, 2, 3], lengths, 60) == [[1, 3], [0], [2]]  # rows x longest <= 60
    assert pieces([0, 1, 2, 3], lengths, 0) == [[0, 1, 2, 3]]
    assert pieces([2], lengths, 10) == [[2]]  # a row over the cap still runs, alone

    pairs = separable_pairs(32)
    whole = train(resume_config(max_batch_tokens=0), pairs, tmp_path / "whole", base_path=tiny_model_path)
    capped = train(resume_config(max_batch_tokens=90), pairs, tmp_path / "capped", base_path=tiny_model_path)
    probe = separable_pairs(12, offset=200)
    assert torch.allclose(torch.tensor(_scores(whole.checkpoint, probe)),
                          torch.tensor(_scores(capped.checkpoint, probe)), atol=1e-4)


def test_the_margin_decides_which_pairs_the_model_separates_most(tiny_model_path, tmp_path):
    # Two kinds of pairs (even and odd questions), each learnable from its own words. AdamW
    # rescales every step, so a margin shared by all pairs changes little; what it does is weigh
    # the pairs against each other. Whichever kind carries margin 3 must end up with the wider gap.
    def pairs(count, offset, wide_kind):
        result = []
        for number, pair in enumerate(separable_pairs(count, offset), start=offset):
            if number % 2:
                pair = replace(pair, chosen="Sure, the short answer is yes.", rejected="Ask someone else.")
            result.append(replace(pair, margin=3.0 if number % 2 == wide_kind else 0.0))
        return result

    even_minus_odd = []  # mean score gap of the even kind minus that of the odd kind, per run
    for wide_kind in (0, 1):
        result = train(resume_config(checkpoint_every=1000, epochs=2.0), pairs(40, 0, wide_kind),
                       tmp_path / f"wide{wide_kind}", base_path=tiny_model_path)
        scores = _scores(result.checkpoint, pairs(20, 300, wide_kind))
        gaps = [chosen - rejected for chosen, rejected in zip(scores[::2], scores[1::2])]
        even_minus_odd.append((sum(gaps[0::2]) - sum(gaps[1::2])) / 10)
    assert even_minus_odd[0] > even_minus_odd[1] + 0.5, even_minus_odd
