"""PPO against a reward function, as Llama 2 ran it (sec. 3.2.3), in one file that reads top to
bottom like CleanRL's: rollout -> reward -> advantages -> clipped update.

Policy with a value head on its last hidden state, a frozen reference (the initial policy; with
LoRA the same weights with the adapter switched off), rollouts from the sampling engine, the
whitened score minus a per-token KL penalty, GAE, the clipped objective, one gradient step per
minibatch. A resumable state is written every `checkpoint_every` iterations; calling `ppo_train`
again with the same `out_dir` continues where it stopped. No Django here.

With `config.processes` > 1, `ppo_train` runs as torchrun ranks (`ppo_from_spec`; the reward
function then comes from `reward_spec`: reward-model paths, not a Python closure). Every rank
samples and scores the whole batch of rollouts with the same seed, so the rollouts are the ones
one process draws; the update shards the policy and value head with FSDP2, each rank takes its
share of every minibatch's rows, and each loss is weighted by its share of the minibatch's
response tokens, so the averaged gradient is the one-process one. Sampling is not sped up by
more ranks (each does all of it); the update and the weights' memory are split.
"""

from __future__ import annotations

import contextlib
import copy
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from modelruntime import distributed
from modelruntime.allocator import keep_freed_memory
from modelruntime.checkpoint import (
    RESUME_DIR,
    config_check_same,
    rng_state,
    rng_state_restore,
    state_load,
    state_save,
    trainable_weights,
    trainable_weights_restore,
)
from modelruntime.config import ConfigError
from modelruntime.modelstore import pick_device, save_checkpoint
from modelruntime.optim import lora_wrap, optimizer_create
from modelruntime.prefixcache import PrefixCache
from rlhf.config import PPOConfig
from rlhf.generation import Sample, SamplingConfig, sample_responses
from rlhf.rewards import RewardFn, kl_penalised_rewards, whiten

# --- tensors and losses ---------------------------------------------------------------------------


@dataclass
class RolloutBatch:
    input_ids: torch.Tensor  # (B, W) prompt + response, right-padded
    attention_mask: torch.Tensor  # (B, W)
    positions: torch.Tensor  # (B, T) where the logits predicting each response token sit
    response_ids: torch.Tensor  # (B, T) right-padded
    response_mask: torch.Tensor  # (B, T) 1 on response tokens

    def select(self, rows: torch.Tensor) -> "RolloutBatch":
        return RolloutBatch(*(getattr(self, name)[rows] for name in self.__dataclass_fields__))


def rollout_batch(samples: list[Sample], pad_id: int, device="cpu") -> RolloutBatch:
    sequences = [s.prompt_ids + s.response_ids for s in samples]
    width = max(len(s) for s in sequences)
    longest = max(len(s.response_ids) for s in samples)
    input_ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    positions = torch.zeros((len(samples), longest), dtype=torch.long)
    response_ids = torch.full((len(samples), longest), pad_id, dtype=torch.long)
    response_mask = torch.zeros_like(response_ids)
    for row, (sample, sequence) in enumerate(zip(samples, sequences)):
        input_ids[row, : len(sequence)] = torch.tensor(sequence)
        attention_mask[row, : len(sequence)] = 1
        n = len(sample.response_ids)
        # The logits at position t predict token t + 1: response token j is read at p + j - 1.
        start = len(sample.prompt_ids) - 1
        positions[row] = torch.arange(start, start + longest).clamp(max=width - 1)
        response_ids[row, :n] = torch.tensor(sample.response_ids)
        response_mask[row, :n] = 1
    tensors = (input_ids, attention_mask, positions, response_ids, response_mask)
    return RolloutBatch(*(t.to(device) for t in tensors))


def policy_forward(model, value_head: nn.Module | None, batch: RolloutBatch, temperature: float = 1.0):
    """(log-probs (B, T), values (B, T) or None, logits (B, T, V)) of the response tokens.

    The LM head runs on response positions only: the prompt's logits are never needed.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.get_decoder()(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
    ).last_hidden_state  # (B, W, H)
    index = batch.positions.unsqueeze(-1).expand(-1, -1, hidden.size(-1))  # (B, T, H)
    response_hidden = hidden.gather(1, index)  # (B, T, H)
    logits = base.get_output_embeddings()(response_hidden).float() / temperature  # (B, T, V)
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, batch.response_ids.unsqueeze(-1)).squeeze(-1)
    values = value_head(response_hidden.float()).squeeze(-1) if value_head is not None else None
    return logprobs, values, logits


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over response tokens only: padding must not dilute a loss (loss masking)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)


def gae_advantages(rewards, values, mask, gamma: float, lam: float):
    """Generalised advantage estimation over response tokens (B, T) -> (advantages, returns).

    Rewards and values are zeroed on padding first, so a response's last token bootstraps from 0.
    """
    mask = mask.to(rewards.dtype)
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.size(1))):
        next_value = values[:, t + 1] if t + 1 < rewards.size(1) else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def ppo_losses(new_logprobs, old_logprobs, advantages, new_values, old_values, returns, mask, config: PPOConfig):
    """The clipped policy loss and the clipped value loss, averaged over response tokens."""
    ratio = torch.exp(new_logprobs - old_logprobs)  # (B, T)
    clipped_ratio = ratio.clamp(1 - config.clip_range, 1 + config.clip_range)
    pg_loss = masked_mean(torch.max(-advantages * ratio, -advantages * clipped_ratio), mask)
    clipped_values = old_values + (new_values - old_values).clamp(-config.value_clip, config.value_clip)
    v_loss = 0.5 * masked_mean(
        torch.max((new_values - returns) ** 2, (clipped_values - returns) ** 2), mask
    )
    clipfrac = masked_mean(((ratio - 1).abs() > config.clip_range).float(), mask)
    # KL(rollout policy || updated policy) per token by Schulman's "k2" estimator, (log r)^2 / 2
    # ("Approximating KL Divergence", 2020): how far this update moved from the sampling policy.
    rollout_kl = masked_mean(0.5 * (new_logprobs - old_logprobs) ** 2, mask)
    return pg_loss, v_loss, {"ppo/clipfrac": clipfrac.item(), "kl/rollout_k2": rollout_kl.item()}


def entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits, dim=-1)
    return masked_mean(-(logp.exp() * logp).sum(-1), mask)


# --- the trainer ----------------------------------------------------------------------------------


@dataclass
class Rollout:
    """One iteration's rollouts and what the update reads from them; (B, T) over response tokens."""

    batch: RolloutBatch
    samples: list[Sample]
    scores: torch.Tensor  # (B,) the reward function's score of each response
    old_logprobs: torch.Tensor  # (B, T) log pi of the sampling policy
    old_values: torch.Tensor  # (B, T)
    advantages: torch.Tensor  # (B, T) whitened GAE
    returns: torch.Tensor  # (B, T)
    kl: torch.Tensor  # (B, T) per-token KL to the reference, k1 estimate (see rlhf/rewards.py)


@dataclass
class PPOResult:
    checkpoint: Path
    iterations: list[dict] = field(default_factory=list)
    resumed_from: int = 0  # iterations already done when this call started
    stopped_early: str = ""


class PPOTrainer:
    """Holds policy, reference, value head and optimizer; `iteration()` does one PPO step."""

    def __init__(self, config: PPOConfig, policy, tokenizer, reward_fn: RewardFn):
        self.config, self.tokenizer, self.reward_fn = config, tokenizer, reward_fn
        keep_freed_memory()  # no page faults for each update's gradients (modelruntime/allocator.py)
        self.device = policy.device
        if config.lora_rank:
            self.policy = lora_wrap(policy, rank=config.lora_rank, alpha=config.lora_alpha, task_type="CAUSAL_LM")
            self.reference = None
        else:
            self.policy = policy
            self.reference = copy.deepcopy(policy).eval().requires_grad_(False)
        self.policy.eval()  # no dropout in rollouts or updates: old and new log-probs must agree
        self.reference_prompts = PrefixCache()  # the reference is frozen: each prompt is read once a run
        hidden = policy.config.hidden_size
        self.value_head = nn.Linear(hidden, 1).to(self.device)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        self.sharded = torch.distributed.is_initialized()
        if self.sharded:  # after the reference's copy: it stays whole and frozen on every rank
            distributed.model_shard(self.policy)
            distributed.module_shard(self.value_head)
            distributed.gather_buffers_init(self.policy, self.value_head)
        # One module over both, so a sharded state names every parameter (policy.*, value_head.*).
        self.trainable = nn.ModuleDict({"policy": self.policy, "value_head": self.value_head})
        named = [*self.policy.named_parameters(), *self.value_head.named_parameters(prefix="value_head")]
        self.optimizer = optimizer_create(named_parameters=named, config=config)

    def trainable_parameters(self):
        return [p for p in self.policy.parameters() if p.requires_grad] + list(self.value_head.parameters())

    def reference_logprobs(self, samples: list[Sample], response_ids: torch.Tensor) -> torch.Tensor:
        """log pi_0 of every response token (B, T), T = response_ids' width.

        The prompt's keys and values come from the reference's prefix cache; only the last prompt
        token and the response run (they are what predict the response tokens).
        """
        prefixes = [s.prompt_ids[:-1] for s in samples]
        suffixes = [s.prompt_ids[-1:] + s.response_ids[:-1] for s in samples]
        if self.reference is None:  # LoRA: the reference is the base model, adapter switched off
            base, switched_off = self.policy.get_base_model(), self.policy.disable_adapter()
        else:
            base, switched_off = self.reference, contextlib.nullcontext()
        with switched_off:
            hidden, _ = self.reference_prompts.run(base.get_decoder(), prefixes, suffixes)  # (B, T, H)
            logits = base.get_output_embeddings()(hidden).float() / self.config.temperature
        width = hidden.size(1)  # this chunk's longest response; response_ids may be wider
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, response_ids[:, :width].unsqueeze(-1)).squeeze(-1)
        return F.pad(logprobs, (0, response_ids.size(1) - width))

    def rollout(self, prompts: list[list[dict]], seed: int) -> Rollout:
        """Sample one response per prompt; score it; per-token rewards, advantages and returns."""
        config = self.config
        # top_p 1: the sampled tokens must come from the very distribution PPO differentiates.
        sampling = SamplingConfig(temperature=config.temperature, top_p=1.0,
                                  max_new_tokens=config.max_new_tokens, seed=seed)
        # The old log-probs and the values' inputs come from the sampling pass itself: no second
        # forward of the policy over the rollouts.
        samples = [per_prompt[0] for per_prompt in sample_responses(
            self.policy, self.tokenizer, prompts, sampling, k=1, batch_size=config.generation_batch_size,
            record_policy=True,
        )]
        conversations = [prompt + [{"role": "assistant", "content": s.text}] for prompt, s in zip(prompts, samples)]
        scores = torch.tensor(self.reward_fn(conversations), dtype=torch.float32, device=self.device)  # (B,)
        batch = rollout_batch(samples, self.tokenizer.pad_token_id, self.device)
        with torch.no_grad():
            old_logprobs = pad_sequence([s.logprobs for s in samples], batch_first=True).to(self.device)  # (B, T)
            hidden = pad_sequence([s.hidden for s in samples], batch_first=True).to(self.device)  # (B, T, H)
            old_values = self.value_head(hidden).squeeze(-1)  # (B, T)
            ref_logprobs = torch.cat([self.reference_logprobs([samples[i] for i in rows.tolist()],
                                                              batch.response_ids[rows])
                                      for rows in self.minibatches(len(samples), shuffle=False)])  # (B, T)
            mask = batch.response_mask
            score = whiten(scores) if config.whiten_rewards else scores  # (B,)
            rewards, kl = kl_penalised_rewards(score, old_logprobs, ref_logprobs, mask, config.kl_beta)
            advantages, returns = gae_advantages(rewards, old_values, mask, config.gamma, config.gae_lambda)
            advantages = whiten(advantages, mask)
        return Rollout(batch=batch, samples=samples, scores=scores, old_logprobs=old_logprobs,
                       old_values=old_values, advantages=advantages, returns=returns, kl=kl)

    def minibatches(self, size: int, shuffle: bool = True):
        order = torch.randperm(size) if shuffle else torch.arange(size)
        step = self.config.minibatch_size
        return [order[start : start + step].to(self.device) for start in range(0, size, step)]

    def update(self, rollout: Rollout) -> dict:
        """One pass over the rollouts: one gradient step per minibatch (Llama 2)."""
        config, stats = self.config, []
        for minibatch in self.minibatches(len(rollout.samples)):
            # Each rank its share of the minibatch's rows (all of them with one process); a rank
            # left without rows runs one with weight 0, so every rank runs the same passes.
            rows = distributed.rank_share(minibatch)
            weight = 1.0 if len(rows) else 0.0
            rows = rows if len(rows) else minibatch[:1]
            batch = rollout.batch.select(rows)
            mask = batch.response_mask
            # The losses are means over response tokens: this rank's share of the minibatch's tokens.
            share = weight * mask.sum().item() / rollout.batch.response_mask[minibatch].sum().clamp(min=1).item()
            new_logprobs, new_values, logits = policy_forward(self.policy, self.value_head, batch, config.temperature)
            pg_loss, v_loss, extra = ppo_losses(
                new_logprobs, rollout.old_logprobs[rows], rollout.advantages[rows],
                new_values, rollout.old_values[rows], rollout.returns[rows], mask, config,
            )
            loss = pg_loss + config.value_coef * v_loss
            self.optimizer.zero_grad(set_to_none=True)
            (loss * share * distributed.gradient_scale() if self.sharded else loss).backward()
            torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), config.max_grad_norm)
            self.optimizer.step()
            with torch.no_grad():
                step = {"loss/policy": pg_loss.item(), "loss/value": v_loss.item(),
                        "ppo/entropy": entropy(logits.detach(), mask).item(), **extra}
                if self.sharded:  # token-weighted means over the ranks
                    step = dict(zip(step, distributed.metrics_sum([v * share for v in step.values()])))
                stats.append(step)
        return {key: sum(s[key] for s in stats) / len(stats) for key in stats[0]}

    def iteration(self, prompts: list[list[dict]], seed: int) -> dict:
        """One PPO iteration; its log record, named as modelruntime/__init__.py says."""
        rollout = self.rollout(prompts, seed)
        stats = self.update(rollout)
        return {
            "reward/score": rollout.scores.mean().item(),
            # Nats per sequence to the initial policy: the k1 estimate summed over response tokens.
            "kl/reference_k1": rollout.kl.sum(1).mean().item(),
            "ppo/response_length": rollout.batch.response_mask.sum(1).float().mean().item(),
            **stats,
        }

    # --- resumable state ----------------------------------------------------------------------

    def state_dict(self, iteration: int, log: list[dict]) -> dict:
        return {
            "iteration": iteration,
            "log": log,
            "policy": trainable_weights(self.policy),
            "value_head": self.value_head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict):
        missing = set(state["policy"]) - set(self.policy.state_dict())
        if missing:
            raise ValueError(f"the saved PPO state does not fit this policy (e.g. {sorted(missing)[0]}); "
                             "was it started with another lora_rank?")
        trainable_weights_restore(self.policy, state["policy"])
        self.value_head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        rng_state_restore(state["rng"])

    def sharded_save(self, folder: Path, iteration: int, log: list[dict], config: PPOConfig):
        distributed.sharded_save(folder, step=iteration, model=self.trainable, optimizer=self.optimizer,
                                 extra={"iteration": iteration, "log": log, "rng": rng_state(),
                                        "config": config.to_dict()})

    def sharded_load(self, path: Path) -> dict:
        extra = distributed.sharded_load(path, model=self.trainable, optimizer=self.optimizer)
        rng_state_restore(extra["rng"])
        return extra

    def final_model(self):
        if self.reference is None:
            return self.policy.merge_and_unload()  # a plain checkpoint: the adapter folded in
        return self.policy


def prompts_for_iteration(prompts: list, iteration: int, batch_size: int, seed: int) -> list:
    """A fixed function of (seed, iteration): a resumed run sees the prompts it would have seen.

    Walks through a seeded shuffle of the prompts, reshuffled for every pass.
    """
    picked = []
    position = iteration * batch_size
    while len(picked) < batch_size:
        epoch, offset = divmod(position, len(prompts))
        order = list(range(len(prompts)))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        take = order[offset : offset + batch_size - len(picked)]
        picked += [prompts[i] for i in take]
        position += len(take)
    return picked


def ppo_train(
    config: PPOConfig,
    policy_path: Path | str,
    prompts: list[list[dict]],
    reward_fn: RewardFn,
    out_dir: Path | str,
    on_progress: Callable[[int, int, dict], None] | None = None,
    device=None,
    metadata: dict | None = None,
    reward_spec: dict | None = None,
) -> PPOResult:
    """Run `config.iterations` PPO iterations from the checkpoint at `policy_path`.

    `reward_spec` ({"helpfulness_rm", "safety_rm": checkpoint paths, "safety_keys": prompt keys})
    is what the ranks rebuild `reward_fn` from when `config.processes` > 1.

    Writes resumable states to `out_dir/resume` and, at the end, the new policy to `out_dir/policy`.
    `on_progress(iteration, total, record)` is called after each iteration with its log record.
    """
    from modelruntime.modelstore import load_policy

    if not prompts:
        raise ValueError("PPO needs at least one training prompt")
    if config.processes * config.nodes > 1 and not torch.distributed.is_initialized():
        return _ppo_under_torchrun(config, policy_path, prompts, reward_spec, out_dir, on_progress, metadata)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    policy, tokenizer = load_policy(policy_path, device or pick_device())
    trainer = PPOTrainer(config, policy, tokenizer, reward_fn)
    start, log = 0, []
    distributed.debris_clear(out_dir / RESUME_DIR)
    found = distributed.sharded_dirs(out_dir / RESUME_DIR)
    sharded_state = found and distributed.is_sharded(found[-1])
    if trainer.sharded and found and not sharded_state:
        raise ValueError(f"{found[-1]} was saved by a one-process run: resume it with processes=1")
    state = None if sharded_state else state_load(out_dir / RESUME_DIR, map_location=trainer.device)
    if sharded_state:  # saved by N processes, resumed by any number
        if trainer.config.lora_rank:
            raise ValueError("a sharded PPO state with LoRA cannot be resumed")
        extra = trainer.sharded_load(found[-1])
        config_check_same(saved=extra["config"], current=config.to_dict(), path=out_dir / RESUME_DIR,
                          may_change=RESUMABLE_CHANGES)
        start, log = extra["iteration"], extra["log"]
    elif state is not None:
        config_check_same(saved=state.get("config", {}), current=config.to_dict(), path=out_dir / RESUME_DIR,
                          may_change=RESUMABLE_CHANGES)
        trainer.load_state_dict(state)
        start, log = state["iteration"], state["log"]
    result = PPOResult(checkpoint=out_dir / "policy", iterations=log, resumed_from=start)
    for iteration in range(start, config.iterations):
        batch_prompts = prompts_for_iteration(prompts, iteration, config.batch_size, config.seed)
        record = {"iteration": iteration + 1, **trainer.iteration(batch_prompts, seed=config.seed * 10_007 + iteration)}
        log.append(record)
        done = iteration + 1
        if done % config.checkpoint_every == 0 or done == config.iterations:
            _save_state(trainer, config, done, log, out_dir)
        if on_progress:
            on_progress(done, config.iterations, record)
        kl = record["kl/reference_k1"]
        if config.kl_stop and kl > config.kl_stop:
            # Reward hacking shows up as KL running away (DeepSpeed-Chat #489): stop, keep the log.
            result.stopped_early = f"KL {kl:.2f} exceeded kl_stop {config.kl_stop} at iteration {done}"
            _save_state(trainer, config, done, log, out_dir)
            break
    final = {"kind": "ppo", "config": config.to_dict(), "iterations": len(log), **(metadata or {})}
    if trainer.sharded:  # rank 0 saves an unsharded copy: the plain checkpoint vLLM and scoring load
        full = distributed.full_state_dict(trainer.policy)
        if distributed.rank() == 0:
            plain, _ = load_policy(policy_path, "cpu")
            plain.load_state_dict(full)
            save_checkpoint(plain, tokenizer, result.checkpoint, final)
        distributed.barrier()
    else:
        save_checkpoint(trainer.final_model(), tokenizer, result.checkpoint, final)
    return result


# Settings a resumed run may change: how long it runs and how often it saves, and on how many processes.
RESUMABLE_CHANGES = {"iterations", "checkpoint_every", "kl_stop", "processes", "nodes", "rdzv_endpoint"}


def _save_state(trainer: PPOTrainer, config: PPOConfig, done: int, log: list[dict], out_dir: Path):
    if trainer.sharded:
        trainer.sharded_save(out_dir / RESUME_DIR, done, log, config)
        return
    state_save(out_dir / RESUME_DIR, step=done, state={**trainer.state_dict(done, log), "config": config.to_dict()})


# --- many processes -------------------------------------------------------------------------------


def reward_fn_from_spec(reward_spec: dict, device=None) -> RewardFn:
    """logit(R_c) from reward-model checkpoint paths (rlhf/work.py's reward_fn_build, without the database)."""
    from core.heldout import prompt_key
    from rewardmodel.scoring import load_scorer
    from rlhf.rewards import combined_reward_fn

    safety_keys = set(reward_spec.get("safety_keys", []))
    return combined_reward_fn(
        load_scorer(reward_spec["helpfulness_rm"], device) if reward_spec.get("helpfulness_rm") else None,
        load_scorer(reward_spec["safety_rm"], device) if reward_spec.get("safety_rm") else None,
        is_safety=lambda conversation: prompt_key(conversation) in safety_keys,
        gate=reward_spec.get("gate"),  # the safety RM's gate set by staff, else the paper's 0.15
    )


def _ppo_under_torchrun(config, policy_path, prompts, reward_spec, out_dir, on_progress, metadata) -> PPOResult:
    """Run this PPO as `config.processes` torchrun ranks; what on_progress raises stops them all."""
    from modelruntime.launch import spec_run

    if reward_spec is None:
        raise ConfigError("processes", "PPO on several processes needs reward-model paths (reward_spec), "
                                       "not a reward function")
    if config.lora_rank:
        raise ConfigError("lora_rank", "PPO on several processes trains every weight: set lora_rank to 0")
    out_dir = Path(out_dir)
    workdir = out_dir / "distributed"
    spec = {"kind": "ppo", "config": config.to_dict(), "output_dir": str(out_dir), "base_path": str(policy_path),
            "metadata": metadata or {}, "reward": reward_spec}
    result = spec_run(config, spec=spec, data=prompts, workdir=workdir, on_progress=on_progress)
    return PPOResult(checkpoint=Path(result["checkpoint"]), iterations=result["iterations"],
                     resumed_from=result["resumed_from"], stopped_early=result["stopped_early"])


def ppo_from_spec(spec: dict, data: list, *, device, on_progress, log) -> dict:
    """One rank's part of a distributed PPO run (modelruntime/launch.py documents the spec)."""
    from transformers import AutoConfig

    config = PPOConfig.from_dict(spec["config"])
    if AutoConfig.from_pretrained(spec["base_path"], local_files_only=True).tie_word_embeddings:
        raise ValueError("PPO on several processes needs a policy whose LM head is not tied to its embeddings "
                         "(the update runs the decoder and the head apart; FSDP2 shards them apart)")
    log(f"{distributed.world_size()} processes, {len(data)} prompts")
    result = ppo_train(config, spec["base_path"], data, reward_fn_from_spec(spec["reward"], device), spec["output_dir"],
                       on_progress=on_progress, device=device, metadata=spec.get("metadata"))
    return {"checkpoint": str(result.checkpoint), "iterations": result.iterations,
            "resumed_from": result.resumed_from, "stopped_early": result.stopped_early}
