"""The one checkpoint module: a resumable state that would run code when unpickled is refused and
runs nothing (issue 15, hardening), and what the loops save round-trips through the safe loader."""

import json

import pytest
import torch

from rewardmodel.training import train
from tests.rewardmodel.synthetic import resume_config, separable_pairs


class Payload:
    """Unpickling this calls open(marker, "w"): a file appears if the loader ran it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def plant(folder, step, marker):
    """A complete-looking resumable state at `folder/step-N` whose pickle carries the payload."""
    checkpoint = folder / f"step-{step:07d}"
    checkpoint.mkdir(parents=True)
    torch.save({"weights": {}, "state": {"step": step}, "payload": Payload(marker)}, checkpoint / "state.pt")
    (checkpoint / "complete.json").write_text(json.dumps({"step": step}))


def test_a_planted_reward_model_state_is_refused_on_resume_and_runs_nothing(tiny_model_path, tmp_path):
    marker = tmp_path / "code-ran"
    plant(tmp_path / "rm" / "resume", 3, marker)

    with pytest.raises(Exception, match="refused"):
        train(resume_config(), separable_pairs(16), tmp_path / "rm", base_path=tiny_model_path)

    assert not marker.exists()


def test_a_planted_ppo_state_is_refused_on_resume_and_runs_nothing(tiny_model_path, tmp_path):
    from rlhf.config import PPOConfig
    from rlhf.ppo import ppo_train

    marker = tmp_path / "code-ran"
    plant(tmp_path / "ppo" / "resume", 1, marker)
    config = PPOConfig(iterations=2, batch_size=2, minibatch_size=2, max_new_tokens=4)

    with pytest.raises(Exception, match="refused"):
        ppo_train(config, tiny_model_path, [[{"role": "user", "content": "Hi"}]], lambda c: [0.0] * len(c),
                  tmp_path / "ppo")

    assert not marker.exists()


def test_optimizer_schedule_and_rng_states_load_with_the_safe_loader(tmp_path):
    from dataclasses import dataclass

    from modelruntime.checkpoint import rng_state, rng_state_restore, state_load, state_save
    from modelruntime.config import AdamWConfig
    from modelruntime.optim import cosine_schedule, optimizer_create

    @dataclass
    class Config(AdamWConfig):
        learning_rate: float = 1e-3

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    optimizer = optimizer_create(named_parameters=model.named_parameters(), config=Config())
    schedule = cosine_schedule(optimizer, total_steps=10, warmup_steps=2, min_lr_ratio=0.1)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    schedule.step()
    state_save(tmp_path, step=1, state={"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                                        "rng": rng_state(), "log": [{"loss/rm": 0.5}]})
    state_save(tmp_path, step=2, state={"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                                        "rng": rng_state(), "log": [{"loss/rm": 0.5}]})
    expected = torch.rand(3)

    saved = state_load(tmp_path)
    rng_state_restore(saved["rng"])
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])

    assert torch.equal(torch.rand(3), expected)  # the RNG continues where it was saved
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("step-")] == ["step-0000002"]  # the last one kept
    # Decay on the weight matrix only: the bias and both norm parameters are exempt.
    assert [len(g["params"]) for g in optimizer.param_groups] == [1, 3]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]


def test_the_optimizer_takes_llama2s_adamw_settings_and_spares_norms_and_biases():
    from dataclasses import dataclass

    from modelruntime.config import AdamWConfig
    from modelruntime.optim import optimizer_create

    @dataclass
    class Config(AdamWConfig):
        learning_rate: float = 1e-5

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    decay, no_decay = optimizer_create(named_parameters=model.named_parameters(), config=Config()).param_groups
    assert (decay["betas"], decay["eps"], decay["weight_decay"]) == ((0.9, 0.95), 1e-5, 0.1)  # Llama 2, sec. 2.2
    assert [tuple(p.shape) for p in decay["params"]] == [(4, 4)]  # the weight matrix only
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 3  # bias, norm weight, norm bias
