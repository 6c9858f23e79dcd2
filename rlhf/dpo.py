"""Direct Preference Optimization: the policy learns from preference pairs directly, its implicit
reward r(x, y) = beta * (log pi(y|x) - log ref(y|x)) pushed up on the chosen and down on the
rejected response (Rafailov et al. 2023; Llama 3 replaced PPO with it). No Django here.

Reads top to bottom: tokenise each pair (rlhf/sft.py's example: chat template, labels on the
response only; one prompt cut for both sides) -> each pair one packed row, its prompt run once
(modelruntime/packing.py) -> reference log-probs once, before any step (the policy before training *is*
the reference, so no second model is kept; with LoRA the reference is the base with the adapter
switched off) -> steps over shuffled pairs -> held-out implicit-reward accuracy -> checkpoint.
Resumable: a state every `checkpoint_every` steps (modelruntime/checkpoint.py), the reference
log-probs inside it, since a resumed full fine-tune no longer holds the initial weights.
"""

from __future__ import annotations

import contextlib
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from core.intervals import wilson_interval
from modelruntime.allocator import keep_freed_memory
from modelruntime.checkpoint import (
    RESUME_DIR,
    config_check_same,
    rng_state,
    rng_state_restore,
    state_load,
    state_save,
    states_clear,
    trainable_weights,
    trainable_weights_restore,
)
from modelruntime.optim import cosine_schedule, lora_wrap, optimizer_create
from modelruntime.packing import PackedPair, packed_batch
from rlhf.config import DPOConfig
from rlhf.sft import IGNORE, sft_example


@dataclass
class PreferencePair:
    context: list[dict]  # chat messages before the response
    chosen: str
    rejected: str
    margin: float = 0.0  # Llama 2's margin for the annotated strength (rewardmodel/data.py)


@dataclass
class DPOResult:
    checkpoint: Path | None
    steps: int
    losses: list[float] = field(default_factory=list)
    heldout_before: dict = field(default_factory=dict)
    heldout_after: dict = field(default_factory=dict)
    train_accuracy: float = 0.0  # share of the last steps' pairs whose implicit reward ranked them right
    resumed_from_step: int = 0


# --- the losses ---------------------------------------------------------------------------------


def dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, *, beta: float,
             loss_type: str = "sigmoid", margin: torch.Tensor | float = 0.0, margin_scale: float = 1.0):
    """Per-pair loss (B,) and the implicit rewards (chosen (B,), rejected (B,)) from summed
    response log-probs (B,) under the policy and the reference."""
    chosen_logratio = policy_chosen - reference_chosen  # (B,)
    rejected_logratio = policy_rejected - reference_rejected  # (B,)
    h = chosen_logratio - rejected_logratio  # (B,)
    if loss_type == "sigmoid":  # Rafailov et al. 2023, Eq. 7
        loss = -F.logsigmoid(beta * h)
    elif loss_type == "ipo":  # Azar et al. 2023, Eq. 17 (tau = beta), on summed log-probs
        loss = (h - 1 / (2 * beta)) ** 2
    elif loss_type == "margin":
        # ODPO (Amini et al. 2024, Eq. 6): the chosen must beat the rejected by an offset; ours is
        # the annotated strength's margin (Llama 2 Eq. 2's table), as the reward model uses it.
        loss = -F.logsigmoid(beta * h - margin_scale * margin)
    else:
        raise ValueError(f"unknown DPO loss {loss_type!r}; use sigmoid, ipo or margin")
    return loss, beta * chosen_logratio.detach(), beta * rejected_logratio.detach()


# --- data ----------------------------------------------------------------------------------------


def pair_examples(tokenizer, pairs: list[PreferencePair], max_length: int):
    """Each pair as two (input_ids, labels) rows: chosen, rejected (sft_example's truncation).
    A pair keeps one prompt: the side with the longer response cuts the prompt's oldest tokens,
    and the other side cuts the same, so both see the same context and share its tokens."""
    examples = []
    for p in pairs:
        chosen = sft_example(tokenizer, p.context, p.chosen, max_length)
        rejected = sft_example(tokenizer, p.context, p.rejected, max_length)
        keep = min(_prompt_length(chosen[1]), _prompt_length(rejected[1]))
        examples.append(tuple(_prompt_cut(ids, labels, keep) for ids, labels in (chosen, rejected)))
    return examples


def _prompt_length(labels) -> int:
    return next((i for i, label in enumerate(labels) if label != IGNORE), len(labels))


def _prompt_cut(ids, labels, keep):
    cut = _prompt_length(labels) - keep
    return ids[cut:], labels[cut:]


def pair_packed(chosen, rejected) -> tuple[PackedPair, list[tuple[int, int, int]]]:
    """One pair of (ids, labels) rows as one packed row (modelruntime/packing.py, as the reward
    models score: the shared prompt once, each response masked to the prompt and itself, at the
    positions it would have alone; prefix sharing, Wang et al. 2024), and the (source position,
    target token, side) of each response token: the prompt, most of an HH dialogue's tokens,
    runs once instead of twice."""
    chosen_ids, chosen_labels = chosen
    rejected_ids, rejected_labels = rejected
    shared = 0  # the common prefix, up to the first labelled token of either side
    limit = min(_prompt_length(chosen_labels), _prompt_length(rejected_labels))
    while shared < limit and chosen_ids[shared] == rejected_ids[shared]:
        shared += 1
    picks, start = [], shared
    for side, (ids, labels) in enumerate((chosen, rejected)):
        for k in range(max(shared, 1), len(ids)):  # token k is predicted from token k - 1
            if labels[k] != IGNORE:
                picks.append((start + (k - shared) - 1 if k > shared else shared - 1, labels[k], side))
        start += len(ids) - shared
    packed = PackedPair(chosen_ids + rejected_ids[shared:], shared, len(chosen_ids) - shared,
                        len(rejected_ids) - shared)
    return packed, picks


def pair_logprobs(model, chunk, pad_id) -> torch.Tensor:
    """(b, 2) summed response log-probs [chosen, rejected] of a micro-batch of pairs, in one
    forward pass over their packed rows; the output layer runs only where a response token is
    predicted (for a 135M model the 49k-word output layer is a fifth of the work)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # LoRA: adapters stay in
    packed, picks = zip(*(pair_packed(chosen, rejected) for chosen, rejected in chunk))
    input_ids, mask, position_ids, *_ = packed_batch(list(packed), pad_id, model.device)
    hidden = base.get_decoder()(input_ids=input_ids, position_ids=position_ids, attention_mask=mask,
                                use_cache=False).last_hidden_state  # (B, T, H)
    rows, sources, targets, sides = torch.tensor(
        [(row, *pick) for row, row_picks in enumerate(picks) for pick in row_picks], device=model.device
    ).reshape(-1, 4).unbind(1)  # (N,) each
    logits = base.get_output_embeddings()(hidden[rows, sources]).float()  # (N, V)
    token_logprobs = torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (N,)
    summed = torch.zeros(len(chunk) * 2, dtype=token_logprobs.dtype, device=token_logprobs.device)
    return summed.index_add(0, rows * 2 + sides, token_logprobs).view(len(chunk), 2)  # (b, 2)


def pairs_logprobs(model, examples, pad_id, micro_batch_size: int) -> torch.Tensor:
    """(N, 2) summed response log-probs [chosen, rejected], without gradients."""
    with torch.no_grad():
        out = [pair_logprobs(model, examples[start : start + micro_batch_size], pad_id).cpu()
               for start in range(0, len(examples), micro_batch_size)]
    return torch.cat(out) if out else torch.zeros(0, 2)


def implicit_reward_accuracy(policy_logps: torch.Tensor, reference_logps: torch.Tensor, beta: float) -> dict:
    """Share of pairs whose implicit reward ranks the chosen above the rejected; a tie counts
    half (a coin would break it), so the untrained policy scores exactly chance, 0.5."""
    if not len(policy_logps):
        return {"dpo/accuracy": None, "dpo/reward_margin": None, "pairs": 0, "ci95": None}
    rewards = beta * (policy_logps - reference_logps)  # (N, 2)
    margin = rewards[:, 0] - rewards[:, 1]
    right = (margin > 0).float() + 0.5 * (margin == 0).float()
    # The interval says whether "above chance" is more than noise on this many pairs.
    low, high = wilson_interval(right.sum().item(), len(margin))
    return {"dpo/accuracy": right.mean().item(), "dpo/reward_margin": margin.mean().item(),
            "pairs": len(margin), "ci95": [round(low, 4), round(high, 4)]}


# --- training ------------------------------------------------------------------------------------


def dpo_train(
    config: DPOConfig,
    model,
    tokenizer,
    pairs: list[PreferencePair],
    heldout: list[PreferencePair] = (),
    on_progress: Callable | None = None,
    seed: int = 0,
    resume_dir: Path | str | None = None,
    lora_rank: int = 0,
    lora_alpha: float = 16.0,
):
    """Train `model` (in place; with LoRA, a wrapped copy is returned) on `pairs`.

    Returns (model to save, DPOResult without checkpoint). `on_progress(step, total, metrics)`.
    """
    if not pairs:
        raise ValueError("DPO needs at least one preference pair")
    keep_freed_memory()
    if lora_rank:
        model = lora_wrap(model, rank=lora_rank, alpha=lora_alpha, task_type="CAUSAL_LM")
    else:
        model.requires_grad_(True)
    model.eval()  # no dropout: policy and reference log-probs must agree before the first step
    pad_id = tokenizer.pad_token_id
    examples = pair_examples(tokenizer, pairs, config.max_length)
    held = pair_examples(tokenizer, list(heldout), config.max_length)
    margins = torch.tensor([p.margin for p in pairs], dtype=torch.float32)
    rng = random.Random(seed)
    count = math.ceil(config.epochs * len(examples))
    order = []
    while len(order) < count:
        order += rng.sample(range(len(examples)), len(examples))
    order = order[:count]
    steps = math.ceil(len(order) / config.batch_size)
    optimizer = optimizer_create(named_parameters=model.named_parameters(), config=config)
    schedule = cosine_schedule(optimizer, total_steps=steps, warmup_steps=config.warmup_steps,
                               min_lr_ratio=config.min_lr_ratio)
    saved = state_load(resume_dir) if resume_dir else None
    if saved is not None:
        config_check_same(saved=saved["config"], current=config.to_dict(), path=Path(resume_dir),
                          may_change={"checkpoint_every"})
        trainable_weights_restore(model, saved["weights"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        rng_state_restore(saved["rng"])
        reference, reference_heldout = saved["reference"], saved["reference_heldout"]
        losses, correct = saved["losses"], saved["correct"]
        heldout_before = saved["heldout_before"]
    else:
        with _reference_mode(model, lora_rank):
            reference = pairs_logprobs(model, examples, pad_id, config.micro_batch_size)  # (N, 2)
            reference_heldout = pairs_logprobs(model, held, pad_id, config.micro_batch_size)  # (H, 2)
        # Before any step the policy is the reference: every implicit reward is 0, accuracy 0.5.
        heldout_before = implicit_reward_accuracy(reference_heldout, reference_heldout, config.beta)
        losses, correct = [], []
    resumed = len(losses)
    for step in range(resumed, steps):
        rows = order[step * config.batch_size : (step + 1) * config.batch_size]
        optimizer.zero_grad(set_to_none=True)
        total, right = 0.0, 0.0  # a tie counts half, as in implicit_reward_accuracy
        for start in range(0, len(rows), config.micro_batch_size):
            chunk = rows[start : start + config.micro_batch_size]
            logps = pair_logprobs(model, [examples[i] for i in chunk], pad_id)  # (b, 2)
            ref = reference[chunk].to(logps.device)  # (b, 2)
            loss, chosen_reward, rejected_reward = dpo_loss(
                logps[:, 0], logps[:, 1], ref[:, 0], ref[:, 1], beta=config.beta,
                loss_type=config.loss_type, margin=margins[chunk].to(logps.device), margin_scale=config.margin_scale,
            )
            (loss.sum() / len(rows)).backward()  # the mean over the step's pairs
            total += loss.sum().item()
            right += (chosen_reward > rejected_reward).sum().item() + 0.5 * (chosen_reward == rejected_reward).sum().item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        schedule.step()
        losses.append(total / len(rows))
        correct.append(right / len(rows))
        if resume_dir and (step + 1) % config.checkpoint_every == 0 and step + 1 < steps:
            state_save(resume_dir, step=step + 1, state={
                "weights": trainable_weights(model), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "rng": rng_state(), "config": config.to_dict(),
                "reference": reference, "reference_heldout": reference_heldout, "losses": losses,
                "correct": correct, "heldout_before": heldout_before,
            })
        if on_progress:
            on_progress(step + 1, steps, {"loss/dpo": losses[-1], "dpo/train_accuracy": correct[-1]})
    heldout_after = implicit_reward_accuracy(pairs_logprobs(model, held, pad_id, config.micro_batch_size),
                                             reference_heldout, config.beta)
    tail = correct[-max(1, len(correct) // 4):]  # the last quarter of the steps
    result = DPOResult(checkpoint=None, steps=steps, losses=losses, heldout_before=heldout_before,
                       heldout_after=heldout_after, train_accuracy=sum(tail) / len(tail), resumed_from_step=resumed)
    if lora_rank:
        model = model.merge_and_unload()  # a plain checkpoint: the adapter folded in
    return model, result


def _reference_mode(model, lora_rank):
    return model.disable_adapter() if lora_rank else contextlib.nullcontext()


def dpo_run(config: DPOConfig, policy_path, pairs, heldout, out_dir, *, on_progress=None, seed=0,
            lora_rank=0, lora_alpha=16.0, metadata=None, device=None) -> DPOResult:
    """Load the policy at `policy_path`, train, save the new policy to `out_dir`; resumable from
    `<out_dir>-resume` (dropped once the checkpoint is written)."""
    from modelruntime.modelstore import load_policy, save_checkpoint

    out_dir = Path(out_dir)
    resume_dir = out_dir.with_name(f"{out_dir.name}-{RESUME_DIR}")
    model, tokenizer = load_policy(policy_path, device)
    model, result = dpo_train(config, model, tokenizer, pairs, heldout, on_progress, seed=seed,
                              resume_dir=resume_dir, lora_rank=lora_rank, lora_alpha=lora_alpha)
    result.checkpoint = save_checkpoint(model, tokenizer, out_dir, {"kind": "dpo", **(metadata or {})})
    states_clear(resume_dir)
    return result
