"""On a CUDA machine the policy loads onto the GPU and batched generation runs there."""

import pytest
import torch

from modelruntime.modelstore import load_policy
from rlhf.generation import SamplingConfig, generate_responses

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_policy_generates_on_the_gpu(tiny_model_dir):
    model, tokenizer = load_policy(tiny_model_dir)
    assert next(model.parameters()).device.type == "cuda"
    conversations = [[{"role": "user", "content": f"Question {i}?"}] for i in range(16)]
    config = SamplingConfig(temperature=0.8, max_new_tokens=8, seed=3)
    first = generate_responses(model, tokenizer, conversations, config, batch_size=8)
    assert len(first) == 16
    assert generate_responses(model, tokenizer, conversations, config, batch_size=8) == first
