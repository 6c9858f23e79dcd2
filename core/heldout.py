"""The one held-out split of prompts, shared by the reward-model data builder and the policy jobs.

A prompt is held out by its opening user turn alone (its key), so every comparison on it, every
PPO or rejection-sampling rollout and every `evaluate_policy` sample falls on the same side: with
the same fraction, the reward model is evaluated on exactly the prompts the policy jobs keep for
evaluation, and no prompt is both trained on and evaluated. No job's seed moves the split (a
different seed would put a trained-on prompt in another job's held-out part), and thresholds nest:
a prompt held out at fraction f is held out at every larger fraction too, so evaluating at a
fraction no larger than training's sees only prompts training never saw.
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


# The split's own constant, not a job's seed (see above); 0 keeps the split the RM builder used.
SPLIT_SALT = 0


def prompt_is_heldout(key_or_prompt, *, fraction: float) -> bool:
    """Whether the prompt is kept out of training; `key_or_prompt` is a `prompt_key` or a list of
    chat messages (a text goes through `prompt_key` first: a bare string is read as a key)."""
    key = key_or_prompt if isinstance(key_or_prompt, str) else prompt_key(key_or_prompt)
    digest = hashlib.sha256(f"{SPLIT_SALT}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction
