"""The one held-out split of prompts, shared by the reward-model data builder and the policy jobs.

A prompt is held out by its opening user turn alone (its key), so every comparison on it, every
PPO or rejection-sampling rollout and every `evaluate_policy` sample falls on the same side: with
the same fraction and seed, the reward model is evaluated on exactly the prompts the policy jobs
keep for evaluation, and no prompt is both trained on and evaluated. Thresholds nest: a prompt
held out at fraction f is held out at every larger fraction too.
"""

from __future__ import annotations

import hashlib


def prompt_key(prompt) -> str:
    """Key of a prompt: its text, or the opening user turn of a list of chat messages."""
    if isinstance(prompt, str):
        opening = prompt
    else:
        opening = next((m["content"] for m in prompt if m["role"] == "user"), "")
    return hashlib.sha256(opening.strip().encode()).hexdigest()


def prompt_is_heldout(key_or_prompt, *, fraction: float, seed: int = 0) -> bool:
    """Whether the prompt is kept out of training; `key_or_prompt` is a `prompt_key` or a list of
    chat messages (a text goes through `prompt_key` first: a bare string is read as a key)."""
    key = key_or_prompt if isinstance(key_or_prompt, str) else prompt_key(key_or_prompt)
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction
