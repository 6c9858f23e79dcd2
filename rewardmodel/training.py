"""Train a reward model on preference pairs: `train(config, pairs, output_dir)`. No Django here.

Reads top to bottom: load the chat checkpoint with a scalar head, choose what trains (all,
the top layers, or LoRA), pack each pair into one row (packing.py), cut the rows into
length-grouped micro-batches in a seeded order, then AdamW with warm-up and cosine decay
(modelruntime/optim.py), one forward pass per micro-batch for chosen and rejected together. Every
`checkpoint_every` steps the trainable state is written atomically (modelruntime/checkpoint.py);
a run started again on the same `output_dir` resumes from the newest complete checkpoint.

Under torchrun (modelruntime/distributed_entry.py, `train_from_spec`) the same function runs on
every rank: the model is sharded with FSDP2, each rank takes its share of every global
micro-batch, losses are scaled so the averaged gradient is the one-process one, checkpoints are
sharded (DCP) and the final model is gathered to rank 0 (modelruntime/distributed.py). A sharded
checkpoint resumes with any number of processes, one process in the worker included.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from modelruntime import distributed
from modelruntime.checkpoint import (
    RESUME_DIR,
    state_load,
    state_save,
    states_clear,
    trainable_weights,
    trainable_weights_restore,
)
from modelruntime.optim import cosine_schedule, lora_wrap, optimizer_create
from modelruntime.packing import PackedPair, pack, packed_batch, packed_scores
from rewardmodel.config import RewardModelConfig
from rewardmodel.data import NoTrainingData, TrainingPair, chosen_is_longer, length_balanced_batches
from rewardmodel.loss import length_decorrelation_penalty, length_head_fit, length_log_ratios, margin_ranking_loss, safety_auxiliary_loss
from rewardmodel.modeling import encode, load_for_training, prompt_length

FINAL_DIR = "model"
# Length grouping sorts pairs within windows of this many micro-batches: batches of similar
# length pad little, and the order stays random at the scale of the whole run.
LENGTH_WINDOW = 32


@dataclass
class TrainResult:
    checkpoint: Path
    steps: int
    pairs: int
    resumed_from_step: int = 0
    metrics: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"checkpoint": str(self.checkpoint), "steps": self.steps, "pairs": self.pairs,
                "resumed_from_step": self.resumed_from_step, "metrics": self.metrics}

    @classmethod
    def from_dict(cls, values: dict) -> "TrainResult":
        return cls(**{**values, "checkpoint": Path(values["checkpoint"])})


def encode_pairs(tokenizer, pairs: list[TrainingPair], max_length: int, side: str = "left") -> list[PackedPair]:
    """Each pair as one packed row (shared context once), each side at most `max_length` tokens,
    cut on `side` (modelruntime/packing.py's fit)."""
    packed = []
    for pair in pairs:
        chosen, rejected = ([*pair.context, {"role": "assistant", "content": r}] for r in (pair.chosen, pair.rejected))
        chosen_ids = encode(tokenizer, chosen, 10**9)
        packed.append(pack(chosen_ids, encode(tokenizer, rejected, 10**9), max_length, side,
                           prompt=prompt_length(tokenizer, chosen, chosen_ids)))
    return packed


def micro_batches(lengths: list[int], batch_size: int, epochs: float, seed: int) -> list[list[int]]:
    """Pair indices per forward pass: a seeded shuffle, sorted by length within windows."""
    rng = random.Random(seed)
    order = []
    for _ in range(math.ceil(epochs)):
        epoch = list(range(len(lengths)))
        rng.shuffle(epoch)
        order.extend(epoch)
    order = order[: round(epochs * len(lengths))]
    window = batch_size * LENGTH_WINDOW
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def pieces(indices: list[int], lengths: list[int], max_tokens: int) -> list[list[int]]:
    """A micro-batch cut into runs whose padded size (rows x longest) stays within max_tokens.

    The gradient is the same (each piece's loss is weighted by its share of the step's pairs);
    only the peak memory changes. A single row longer than the cap still runs alone.
    """
    if not max_tokens:
        return [indices]
    result, current = [], []
    for i in sorted(indices, key=lambda i: lengths[i]):
        if current and (len(current) + 1) * lengths[i] > max_tokens:
            result.append(current)
            current = []
        current.append(i)
    return [*result, current]


def warmup_steps(config: RewardModelConfig, total_steps: int) -> int:
    """Llama 2 sec. 3.2.2: warm-up over 3 % of the steps, at least 5."""
    return min(total_steps, max(config.min_warmup_steps, math.ceil(config.warmup_ratio * total_steps)))


def select_trainable(model, config: RewardModelConfig):
    """Freeze what should not train; returns the module whose parameters the optimizer sees."""
    layers = model.base_model.layers
    if config.train_layers and config.train_layers > len(layers):
        raise ValueError(f"train_layers is {config.train_layers} but the model has {len(layers)} layers")
    top = range(len(layers) - config.train_layers, len(layers)) if config.train_layers else None
    if config.lora_rank:
        return lora_wrap(model, rank=config.lora_rank, alpha=config.lora_alpha, task_type="SEQ_CLS",
                         layers=list(top) if top else None,
                         modules_to_save=["score"])  # the new head trains in full
    if top is not None:
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for module in [*(layers[i] for i in top), model.base_model.norm, model.score]:
            for parameter in module.parameters():
                parameter.requires_grad_(True)
    return model


def train(
    config: RewardModelConfig,
    pairs: list[TrainingPair],
    output_dir: Path | str,
    *,
    base_path: Path | str,
    on_progress=None,
    device=None,
    metadata: dict | None = None,
) -> TrainResult:
    """Train on `pairs` and save the reward model to `output_dir/model`; resumable. With method
    "probe", the model stays frozen and a linear head is fitted instead (rewardmodel/probe.py)."""
    from modelruntime.allocator import keep_freed_memory
    from modelruntime.modelstore import save_checkpoint

    if config.method == "probe":
        from rewardmodel.probe import train_probe

        return train_probe(config, pairs, output_dir, base_path=base_path, on_progress=on_progress, device=device,
                           metadata=metadata)

    if not pairs:
        raise NoTrainingData("no training pairs")
    output_dir = Path(output_dir)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, tokenizer = load_for_training(base_path, seed=config.seed, device=device)
    keep_freed_memory()  # no page faults for each step's gradients (modelruntime/allocator.py)
    trainable_root = select_trainable(model, config)
    sharded = torch.distributed.is_initialized()
    if sharded:
        distributed.model_shard(trainable_root)  # before the optimizer: it must see the sharded parameters
    trainable = [p for p in trainable_root.parameters() if p.requires_grad]
    optimizer = optimizer_create(named_parameters=trainable_root.named_parameters(), config=config)
    packed = encode_pairs(tokenizer, pairs, config.max_length, config.truncation_side)
    lengths = [len(p) for p in packed]
    batches = (length_balanced_batches([chosen_is_longer(p) for p in pairs], lengths, config.batch_size,
                                       config.epochs, config.seed)
               if config.length_balanced_batches else micro_batches(lengths, config.batch_size, config.epochs, config.seed))
    total_steps = math.ceil(len(batches) / config.gradient_accumulation_steps)
    scheduler = cosine_schedule(optimizer, total_steps=total_steps, warmup_steps=warmup_steps(config, total_steps),
                                min_lr_ratio=config.min_lr_ratio)
    margins = torch.tensor([pair.margin for pair in pairs], dtype=torch.float32)
    length_gaps = torch.tensor([p.chosen - p.rejected for p in packed], dtype=torch.float32)  # tokens
    # The length head's share of each score gap: added in the loss only, so scoring drops it.
    log_ratios = length_log_ratios(pairs)
    length_weight = length_head_fit(log_ratios) if config.length_head else 0.0
    length_offsets = length_weight * log_ratios

    state = {"step": 0, "losses": [], "correct": [], "tokens": 0}
    resumed = _resume(output_dir, trainable_root, optimizer, scheduler, state)
    model.train()
    started = time.perf_counter()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else _nothing()
    for step in range(state["step"], total_steps):
        group = batches[step * config.gradient_accumulation_steps : (step + 1) * config.gradient_accumulation_steps]
        step_loss, step_correct, step_tokens = 0.0, 0, 0
        step_pairs = sum(len(g) for g in group)  # the global batch: every rank divides by it
        for indices, weight in _rank_pieces(group, lengths, config.max_batch_tokens):
            # Both sides of every pair in one forward pass, the shared context computed once.
            batch = packed_batch([packed[i] for i in indices], tokenizer.pad_token_id, device)
            with autocast:
                chosen, rejected = packed_scores(model, *batch)
            loss = margin_ranking_loss(chosen + length_offsets[indices].to(chosen), rejected, margins[indices].to(device)) + safety_auxiliary_loss(
                chosen, rejected, [pairs[i] for i in indices], config.safety_aux_weight) + length_decorrelation_penalty(
                chosen, rejected, length_gaps[indices], config.length_decorrelation_weight)
            (loss * weight * len(indices) / step_pairs * distributed.gradient_scale()).backward()
            step_loss += loss.item() * len(indices) * weight
            step_correct += int((chosen > rejected).sum()) * weight
            step_tokens += sum(len(packed[i]) for i in indices) * weight
        step_loss, step_correct, step_tokens = distributed.metrics_sum([step_loss, step_correct, step_tokens])
        torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] = step + 1
        state["tokens"] += int(step_tokens)
        state["losses"].append(step_loss / step_pairs)
        state["correct"].append(step_correct / step_pairs)
        if state["step"] % config.checkpoint_every == 0 and state["step"] < total_steps:
            _save_resume(output_dir, trainable_root, optimizer, scheduler, state, sharded=sharded)
        if on_progress:
            on_progress(state["step"], total_steps, _running_metrics(state))

    train_seconds = time.perf_counter() - started
    if sharded:  # rank 0 saves an unsharded copy: the plain checkpoint vLLM and scoring load
        full = distributed.full_state_dict(trainable_root)
        if distributed.rank() == 0:
            model, _ = load_for_training(base_path, seed=config.seed)
            trainable_root = select_trainable(model, config)
            trainable_root.load_state_dict(full)
    final = output_dir / FINAL_DIR
    if distributed.rank() == 0:
        if config.lora_rank:
            model = trainable_root.merge_and_unload()
        model.eval()
        save_checkpoint(
            model,
            tokenizer,
            final,
            {"kind": "reward_model", "config": config.to_dict(), "pairs": len(pairs), **(metadata or {})},
        )
        states_clear(output_dir / RESUME_DIR)
    distributed.barrier()
    return TrainResult(
        checkpoint=final,
        steps=total_steps,
        pairs=len(pairs),
        resumed_from_step=resumed,
        metrics={**_running_metrics(state), "tokens": state["tokens"], "length_head_weight": round(length_weight, 4),
                 "train_seconds": round(train_seconds, 2)},
    )


def _rank_pieces(group: list[list[int]], lengths: list[int], max_tokens: int):
    """(pair indices, weight) of this rank's forward passes over one optimizer step's micro-batches.

    Every rank runs the same number of passes (FSDP2 gathers each layer in every one); a rank
    whose share ran out repeats a pair with weight 0, which adds nothing to loss or gradient.
    """
    world = distributed.world_size()
    for batch in group:
        shares = [pieces(distributed.rank_share(batch, r, world), lengths, max_tokens) for r in range(world)]
        mine = shares[distributed.rank()]
        for number in range(max(len(s) for s in shares)):
            piece = mine[number] if number < len(mine) else []
            yield (piece, 1) if piece else ([batch[0]], 0)


def _running_metrics(state, last=20):
    losses, correct = state["losses"][-last:], state["correct"][-last:]
    return {
        "step": state["step"],
        "loss/rm": round(sum(losses) / len(losses), 4) if losses else None,
        "rm/accuracy": round(sum(correct) / len(correct), 4) if correct else None,
    }


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _save_resume(output_dir, trainable_root, optimizer, scheduler, state, *, sharded=False):
    """The trainable weights, optimizer and schedule as the resumable checkpoint of this step."""
    if sharded:
        distributed.sharded_save(output_dir / RESUME_DIR, step=state["step"], model=trainable_root,
                                 optimizer=optimizer, extra={"scheduler": scheduler.state_dict(), "state": state})
        return
    saved = {"weights": trainable_weights(trainable_root), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "state": state}
    state_save(output_dir / RESUME_DIR, step=state["step"], state=saved)


def _resume(output_dir, trainable_root, optimizer, scheduler, state) -> int:
    folder = output_dir / RESUME_DIR
    distributed.debris_clear(folder)
    found = distributed.sharded_dirs(folder)
    if found and distributed.is_sharded(found[-1]):  # saved by N processes, resumed by any number
        extra = distributed.sharded_load(found[-1], model=trainable_root, optimizer=optimizer)
        scheduler.load_state_dict(extra["scheduler"])
        state.update(extra["state"])
        return state["step"]
    if found and torch.distributed.is_initialized():
        raise ValueError(f"{found[-1]} was saved by a one-process run: resume it with processes=1")
    saved = state_load(folder)
    if saved is None:
        return 0
    trainable_weights_restore(trainable_root, saved["weights"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    state.update(saved["state"])
    return state["step"]


def train_from_spec(spec: dict, data: list[dict], *, device, on_progress, log) -> dict:
    """One rank's part of a distributed job (modelruntime/launch.py documents the spec)."""
    config = RewardModelConfig.from_dict(spec["config"])
    pairs = [TrainingPair(**pair) for pair in data]
    log(f"{distributed.world_size()} processes, {len(pairs)} pairs")
    result = train(config, pairs, spec["output_dir"], base_path=spec["base_path"], on_progress=on_progress,
                   device=device, metadata=spec.get("metadata"))
    return result.to_dict()
