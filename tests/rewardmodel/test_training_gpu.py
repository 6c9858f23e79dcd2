"""On a CUDA machine reward-model training and scoring run on the GPU (bf16 autocast)."""

import pytest
import torch

from rewardmodel.modeling import load_for_scoring
from rewardmodel.scoring import RewardScorer
from rewardmodel.training import train
from tests.rewardmodel.synthetic import resume_config, separable_pairs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_training_and_scoring_run_on_the_gpu(tiny_model_path, tmp_path):
    losses = []
    result = train(resume_config(checkpoint_every=1000, epochs=2.0), separable_pairs(48), tmp_path / "rm",
                   base_path=tiny_model_path, on_progress=lambda s, t, m: losses.append(m["loss/rm"]))
    assert losses[-1] < losses[0]
    model, tokenizer = load_for_scoring(result.checkpoint, "cuda")
    assert next(model.parameters()).device.type == "cuda"
    pair = separable_pairs(1, offset=900)[0]
    chosen, rejected = RewardScorer(model, tokenizer, 64).score(
        [[*pair.context, {"role": "assistant", "content": pair.chosen}],
         [*pair.context, {"role": "assistant", "content": pair.rejected}]]
    )
    assert chosen > rejected
