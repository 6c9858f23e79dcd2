"""The margin ranking loss of Llama 2 (sec. 3.2.2, eq. 2)."""

import math

import torch
import torch.nn.functional as F

from core.vocabulary import SAFETY_LABELS_OF_BIN


def margin_ranking_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """mean of -log(sigmoid(r_chosen - r_rejected - m)).

    The margin asks for a larger score gap on pairs the annotators found clearly different;
    logsigmoid is the numerically stable form of log(sigmoid(x)).
    """
    return -F.logsigmoid(chosen - rejected - margin).mean()


def safety_auxiliary_loss(chosen: torch.Tensor, rejected: torch.Tensor, pairs, weight: float) -> torch.Tensor:
    """Llama 2's safety auxiliary term (Table 29): a binary classification of each labelled
    response, safe above score 0 and unsafe below it (sigmoid 0.5, the threshold at which the
    paper measures unsafe recall: 73.0 % -> 90.4 % with the term).

    weight x mean binary cross-entropy of sigmoid(score) against the safe label, over the
    responses of `pairs` (TrainingPairs, one per row of chosen / rejected) whose pair carries
    both safety labels; 0 when the weight is 0 or no response is labelled.
    """
    if not weight:
        return chosen.new_zeros(())
    scores, safe = [], []
    for row, pair in enumerate(pairs):
        labels = SAFETY_LABELS_OF_BIN.get(pair.safety_bin)
        if labels is not None:
            scores += [chosen[row], rejected[row]]
            safe += [float(labels[0]), float(labels[1])]
    if not scores:
        return chosen.new_zeros(())
    logits = torch.stack(scores)  # (2 x labelled pairs,)
    return weight * F.binary_cross_entropy_with_logits(logits, logits.new_tensor(safe))


def length_decorrelation_penalty(
    chosen: torch.Tensor, rejected: torch.Tensor, length_gap: torch.Tensor, weight: float
) -> torch.Tensor:
    """weight x corr(r_chosen - r_rejected, len_chosen - len_rejected)^2 over the batch's pairs.

    A reward model whose score gap follows the length gap has learnt "longer wins" (issue 21).
    ODIN (Chen et al. 2024, "ODIN: Disentangled Reward Mitigates Hacking in RLHF") keeps its
    quality head uncorrelated with length through the batch's Pearson correlation; this is that
    term on our single head (no length head to drop at scoring time), taken over the pair
    differences the ranking loss sees, squared so that a lean either way is penalised.
    `length_gap` is in tokens.
    0 when the weight is 0, with fewer than 3 pairs, or when either difference does not vary.
    """
    if not weight or len(chosen) < 3:
        return chosen.new_zeros(())
    score_gap = chosen - rejected  # (B,)
    length_gap = length_gap.to(score_gap)  # (B,)
    s, n = score_gap - score_gap.mean(), length_gap - length_gap.mean()
    denominator = s.norm() * n.norm()
    if denominator < 1e-8:
        return chosen.new_zeros(())
    return weight * ((s * n).sum() / denominator) ** 2


def length_log_ratios(pairs) -> torch.Tensor:
    """log(characters of chosen / characters of rejected) per pair: the length head's input.
    Characters of the whole response (not the truncated tokens) because the annotators read all of it."""
    return torch.tensor([math.log((len(p.chosen) + 1) / (len(p.rejected) + 1)) for p in pairs], dtype=torch.float32)


def length_head_fit(log_ratios: torch.Tensor, l2: float = 1e-3, steps: int = 50) -> float:
    """The weight w of a one-parameter Bradley-Terry model P(chosen wins) = sigmoid(w x log ratio).

    Our length head (issue 21): ODIN (Chen et al. 2024) trains a second head to take the length
    part of each preference and drops it at scoring time. Ours is that head reduced to one weight on
    the log length ratio (the covariate LMSYS's style control uses), fitted on the training pairs
    before training: the ranking loss then sees w x log ratio added to every score gap, so the
    model only has to learn what length does not explain. Newton's method on the convex
    negative log-likelihood; the small l2 keeps w finite when length separates the data.
    """
    x = log_ratios.double()
    w = 0.0
    for _ in range(steps):
        p = torch.sigmoid(w * x)
        gradient = -((1 - p) * x).mean().item() + l2 * w
        hessian = (p * (1 - p) * x * x).mean().item() + l2
        w -= gradient / hessian
        if abs(gradient) < 1e-10:
            break
    return w
