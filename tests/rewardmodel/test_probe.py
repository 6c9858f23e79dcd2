"""The probe reward model (rewardmodel/probe.py) on the tiny model: the chat model stays frozen, the
head learns the pairs, every scorer reads it as it was trained, and an interrupted run resumes."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from modelruntime.config import ConfigError
from modelruntime.readout import READOUT_FILE
from rewardmodel.config import RewardModelConfig
from rewardmodel.evaluation import report, score_pairs
from rewardmodel.modeling import load_for_scoring
from rewardmodel.probe import head_fit, prompt_folds
from rewardmodel.scoring import load_scorer
from rewardmodel.training import RESUME_DIR, train
from tests.rewardmodel.synthetic import separable_pairs


def probe_config(**overrides):
    return RewardModelConfig(**{"method": "probe", "batch_size": 4, "max_length": 64, "probe_layers": "1,2",
                                **overrides})


def conversations(pair, side):
    return [*pair.context, {"role": "assistant", "content": getattr(pair, side)}]


def test_a_probe_learns_the_pairs_without_changing_the_model(tiny_model_path, tmp_path):
    progress = []
    result = train(probe_config(), separable_pairs(48), tmp_path / "rm", base_path=tiny_model_path,
                   on_progress=lambda step, total, metrics: progress.append((step, total)))
    assert progress[-1] == (13, 13) and len(progress) == 13  # 12 batches of 4 pairs read, then the fit
    assert result.metrics["layers"] == [1, 2] and 0 < result.metrics["l2"]
    assert (result.checkpoint / READOUT_FILE).is_file() and not (tmp_path / "rm" / RESUME_DIR).exists()

    model, tokenizer = load_for_scoring(result.checkpoint)
    original = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    for name, weight in original.model.state_dict().items():
        assert torch.equal(model.model.state_dict()[name], weight), f"{name} changed"
    heldout = separable_pairs(30, offset=1000)
    assert report(heldout, score_pairs(model, tokenizer, heldout, 64))["accuracy"] >= 0.9


def test_every_scorer_reads_a_probe_as_it_was_trained(tiny_model_path, tmp_path):
    """Packed pairs (training, evaluation) and RewardScorer with its prompt cache (PPO, rejection
    sampling, score_responses) give one score per response; training responses centre on 0."""
    pairs = separable_pairs(24)
    result = train(probe_config(), pairs, tmp_path / "rm", base_path=tiny_model_path)
    model, tokenizer = load_for_scoring(result.checkpoint)
    packed = torch.tensor(score_pairs(model, tokenizer, pairs, 64))
    scorer = load_scorer(result.checkpoint, "cpu")
    alone = torch.tensor([scorer.score([conversations(p, "chosen"), conversations(p, "rejected")]) for p in pairs])
    torch.testing.assert_close(alone, packed, atol=1e-3, rtol=1e-3)
    assert abs(float(packed.mean())) < 0.05 * float(packed.abs().mean())
    assert (packed[:, 0] > packed[:, 1]).all()


def test_an_interrupted_probe_resumes_from_the_pairs_it_had_read(tiny_model_path, tmp_path):
    pairs = separable_pairs(32)
    straight = train(probe_config(), pairs, tmp_path / "straight", base_path=tiny_model_path)

    class Stop(Exception):
        pass

    def stop_after_five(step, total, metrics):
        if step == 5:
            raise Stop

    with pytest.raises(Stop):
        train(probe_config(checkpoint_every=2), pairs, tmp_path / "rm", base_path=tiny_model_path,
              on_progress=stop_after_five)
    resumed = train(probe_config(checkpoint_every=2), pairs, tmp_path / "rm", base_path=tiny_model_path)
    assert resumed.resumed_from_step == 4  # the features of 4 batches were saved; the 5th is read again
    heads = [load_for_scoring(r.checkpoint)[0].score for r in (straight, resumed)]
    torch.testing.assert_close(heads[0].weight, heads[1].weight, atol=1e-4, rtol=1e-3)
    # Different pairs (or layers) are never mixed with features read for others.
    again = train(probe_config(checkpoint_every=2), separable_pairs(32, offset=500), tmp_path / "rm",
                  base_path=tiny_model_path)
    assert again.resumed_from_step == 0


def test_the_l2_weight_is_picked_by_cross_validation_over_prompts():
    """Features where one direction orders the pairs and many others are noise: CV prefers a
    larger L2 weight than the smallest, and its accuracy is measured on unseen prompts."""
    generator = torch.Generator().manual_seed(0)
    pairs = separable_pairs(200)
    signal = 1.0  # the gap on feature 0: 2 + noise of sd 1.4, right 92 % of the time
    features = torch.randn(200, 2, 150, generator=generator)
    features[:, 0, 0] += signal
    features[:, 1, 0] -= signal
    head, metrics = head_fit(features, torch.zeros(200), prompt_folds(pairs))
    assert metrics["l2"] > 1e-3 and metrics["rm/cv_accuracy"] == metrics["cv_by_l2"][str(metrics["l2"])]
    assert metrics["rm/cv_accuracy"] > 0.8 > min(metrics["cv_by_l2"].values())
    assert head.weight[0, 0] == head.weight[0].abs().max()


@pytest.mark.parametrize("field, values", [
    ("lora_rank", {"lora_rank": 8}),
    ("processes", {"processes": 2}),
    ("length_head", {"length_head": True}),
    ("probe_layers", {"probe_layers": "8, sixteen"}),
    ("method", {"method": "frozen"}),
    ("probe_layers", {"method": "finetune", "probe_layers": "8"}),
])
def test_a_probe_config_refuses_what_it_would_ignore_naming_the_field(field, values):
    with pytest.raises(ConfigError) as refused:
        RewardModelConfig.from_dict({"method": "probe", **values})  # values may set another method
    assert refused.value.field == field and field in str(refused.value)


def test_a_layer_the_model_does_not_have_is_refused_before_anything_is_read(tiny_model_path, tmp_path):
    with pytest.raises(ConfigError, match="probe_layers 9: the model has hidden states 0-2"):
        train(probe_config(probe_layers="1,9"), separable_pairs(8), tmp_path / "rm", base_path=tiny_model_path)
    assert not (tmp_path / "rm").exists()
