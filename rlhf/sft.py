"""Supervised fine-tuning on (prompt, response) pairs, loss on response tokens only.

Used by rejection sampling (fine-tune on the kept samples) and for annotators' demonstrations
(Llama 2 sec. 3.1: "we zero-out the loss on tokens from the user prompt"). Resumable like RM
training and PPO: a state every `checkpoint_every` steps (modelruntime/checkpoint.py). No Django here.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from modelruntime.allocator import keep_freed_memory
from modelruntime.checkpoint import (
    rng_state,
    rng_state_restore,
    state_load,
    state_save,
    trainable_weights,
    trainable_weights_restore,
)
from modelruntime.optim import cosine_schedule, optimizer_create
from rlhf.config import SFTConfig
from rlhf.generation import chat_prompt

IGNORE = -100  # label of tokens that carry no loss (prompt, padding)


def sft_example(tokenizer, prompt: list[dict], response: str, max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels): the chat template of prompt + response; labels only on the response
    and its end-of-turn token. Too long: the prompt loses its oldest tokens first."""
    prompt_text = chat_prompt(tokenizer, prompt)
    full_text = tokenizer.apply_chat_template(
        prompt + [{"role": "assistant", "content": response}], tokenize=False
    )
    if not full_text.startswith(prompt_text):
        raise ValueError("the chat template does not extend the prompt with the response")
    # The template's text after the end-of-turn token (a newline) is never sampled: no loss on it.
    response_text = full_text[len(prompt_text) :].rstrip()
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response_text, add_special_tokens=False)["input_ids"][:max_length]
    prompt_ids = prompt_ids[max(0, len(prompt_ids) + len(response_ids) - max_length) :]
    return prompt_ids + response_ids, [IGNORE] * len(prompt_ids) + response_ids


def sft_loss(model, input_ids, attention_mask, labels) -> tuple[torch.Tensor, int]:
    """(summed next-token loss over labelled tokens, how many there were)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits  # (B, T, V)
    shifted_logits = logits[:, :-1].float()  # (B, T-1, V) position t predicts token t + 1
    shifted_labels = labels[:, 1:]  # (B, T-1)
    loss = F.cross_entropy(shifted_logits.reshape(-1, shifted_logits.size(-1)), shifted_labels.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")
    return loss, int((shifted_labels != IGNORE).sum())


def _pad(examples, pad_id, device):
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, lab) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(lab)] = torch.tensor(lab)
        mask[row, : len(ids)] = 1
    return input_ids.to(device), mask.to(device), labels.to(device)


def sft_train(
    model,
    tokenizer,
    pairs: list[tuple[list[dict], str]],
    config: SFTConfig,
    on_progress: Callable[[int, int, dict], None] | None = None,
    seed: int = 0,
    resume_dir: Path | str | None = None,
) -> dict:
    """Fine-tune `model` in place on (prompt, response) pairs; returns {"steps", "loss" (per step),
    "resumed_from_step"}.

    With `resume_dir`, a state is saved there every `config.checkpoint_every` steps and a call on
    the same folder continues from the newest one (the caller removes the folder once done).
    """
    if not pairs:
        raise ValueError("SFT needs at least one (prompt, response) pair")
    examples = [sft_example(tokenizer, prompt, response, config.max_length) for prompt, response in pairs]
    keep_freed_memory()  # no page faults for each step's gradients (modelruntime/allocator.py)
    rng = random.Random(seed)
    order = []
    while len(order) < math.ceil(config.epochs * len(examples)):  # fractional epochs: a partial last pass
        order += rng.sample(range(len(examples)), len(examples))
    order = order[: math.ceil(config.epochs * len(examples))]
    steps = math.ceil(len(order) / config.batch_size)
    # Llama 2 sec. 3.1: cosine schedule, no warm-up mentioned for SFT.
    optimizer = optimizer_create(named_parameters=model.named_parameters(), config=config)
    schedule = cosine_schedule(optimizer, total_steps=steps, warmup_steps=0, min_lr_ratio=config.min_lr_ratio)
    losses = []
    resumed = _resume(resume_dir, model, optimizer, schedule, losses) if resume_dir else 0
    model.train()
    for step in range(resumed, steps):
        batch = [examples[i] for i in order[step * config.batch_size : (step + 1) * config.batch_size]]
        tokens = sum(sum(label != IGNORE for label in lab[1:]) for _, lab in batch)
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for start in range(0, len(batch), config.micro_batch_size):
            input_ids, mask, labels = _pad(batch[start : start + config.micro_batch_size],
                                           tokenizer.pad_token_id, model.device)
            loss, _ = sft_loss(model, input_ids, mask, labels)
            (loss / max(tokens, 1)).backward()  # mean over the step's response tokens
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        schedule.step()
        losses.append(total / max(tokens, 1))
        if resume_dir and (step + 1) % config.checkpoint_every == 0 and step + 1 < steps:
            _save(resume_dir, model, optimizer, schedule, losses)
        if on_progress:
            on_progress(step + 1, steps, {"loss/sft": losses[-1]})
    model.eval()
    return {"steps": steps, "loss": losses, "resumed_from_step": resumed}


def _save(folder, model, optimizer, schedule, losses):
    state = {"weights": trainable_weights(model), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "losses": losses, "rng": rng_state()}
    state_save(folder, step=len(losses), state=state)


def _resume(folder, model, optimizer, schedule, losses) -> int:
    saved = state_load(folder)
    if saved is None:
        return 0
    trainable_weights_restore(model, saved["weights"])
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    rng_state_restore(saved["rng"])
    losses.extend(saved["losses"])
    return len(losses)
