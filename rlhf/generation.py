"""Response generation: chat conversations in, sampled assistant replies out.

Used wherever the loop needs model text: the two responses of a comparison, the K samples of
rejection sampling, PPO rollouts. Batched HF `generate` on whatever device the model sits on.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from transformers import GenerationConfig

ROLES = ("system", "user", "assistant")


@dataclass
class SamplingConfig:
    temperature: float = 0.7  # softmax temperature; 0 means greedy decoding
    top_p: float = 0.9  # nucleus sampling: keep the smallest token set with this probability mass
    max_new_tokens: int = 128  # upper bound on the length of each response, in tokens
    seed: int | None = None  # same seed, model and conversations give the same responses

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    def to_dict(self) -> dict:
        return asdict(self)


def generate_responses(
    model, tokenizer, conversations: list[list[dict]], config: SamplingConfig, batch_size: int = 8
) -> list[str]:
    """One assistant reply per conversation, in input order."""
    prompts = [_prompt_ids(tokenizer, conversation) for conversation in conversations]
    # Batching prompts of similar length wastes fewer forward passes on padding.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    responses = [""] * len(prompts)
    generation_config = _generation_config(tokenizer, config)
    with torch.inference_mode(), _seeded(config.seed, model.device):
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            texts = _generate_batch(model, tokenizer, [prompts[i] for i in indices], generation_config)
            for i, text in zip(indices, texts):
                responses[i] = text
    return responses


def chat_prompt(tokenizer, conversation: list[dict]) -> str:
    """The text the model continues: every turn in the chat template, then the assistant header."""
    if not conversation or conversation[-1].get("role") != "user":
        raise ValueError("a conversation must be a non-empty list of messages ending with a user turn")
    for message in conversation:
        if message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise ValueError(f"bad chat message {message!r}: needs a role in {ROLES} and string content")
    return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)


def _prompt_ids(tokenizer, conversation: list[dict]) -> list[int]:
    # The chat template already writes any BOS token; adding special tokens would double it.
    return tokenizer(chat_prompt(tokenizer, conversation), add_special_tokens=False)["input_ids"]


def _generation_config(tokenizer, config: SamplingConfig) -> GenerationConfig:
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    common = dict(
        max_new_tokens=config.max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad_token_id,
        use_cache=True,
    )
    if config.temperature == 0:
        return GenerationConfig(do_sample=False, **common)
    # top_k=0 switches off HF's implicit top-k of 50, so sampling is exactly what the config says.
    return GenerationConfig(do_sample=True, temperature=config.temperature, top_p=config.top_p, top_k=0, **common)


@contextmanager
def _seeded(seed: int | None, device: torch.device):
    if seed is None:
        yield
        return
    # fork_rng restores the caller's RNG state afterwards: seeding generation must not change
    # what an enclosing training loop draws next.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _generate_batch(model, tokenizer, prompts: list[list[int]], generation_config: GenerationConfig) -> list[str]:
    batch = tokenizer.pad({"input_ids": prompts}, padding=True, padding_side="left", return_tensors="pt")
    batch = batch.to(model.device)
    output = model.generate(**batch, generation_config=generation_config)  # (B, T_prompt + T_new)
    new_tokens = output[:, batch["input_ids"].shape[1] :]  # (B, T_new)
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
