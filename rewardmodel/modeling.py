"""The reward model: the chat model with a scalar head, reading the dialogue's last real token.

Llama 2 sec. 3.2.2: the reward model is initialised from the chat model checkpoint, with the
next-token classification head replaced by a regression head that outputs one scalar. A
transformers `*ForSequenceClassification` with one label is exactly that, and saves / loads as a
normal checkpoint. We do the pooling ourselves: SmolLM2's pad token is its end-of-turn token,
so the library's "last non-pad token" rule would read the wrong position.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def load_for_training(base_path: Path | str, *, seed: int = 0, device=None):
    """(model, tokenizer) with a freshly initialised scalar head on top of `base_path`."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    tokenizer = _tokenizer(base_path)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score.weight newly initialised" is the point here
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForSequenceClassification.from_pretrained(
                base_path, num_labels=1, dtype=torch.float32, local_files_only=True
            )
    finally:
        hf_logging.set_verbosity(verbosity)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device or "cpu"), tokenizer


def load_for_scoring(path: Path | str, device=None):
    """(model, tokenizer); a probe checkpoint's head and readout replace the scalar head
    (modelruntime/readout.py), so every scorer reads it as it was trained."""
    from transformers import AutoModelForSequenceClassification

    from modelruntime.readout import readout_load

    model = AutoModelForSequenceClassification.from_pretrained(
        path, dtype=torch.float32, local_files_only=True
    )
    if model.config.num_labels != 1:
        raise ValueError(f"{path} is not a reward model (its head has {model.config.num_labels} outputs)")
    if probe := readout_load(path):
        model.readout, model.score = probe
    return model.to(device or "cpu").eval(), _tokenizer(path)


def _tokenizer(path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def encode(tokenizer, messages: list[dict], max_length: int) -> list[int]:
    """Token ids of the dialogue in the chat template, ending at the response's end-of-turn.

    Too long: the oldest tokens go, so the response (and the question it answers) survive.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False).rstrip()
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[-max_length:]


def prompt_length(tokenizer, messages: list[dict], ids: list[int]) -> int:
    """How many leading tokens of `ids` (the dialogue, untruncated) are the prompt: every turn
    before the response.

    Measured as the tokens shared with the prompt's own encoding, so a tokenizer that merges
    across the boundary only shortens it; at least one token stays after it, since the score is
    read there.
    """
    if len(messages) < 2:
        return 0
    text = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
    shared = 0
    for a, b in zip(prompt, ids[: len(ids) - 1]):
        if a != b:
            break
        shared += 1
    return shared


def pad_batch(sequences: list[list[int]], pad_id: int, device=None):
    """Right-padded (input_ids, attention_mask) as tall as the longest sequence, no taller."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence)
        mask[row, : len(sequence)] = 1
    return ids.to(device), mask.to(device)


def scores(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """One scalar per row, read at the row's last real token (rows are right-padded); a fine-tuned
    reward model's readout only (RewardScorer and packed_scores read any)."""
    from modelruntime.readout import FINAL_TOKEN, readout_of

    if readout_of(model) != FINAL_TOKEN:
        raise ValueError("scores() reads the final layer's last token; score a probe reward model with RewardScorer")
    hidden = model.base_model(
        input_ids=input_ids, attention_mask=attention_mask, use_cache=False
    ).last_hidden_state
    last = attention_mask.sum(dim=1) - 1
    pooled = hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    return model.score(pooled).squeeze(-1).float()
