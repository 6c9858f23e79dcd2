"""Issue 21: the options that keep a reward model from learning "the longer answer wins"."""

import pytest
import torch

from core.heldout import prompt_key
from modelruntime.config import ConfigError
from rewardmodel import training
from rewardmodel.config import RewardModelConfig
from rewardmodel.data import TrainingPair, chosen_is_longer, length_balanced_batches
from rewardmodel.evaluation import score_pairs
from rewardmodel.loss import length_decorrelation_penalty, length_head_fit, length_log_ratios
from rewardmodel.modeling import load_for_scoring
from tests.rewardmodel.synthetic import resume_config


def test_the_decorrelation_penalty_is_the_squared_correlation_of_score_gap_and_length_gap():
    # Score gaps (1, 0, 2, 1) against length gaps (1, 2, 3, 4): centred (0, -1, 1, 0) and
    # (-1.5, -0.5, 0.5, 1.5); sum of products 1, norms sqrt(2) and sqrt(5): corr^2 = 1 / 10.
    chosen, rejected = torch.tensor([1.0, 0.5, 2.5, 1.0]), torch.tensor([0.0, 0.5, 0.5, 0.0])
    gaps = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert length_decorrelation_penalty(chosen, rejected, gaps, 2.0).item() == pytest.approx(0.2)
    # A model that scores by length is penalised by the full weight, whichever way it leans.
    assert length_decorrelation_penalty(gaps, torch.zeros(4), gaps, 0.5).item() == pytest.approx(0.5)
    assert length_decorrelation_penalty(-gaps, torch.zeros(4), gaps, 0.5).item() == pytest.approx(0.5)
    # Off, too few pairs for a correlation, or lengths that do not vary: nothing.
    assert length_decorrelation_penalty(chosen, rejected, gaps, 0.0).item() == 0
    assert length_decorrelation_penalty(chosen[:2], rejected[:2], gaps[:2], 1.0).item() == 0
    assert length_decorrelation_penalty(chosen, rejected, torch.full((4,), 3.0), 1.0).item() == 0


def test_descending_the_penalty_unties_the_scores_from_length():
    gaps = torch.tensor([-30.0, -10.0, 5.0, 20.0, 40.0, 60.0])
    chosen = (gaps / 20 + torch.tensor([0.3, -0.2, 0.1, 0.4, -0.3, 0.2])).requires_grad_()
    optimizer = torch.optim.SGD([chosen], lr=1.0)
    before = length_decorrelation_penalty(chosen, torch.zeros(6), gaps, 1.0).item()
    for _ in range(50):
        optimizer.zero_grad()
        length_decorrelation_penalty(chosen, torch.zeros(6), gaps, 1.0).backward()
        optimizer.step()
    assert before > 0.8
    assert length_decorrelation_penalty(chosen, torch.zeros(6), gaps, 1.0).item() < 0.05


def test_balanced_batches_hold_as_many_chosen_longer_as_chosen_shorter_pairs_while_both_last():
    # 12 pairs whose chosen is longer, 4 shorter, 2 equally long; batches of 4.
    kinds = [True] * 12 + [False] * 4 + [None] * 2
    batches = length_balanced_batches(kinds, list(range(18)), batch_size=4, epochs=1.0, seed=3)
    assert sorted(i for batch in batches for i in batch) == list(range(18))  # each pair once
    balanced = [b for b in batches if [kinds[i] for i in b].count(True) == [kinds[i] for i in b].count(False) == 2]
    # 4 shorter pairs pair up with 4 longer ones: 2 balanced batches; 8 longer + 2 equal: 4, 4, 2.
    assert len(balanced) == 2
    assert sorted(len(b) for b in batches) == [2, 4, 4, 4, 4]
    # Two epochs see every pair twice; the seed fixes the order.
    twice = length_balanced_batches(kinds, list(range(18)), batch_size=4, epochs=2.0, seed=3)
    assert sorted(i for batch in twice for i in batch) == sorted(list(range(18)) * 2)
    assert twice == length_balanced_batches(kinds, list(range(18)), batch_size=4, epochs=2.0, seed=3)


def _pairs():
    """16 pairs, chosen longer in half; the chosen-longer pairs are also the long rows, so plain
    length grouping puts them together."""
    pairs = []
    for i in range(16):
        context = [{"role": "user", "content": f"Question {i}?"}]
        long, short = "word " * (30 + i), "word " * 2
        chosen, rejected = (long, short) if i % 2 else ("yes " * 2, "no " * 4)
        pairs.append(TrainingPair(context=context, chosen=chosen, rejected=rejected, prompt_key=prompt_key(context)))
    return pairs


def _train_recording(tmp_path, tiny_model_path, monkeypatch, **options):
    seen = []
    original = training.packed_batch

    def recording(packed, *args, **kwargs):
        seen.append([p.chosen > p.rejected for p in packed])  # tokens; chars agree on _pairs()
        return original(packed, *args, **kwargs)

    monkeypatch.setattr(training, "packed_batch", recording)
    config = resume_config(checkpoint_every=1000, max_batch_tokens=0, **options)
    result = training.train(config, _pairs(), tmp_path / str(len(options)), base_path=tiny_model_path)
    return seen, result


def test_training_with_the_options_sees_balanced_batches_and_the_penalty(tiny_model_path, tmp_path, monkeypatch):
    assert [chosen_is_longer(p) for p in _pairs()][:2] == [False, True]
    plain, plain_result = _train_recording(tmp_path, tiny_model_path, monkeypatch)
    assert any(len(set(batch)) == 1 for batch in plain)  # some plain batch is all one kind
    seen, result = _train_recording(tmp_path, tiny_model_path, monkeypatch, length_balanced_batches=True,
                                    length_decorrelation_weight=5.0)
    assert len(seen) == 4 and all(batch.count(True) == batch.count(False) == 2 for batch in seen)
    # The penalty is in the training loss (it is >= 0, so the loss can only rise).
    assert result.metrics["loss/rm"] > plain_result.metrics["loss/rm"]


def test_a_negative_decorrelation_weight_is_refused_naming_the_field():
    with pytest.raises(ConfigError) as error:
        RewardModelConfig(length_decorrelation_weight=-0.5)
    assert error.value.field == "length_decorrelation_weight"
    assert not RewardModelConfig().length_balanced_batches  # off unless asked for


def test_the_length_head_weight_is_the_one_parameter_bradley_terry_fit():
    # Log ratios (1, 1, 1, -1): the likelihood 3 log s(w) + log s(-w) peaks where s(w) = 3/4,
    # w = ln 3.
    assert length_head_fit(torch.tensor([1.0, 1.0, 1.0, -1.0]), l2=0.0) == pytest.approx(1.0986123, abs=1e-6)
    # Chosen shorter as often and by as much as longer: length says nothing.
    assert length_head_fit(torch.tensor([0.5, -0.5, 2.0, -2.0])) == pytest.approx(0.0, abs=1e-9)
    # Length separates the data: a large but finite weight (the small l2).
    assert 5 < length_head_fit(torch.tensor([0.5, 1.0, 2.0])) < 1000
    pair = TrainingPair(context=[], chosen="a" * 19, rejected="b" * 9)  # (19 + 1) / (9 + 1): ln 2
    assert length_log_ratios([pair]).item() == pytest.approx(0.6931472, abs=1e-6)


def _mostly_longer_wins_pairs():
    """The longer response wins 12 of 16 pairs; the chosen one always says "good", the rejected "bad"."""
    pairs = []
    for i in range(16):
        context = [{"role": "user", "content": f"Tell me about {i}."}]
        long, short = 8 + 2 * i, 1 + i % 3
        chosen, rejected = ("good " * long, "bad " * short) if i % 4 else ("good " * short, "bad " * long)
        pairs.append(TrainingPair(context=context, chosen=chosen, rejected=rejected, prompt_key=prompt_key(context)))
    return pairs


def test_the_length_head_keeps_the_model_from_learning_longer_wins(tiny_model_path, tmp_path):
    # The probe: the same neutral words, long against short. A gap there is a lean to length alone.
    probe = [TrainingPair(context=[{"role": "user", "content": f"Say something {i}."}],
                          chosen="so " * (10 + 3 * i), rejected="so " * (1 + i % 2)) for i in range(8)]
    lean, weights = {}, {}
    for head in (False, True):
        result = training.train(resume_config(checkpoint_every=1000, epochs=6, length_head=head), _mostly_longer_wins_pairs(),
                                tmp_path / str(head), base_path=tiny_model_path)
        weights[head] = result.metrics["length_head_weight"]
        model, tokenizer = load_for_scoring(result.checkpoint)  # what scoring sees: the model, no length term
        lean[head] = sum(c - r for c, r in score_pairs(model.eval(), tokenizer, probe, 64)) / len(probe)
    assert weights[False] == 0 and weights[True] > 0.5  # fitted: the longer wins 12 of 16
    # Without the head the model picks up "longer wins" beside "good beats bad"; with it, the pairs
    # length already explains weigh less and the ones against length more (0.07 against 0.33 here).
    assert lean[True] < lean[False] - 0.15
