"""RM-judged win rate of a policy version against another (its parent) on held-out prompts.

Both versions answer every prompt once with the same sampling settings; the reward function
scores both answers; a win counts 1, a tie 1/2 (Llama 2 reports RM-judged win rates, Fig. 11).
No Django here.
"""

from __future__ import annotations

import statistics
from typing import Callable

from rlhf.backends import GenerationBackend
from rlhf.generation import SamplingConfig
from rlhf.rewards import RewardFn

TIE_TOLERANCE = 1e-6


def answers(backend: GenerationBackend, prompts: list[list[dict]], sampling: SamplingConfig) -> list[str]:
    return [per_prompt[0].text for per_prompt in backend.generate(prompts, sampling)]


def win_rate(
    policy: GenerationBackend,
    against: GenerationBackend,
    prompts: list[list[dict]],
    reward_fn: RewardFn,
    temperature: float = 0.7,
    max_new_tokens: int = 128,
    seed: int = 0,
    on_progress: Callable[[int, str], None] | None = None,
) -> dict:
    if not prompts:
        raise ValueError("a win rate needs at least one held-out prompt")
    progress = on_progress or (lambda step, line: None)
    sampling = SamplingConfig(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    progress(0, "sampling the new version's answers")
    new = answers(policy, prompts, sampling)
    progress(1, "sampling the other version's answers")
    old = answers(against, prompts, sampling)
    progress(2, "scoring both with the reward model")
    conversations = [p + [{"role": "assistant", "content": text}] for p, text in zip(prompts * 2, new + old)]
    scores = reward_fn(conversations)
    new_scores, old_scores = scores[: len(prompts)], scores[len(prompts) :]
    # Identical answers tie whatever the scores: batched scoring is not bit-exact across batches.
    outcomes = ["tie" if n == o or abs(a - b) < TIE_TOLERANCE else "win" if a > b else "loss"
                for n, o, a, b in zip(new, old, new_scores, old_scores)]
    wins, ties = outcomes.count("win"), outcomes.count("tie")
    return {
        "win_rate": (wins + 0.5 * ties) / len(prompts),
        "prompts": len(prompts),
        "wins": wins,
        "ties": ties,
        "mean_reward": statistics.fmean(new_scores),
        "mean_reward_against": statistics.fmean(old_scores),
    }
