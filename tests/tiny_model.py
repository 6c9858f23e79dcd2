"""A tiny randomly initialised Llama with the real SmolLM2 tokenizer, for ML tests that run in seconds.

The weights are noise, but every code path (chat template, padding, generate, save/load) is the
one the real default model takes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from modelruntime.modelstore import checkpoint_is_complete, load_gguf_tokenizer, save_checkpoint

TOKENIZER_CACHE_NAME = "smollm2-tokenizer"


def build_tiny_model(dest: Path) -> Path:
    """A complete checkpoint at `dest`, built once and reused by later test runs."""
    dest = Path(dest)
    if checkpoint_is_complete(dest):
        return dest
    tokenizer = _smollm2_tokenizer(dest.parent / TOKENIZER_CACHE_NAME)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention, like SmolLM2's 9 heads / 3 KV heads
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,  # tied random embeddings make greedy decoding echo the last prompt token
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    metadata = {"name": "tiny-llama", "source": "random init (seed 0) with the SmolLM2 tokenizer"}
    return save_checkpoint(model, tokenizer, dest, metadata)


def _smollm2_tokenizer(cache: Path):
    # Reading the tokenizer out of the GGUF takes ~11 s; the saved copy loads in well under 1 s.
    if cache.is_dir():
        return AutoTokenizer.from_pretrained(cache, local_files_only=True)
    tokenizer = load_gguf_tokenizer()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}.", suffix=".tmp", dir=cache.parent))
    tokenizer.save_pretrained(tmp)
    try:
        os.rename(tmp, cache)  # atomic: a parallel test run sees the whole cache or none
    except OSError:  # another run saved it first
        shutil.rmtree(tmp, ignore_errors=True)
    return tokenizer


def build_tiny_reward_model(dest: Path, base: Path) -> Path:
    """The tiny model with a scalar head (random), saved as a reward-model checkpoint at `dest`."""
    from rewardmodel.modeling import load_for_training

    dest = Path(dest)
    if checkpoint_is_complete(dest):
        return dest
    model, tokenizer = load_for_training(build_tiny_model(base), seed=0)
    return save_checkpoint(model, tokenizer, dest, {"name": "tiny-rm", "kind": "reward_model"})
