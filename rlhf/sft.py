"""Supervised fine-tuning on (prompt, response) pairs, loss on response tokens only.

Used by rejection sampling (fine-tune on the kept samples) and for annotators' demonstrations
(Llama 2 sec. 3.1: "we zero-out the loss on tokens from the user prompt"). Resumable like RM
training and PPO: a state every `checkpoint_every` steps (modelruntime/checkpoint.py). No Django here.

With `config.processes` > 1, `sft_train` hands the work to torchrun (modelruntime/launch.py) and
loads the trained weights back into `model`, so its callers change nothing. On each rank
(`sft_from_spec`) the model is sharded with FSDP2, every rank takes its share of each step's
examples, the loss is divided by the step's labelled tokens over all ranks (as one process
does), and states are sharded checkpoints that resume with any number of processes.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from modelruntime import distributed
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


def pad_examples(examples, pad_id, device):
    """(input_ids, attention_mask, labels) of (ids, labels) examples, right-padded to the longest."""
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
    if config.processes * config.nodes > 1 and not torch.distributed.is_initialized():
        return _sft_under_torchrun(model, tokenizer, pairs, config, on_progress, seed, resume_dir)
    examples = [sft_example(tokenizer, prompt, response, config.max_length) for prompt, response in pairs]
    keep_freed_memory()  # no page faults for each step's gradients (modelruntime/allocator.py)
    rng = random.Random(seed)
    order = []
    while len(order) < math.ceil(config.epochs * len(examples)):  # fractional epochs: a partial last pass
        order += rng.sample(range(len(examples)), len(examples))
    order = order[: math.ceil(config.epochs * len(examples))]
    steps = math.ceil(len(order) / config.batch_size)
    # Llama 2 sec. 3.1: cosine schedule, no warm-up mentioned for SFT.
    sharded = torch.distributed.is_initialized()
    if sharded:
        distributed.model_shard(model)  # before the optimizer: it must see the sharded parameters
    optimizer = optimizer_create(named_parameters=model.named_parameters(), config=config)
    schedule = cosine_schedule(optimizer, total_steps=steps, warmup_steps=0, min_lr_ratio=config.min_lr_ratio)
    losses = []
    resumed = _resume(Path(resume_dir), model, optimizer, schedule, losses) if resume_dir else 0
    model.train()
    for step in range(resumed, steps):
        batch = [examples[i] for i in order[step * config.batch_size : (step + 1) * config.batch_size]]
        tokens = sum(sum(label != IGNORE for label in lab[1:]) for _, lab in batch)
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro_batch, weight in _rank_micro_batches(batch, config.micro_batch_size):
            input_ids, mask, labels = pad_examples(micro_batch, tokenizer.pad_token_id, model.device)
            loss, _ = sft_loss(model, input_ids, mask, labels)
            # Mean over the step's response tokens (all ranks'); FSDP2 averages over ranks, so x world.
            (loss * weight / max(tokens, 1) * distributed.gradient_scale()).backward()
            total += loss.item() * weight
        (total,) = distributed.metrics_sum([total])
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.max_grad_norm)
        optimizer.step()
        schedule.step()
        losses.append(total / max(tokens, 1))
        if resume_dir and (step + 1) % config.checkpoint_every == 0 and step + 1 < steps:
            _save(Path(resume_dir), model, optimizer, schedule, losses, sharded=sharded)
        if on_progress:
            on_progress(step + 1, steps, {"loss/sft": losses[-1]})
    model.eval()
    return {"steps": steps, "loss": losses, "resumed_from_step": resumed}


def _rank_micro_batches(batch: list, micro_batch_size: int):
    """(examples, weight) of this rank's forward passes in one step: its share of the step's
    examples in micro-batches; a rank with fewer repeats one with weight 0, so that every rank
    runs as many passes (FSDP2 gathers the weights in each)."""
    world = distributed.world_size()
    shares = [distributed.rank_share(batch, r, world) for r in range(world)]
    mine = shares[distributed.rank()]
    for start in range(0, max(len(s) for s in shares), micro_batch_size):
        micro_batch = mine[start : start + micro_batch_size]
        yield (micro_batch, 1) if micro_batch else (batch[:1], 0)


def _save(folder, model, optimizer, schedule, losses, *, sharded=False):
    if sharded:
        distributed.sharded_save(folder, step=len(losses), model=model, optimizer=optimizer,
                                 extra={"schedule": schedule.state_dict(), "losses": losses, "rng": rng_state()})
        return
    state = {"weights": trainable_weights(model), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "losses": losses, "rng": rng_state()}
    state_save(folder, step=len(losses), state=state)


def _resume(folder, model, optimizer, schedule, losses) -> int:
    distributed.debris_clear(folder)
    found = distributed.sharded_dirs(folder)
    if found and distributed.is_sharded(found[-1]):  # saved by N processes, resumed by any number
        extra = distributed.sharded_load(found[-1], model=model, optimizer=optimizer)
        schedule.load_state_dict(extra["schedule"])
        rng_state_restore(extra["rng"])
        losses.extend(extra["losses"])
        return len(losses)
    if found and torch.distributed.is_initialized():
        raise ValueError(f"{found[-1]} was saved by a one-process run: resume it with processes=1")
    saved = state_load(folder)
    if saved is None:
        return 0
    trainable_weights_restore(model, saved["weights"])
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    rng_state_restore(saved["rng"])
    losses.extend(saved["losses"])
    return len(losses)


# --- many processes -------------------------------------------------------------------------------


def _sft_under_torchrun(model, tokenizer, pairs, config: SFTConfig, on_progress, seed, resume_dir) -> dict:
    """Run this fine-tuning as `config.processes` torchrun ranks; `model` gets the trained weights.

    The ranks start from `model` as it is now (saved beside the resume states), save their sharded
    states in `resume_dir`, and rank 0 writes the result as a plain checkpoint that is loaded back.
    Progress events go to `on_progress`; what it raises (a job's cancel) stops every rank.
    """
    import tempfile

    from modelruntime.launch import spec_run
    from modelruntime.modelstore import checkpoint_is_complete, save_checkpoint

    if resume_dir is None:
        resume_dir = Path(tempfile.mkdtemp(prefix="sft-"))
    resume_dir = Path(resume_dir)
    workdir = resume_dir.with_name(f"{resume_dir.name}-distributed")
    start = workdir / "start"
    if not checkpoint_is_complete(start):  # a resumed run starts from the same weights
        save_checkpoint(model, tokenizer, start, {"kind": "sft-start"})
    spec = {"kind": "sft", "config": config.to_dict(), "output_dir": str(workdir / "model"),
            "base_path": str(start), "resume_dir": str(resume_dir), "seed": seed, "metadata": {}}
    result = spec_run(config, spec=spec, data=[[prompt, response] for prompt, response in pairs], workdir=workdir,
                      on_progress=on_progress)
    from safetensors.torch import load_file

    trained = load_file(Path(result.pop("checkpoint")) / "model.safetensors")
    missing, unexpected = model.load_state_dict(trained, strict=False)  # a tied head is saved once
    if unexpected or [key for key in missing if key != "lm_head.weight"]:
        raise ValueError(f"the fine-tuned checkpoint does not fit the model: {(missing + unexpected)[:3]}")
    model.eval()
    return result


def sft_from_spec(spec: dict, data: list, *, device, on_progress, log) -> dict:
    """One rank's part of a distributed fine-tuning (modelruntime/launch.py documents the spec)."""
    from modelruntime.modelstore import load_policy, save_checkpoint

    config = SFTConfig.from_dict({k: v for k, v in spec["config"].items() if k in SFTConfig.__dataclass_fields__})
    model, tokenizer = load_policy(spec["base_path"], device)
    model.requires_grad_(True)
    log(f"{distributed.world_size()} processes, {len(data)} examples")
    result = sft_train(model, tokenizer, [(prompt, response) for prompt, response in data], config,
                       on_progress, seed=spec.get("seed", 0), resume_dir=spec["resume_dir"])
    full = distributed.full_state_dict(model)
    if distributed.rank() == 0:
        plain, _ = load_policy(spec["base_path"], "cpu")
        plain.load_state_dict(full)
        save_checkpoint(plain, tokenizer, spec["output_dir"], {"kind": "sft", **spec.get("metadata", {})})
    distributed.barrier()
    return {**result, "checkpoint": spec["output_dir"]}
