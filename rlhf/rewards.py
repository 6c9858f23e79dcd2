"""The reward PPO and rejection sampling maximise (Llama 2, sec. 3.2.3).

    R_c = R_s if is_safety(p) or R_s < 0.15 else R_h        (sigmoid scores of the two RMs)
    R   = whiten(logit(R_c)) - beta * KL(pi_theta || pi_0)  (KL per token, score on the last token)

`combined_reward_fn` turns reward-model scorers into a plain reward function
`reward_fn(conversations) -> list[float]` returning logit(R_c); the algorithms take any such
function (tests use toy ones) and whiten and penalise it themselves. No Django here.
"""

from __future__ import annotations

from typing import Callable

import torch

# Llama 2 sec. 3.2.3: the safety RM takes over below this sigmoid score, picked on Meta Safety
# for precision 0.89 / recall 0.55 of unsafe responses.
SAFETY_GATE = 0.15
LOGIT_EPS = 1e-6  # keeps logit(R_c) finite when a score saturates at 0 or 1

RewardFn = Callable[[list[list[dict]]], list[float]]


def combined_reward(
    helpful_scores: torch.Tensor | None,
    safety_scores: torch.Tensor | None,
    is_safety: torch.Tensor,
    gate: float = SAFETY_GATE,
) -> torch.Tensor:
    """R_c from raw RM scores (B,): the safety RM's sigmoid on safety prompts or below the gate.

    With one reward model only, its sigmoid is R_c.
    """
    if helpful_scores is None and safety_scores is None:
        raise ValueError("combined_reward needs at least one reward model's scores")
    if safety_scores is None:
        return torch.sigmoid(helpful_scores)
    r_s = torch.sigmoid(safety_scores)
    if helpful_scores is None:
        return r_s
    r_h = torch.sigmoid(helpful_scores)
    return torch.where(is_safety | (r_s < gate), r_s, r_h)


def whiten(values: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit variance over the (masked) entries; masked-out entries come back as 0."""
    if mask is None:
        mask = torch.ones_like(values)
    mask = mask.to(values.dtype)
    count = mask.sum()
    if count < 2:
        raise ValueError("whitening needs at least two values (use a batch of two or more)")
    mean = (values * mask).sum() / count
    variance = (((values - mean) * mask) ** 2).sum() / (count - 1)  # unbiased, like torch.std
    return (values - mean) * torch.rsqrt(variance + eps) * mask


def kl_penalised_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards (B, T): -beta * (log pi_theta - log pi_0) on every response token, plus
    the sequence's (whitened) score on its last token. Returns (rewards, per-token KL), both 0 on
    padding. `mask` marks the response tokens; responses are right-padded."""
    mask = mask.to(logprobs.dtype)
    # KL(pi_theta || pi_0) by Schulman's "k1" estimator, log(pi_theta / pi_0) at the sampled token
    # ("Approximating KL Divergence", 2020): unbiased, as Llama 2's and InstructGPT's penalty uses.
    kl = (logprobs - ref_logprobs) * mask  # (B, T)
    rewards = -beta * kl  # (B, T)
    last = mask.sum(dim=1).long() - 1  # (B,) index of each response's last token
    rewards[torch.arange(rewards.size(0)), last] += scores
    return rewards, kl


def combined_reward_fn(
    helpful_scorer=None,
    safety_scorer=None,
    is_safety: Callable[[list[dict]], bool] = lambda conversation: False,
    gate: float | None = SAFETY_GATE,
    batch_size: int = 8,
) -> RewardFn:
    """A reward function over full conversations (ending with the response) returning logit(R_c).

    Scorers are `rewardmodel.scoring.RewardScorer`s (anything with `.score(conversations,
    batch_size)`); `is_safety(conversation)` tells safety prompts (a safety project or an
    adversarial tag), which always take the safety RM's score. `gate`: None means SAFETY_GATE.
    """
    if helpful_scorer is None and safety_scorer is None:
        raise ValueError("a combined reward needs a helpfulness or a safety reward model")
    # The safety RM's own gate, set by staff from its precision / recall curve (issue 21), or
    # the paper's 0.15 when none was set.
    gate = SAFETY_GATE if gate is None else gate

    def reward_fn(conversations: list[list[dict]]) -> list[float]:
        def scores(scorer, rows):
            if scorer is None:
                return None
            values = torch.full((len(conversations),), float("nan"), dtype=torch.float64)
            if rows:
                picked = [conversations[i] for i in rows]
                values[rows] = torch.tensor(scorer.score(picked, batch_size=batch_size), dtype=torch.float64)
            return values

        flags = torch.tensor([bool(is_safety(c[:-1])) for c in conversations])
        everyone = list(range(len(conversations)))
        safety = scores(safety_scorer, everyone)
        # The helpfulness RM decides only where the gate lets it: safety prompts and responses the
        # safety RM scores below the gate never read its score, so it does not run on them.
        wanted = everyone if safety is None else [
            i for i in everyone if not flags[i] and torch.sigmoid(safety[i]) >= gate
        ]
        r_c = combined_reward(scores(helpful_scorer, wanted), safety, flags, gate)
        return torch.logit(r_c, eps=LOGIT_EPS).tolist()

    return reward_fn
