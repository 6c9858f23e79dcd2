"""PPO on the tiny Llama with toy rewards: an update moves toward the reward, KL starts at 0,
the log has every field, a stopped run resumes where it was, LoRA trains adapters only."""

import pytest
import torch

from modelruntime.checkpoint import RESUME_DIR, state_load
from modelruntime.modelstore import checkpoint_is_complete, load_policy, read_metadata
from rlhf.config import PPOConfig
from rlhf.ppo import PPOTrainer, policy_forward, ppo_train, prompts_for_iteration

PROMPTS = [[{"role": "user", "content": text}] for text in
           ("Hi", "What is a reward model?", "Name a colour.", "Tell me a joke about ducks.")]
LOG_KEYS = {"iteration", "reward/score", "kl/reference_k1", "loss/policy", "loss/value", "kl/rollout_k2",
            "ppo/clipfrac", "ppo/entropy", "ppo/response_length"}


def characters(conversations):
    """A toy reward: the response's length in characters."""
    return [float(len(c[-1]["content"])) for c in conversations]


def tiny_config(**overrides):
    values = dict(iterations=2, batch_size=4, minibatch_size=2, max_new_tokens=6, learning_rate=1e-3,
                  checkpoint_every=1, generation_batch_size=8)
    return PPOConfig(**{**values, **overrides})


def test_one_update_makes_high_reward_responses_more_likely(tiny_model_dir):
    policy, tokenizer = load_policy(tiny_model_dir, "cpu")
    trainer = PPOTrainer(tiny_config(batch_size=8, minibatch_size=4, kl_beta=0.0), policy, tokenizer, characters)
    rollout = trainer.rollout(PROMPTS * 2, seed=0)

    trainer.update(rollout)

    with torch.no_grad():
        new_logprobs, _, _ = policy_forward(trainer.policy, None, rollout.batch)
    mask = rollout.batch.response_mask
    change = ((new_logprobs - rollout.old_logprobs) * mask).sum(1)  # (B,) sequence log-prob change
    centred = rollout.scores - rollout.scores.mean()
    # The policy gradient's promise: log-probability moves up for above-average rewards, down below.
    assert (centred * change).sum() > 0
    assert change[rollout.scores.argmax()] > 0 > change[rollout.scores.argmin()]


def test_training_logs_each_iteration_and_starts_at_zero_kl(tiny_model_dir, tmp_path):
    result = ppo_train(tiny_config(), tiny_model_dir, PROMPTS, characters, tmp_path)

    assert [r["iteration"] for r in result.iterations] == [1, 2]
    assert all(LOG_KEYS <= set(r) for r in result.iterations)
    # The policy equals the reference before any step.
    assert result.iterations[0]["kl/reference_k1"] == pytest.approx(0.0, abs=1e-5)
    assert result.iterations[1]["kl/reference_k1"] != pytest.approx(0.0, abs=1e-6)
    assert all(1 <= r["ppo/response_length"] <= 6 for r in result.iterations)
    assert checkpoint_is_complete(result.checkpoint)
    assert read_metadata(result.checkpoint)["kind"] == "ppo"


def test_a_stopped_run_resumes_where_it_stopped_and_ends_like_an_unbroken_one(tiny_model_dir, tmp_path):
    unbroken = ppo_train(tiny_config(iterations=3), tiny_model_dir, PROMPTS, characters, tmp_path / "a")

    first = ppo_train(tiny_config(iterations=2), tiny_model_dir, PROMPTS, characters, tmp_path / "b")
    resumed = ppo_train(tiny_config(iterations=3), tiny_model_dir, PROMPTS, characters, tmp_path / "b")

    assert first.resumed_from == 0 and resumed.resumed_from == 2
    assert resumed.iterations[:2] == first.iterations
    assert resumed.iterations[2]["reward/score"] == pytest.approx(unbroken.iterations[2]["reward/score"])
    kl = "kl/reference_k1"
    assert resumed.iterations[2][kl] == pytest.approx(unbroken.iterations[2][kl], abs=1e-4)


def test_lora_trains_adapters_only_and_saves_a_plain_checkpoint(tiny_model_dir, tmp_path):
    base, _ = load_policy(tiny_model_dir, "cpu")
    result = ppo_train(tiny_config(lora_rank=4, iterations=1, learning_rate=1e-2), tiny_model_dir,
                       PROMPTS, characters, tmp_path)

    state = state_load(tmp_path / RESUME_DIR)
    assert state["policy"] and all("lora_" in name for name in state["policy"])
    merged, _ = load_policy(result.checkpoint, "cpu")  # loads without peft: the adapter is merged
    weight = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged.state_dict()[weight], base.state_dict()[weight])
    assert result.iterations[0]["kl/reference_k1"] == pytest.approx(0.0, abs=1e-5)


def test_resuming_with_another_lora_rank_fails_clearly(tiny_model_dir, tmp_path):
    ppo_train(tiny_config(iterations=1), tiny_model_dir, PROMPTS, characters, tmp_path)

    with pytest.raises(ValueError, match="lora_rank"):
        ppo_train(tiny_config(iterations=2, lora_rank=4), tiny_model_dir, PROMPTS, characters, tmp_path)


def test_a_saved_run_is_not_resumed_with_other_settings(tiny_model_dir, tmp_path):
    ppo_train(tiny_config(iterations=1), tiny_model_dir, PROMPTS, characters, tmp_path)
    saved = sorted((tmp_path / RESUME_DIR).rglob("*.pt"))[-1].read_bytes()

    with pytest.raises(ValueError, match=r"learning_rate=.* there, 0\.5 now"):
        ppo_train(tiny_config(iterations=2, learning_rate=0.5), tiny_model_dir, PROMPTS, characters, tmp_path)
    assert sorted((tmp_path / RESUME_DIR).rglob("*.pt"))[-1].read_bytes() == saved  # the saved run is untouched


def test_kl_stop_ends_training_early(tiny_model_dir, tmp_path):
    result = ppo_train(tiny_config(iterations=4, kl_stop=1e-9, learning_rate=1e-2), tiny_model_dir,
                       PROMPTS, characters, tmp_path)

    assert len(result.iterations) < 4 and "kl_stop" in result.stopped_early


def test_prompt_schedule_is_a_function_of_seed_and_iteration():
    prompts = list(range(5))
    first_pass = prompts_for_iteration(prompts, 0, 3, seed=1) + prompts_for_iteration(prompts, 1, 3, seed=1)[:2]

    assert sorted(first_pass) == prompts  # every prompt once per pass
    assert prompts_for_iteration(prompts, 4, 3, seed=1) == prompts_for_iteration(prompts, 4, 3, seed=1)


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_reference_log_probs_match_a_full_forward_and_each_prompt_is_read_once(tiny_model_dir, lora_rank):
    policy, tokenizer = load_policy(tiny_model_dir, "cpu")
    trainer = PPOTrainer(tiny_config(batch_size=8, minibatch_size=4, lora_rank=lora_rank), policy, tokenizer,
                         characters)

    for seed in (0, 1):  # the second rollout finds all four prompts in the reference's cache
        rollout = trainer.rollout(PROMPTS * 2, seed=seed)
        batch = rollout.batch
        with torch.no_grad():
            if lora_rank:
                with trainer.policy.disable_adapter():
                    expected, _, _ = policy_forward(trainer.policy, None, batch)
            else:
                expected, _, _ = policy_forward(trainer.reference, None, batch)
        actual = trainer.reference_logprobs(rollout.samples, batch.response_ids)
        mask = batch.response_mask.bool()
        torch.testing.assert_close(actual[mask], expected[mask], atol=1e-4, rtol=1e-4)
    assert trainer.reference_prompts.misses == len(PROMPTS)
