"""How good is a reward model: accuracy on held-out pairs the way Llama 2 reports it.

Overall, per strength level (Table 8's columns), per safety bin, and a calibration table: pairs
bucketed by the score gap, with the share where the annotators agreed with the model.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch

from core.vocabulary import SAFETY_BINS, STRENGTHS
from rewardmodel.data import TrainingPair
from rewardmodel.packing import packed_batch, packed_scores

# Score-gap buckets of the calibration table: |r_a - r_b|.
GAP_EDGES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, math.inf)


def score_pairs(model, tokenizer, pairs: list[TrainingPair], max_length: int, batch_size: int = 8,
                on_progress=None) -> list[tuple[float, float]]:
    """(chosen score, rejected score) per pair."""
    from rewardmodel.training import encode_pairs

    packed = encode_pairs(tokenizer, pairs, max_length)
    order = sorted(range(len(packed)), key=lambda i: len(packed[i]))
    device = next(model.parameters()).device
    result = [(0.0, 0.0)] * len(packed)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            chosen, rejected = packed_scores(
                model, *packed_batch([packed[i] for i in rows], tokenizer.pad_token_id, device)
            )
            for i, c, r in zip(rows, chosen.tolist(), rejected.tolist()):
                result[i] = (c, r)
            if on_progress:
                on_progress(min(start + batch_size, len(order)), len(order))
    return result


def _accuracy(rows):
    return {"pairs": len(rows), "accuracy": round(sum(rows) / len(rows), 4) if rows else None}


def report(pairs: list[TrainingPair], pair_scores: list[tuple[float, float]]) -> dict:
    """Accuracy overall / per strength / per safety bin / per source, and calibration."""
    if not pairs:
        return {"pairs": 0, "accuracy": None, "per_strength": {}, "per_safety_bin": {},
                "calibration": [], "per_source": {}}
    correct = [c > r for c, r in pair_scores]
    by_strength, by_bin, by_source = defaultdict(list), defaultdict(list), defaultdict(list)
    for pair, ok in zip(pairs, correct):
        by_strength[pair.strength or "ungraded"].append(ok)
        if pair.safety_bin:
            by_bin[pair.safety_bin].append(ok)
        by_source[pair.source.split(":")[0] or "ours"].append(ok)
    strengths = [*STRENGTHS, "ungraded"]
    return {
        **_accuracy(correct),
        "per_strength": {s: _accuracy(by_strength[s]) for s in strengths if by_strength[s]},
        "per_safety_bin": {b: _accuracy(by_bin[b]) for b in SAFETY_BINS if by_bin[b]},
        "per_source": {s: _accuracy(v) for s, v in sorted(by_source.items())},
        "calibration": calibration(pair_scores),
    }


def calibration(pair_scores) -> list[dict]:
    """Per score-gap bucket: how often the humans preferred the response the model scored higher,
    next to the probability the model's Bradley-Terry reading gives it (sigmoid of the gap)."""
    rows = []
    for low, high in zip(GAP_EDGES, GAP_EDGES[1:]):
        inside = [(c, r) for c, r in pair_scores if low <= abs(c - r) < high]
        if not inside:
            continue
        agree = sum(c > r for c, r in inside) / len(inside)
        predicted = sum(1 / (1 + math.exp(-abs(c - r))) for c, r in inside) / len(inside)
        rows.append({"low": low, "high": None if math.isinf(high) else high, "pairs": len(inside),
                     "agreement": round(agree, 4), "predicted": round(predicted, 4)})
    return rows


def compare(pairs, scores_a, scores_b) -> dict:
    """Two reward models on the same pairs: each one's accuracy and where they disagree."""
    a_right = [c > r for c, r in scores_a]
    b_right = [c > r for c, r in scores_b]
    return {
        "pairs": len(pairs),
        "a": report(pairs, scores_a),
        "b": report(pairs, scores_b),
        "only_a_right": sum(a and not b for a, b in zip(a_right, b_right)),
        "only_b_right": sum(b and not a for a, b in zip(a_right, b_right)),
        "both_right": sum(a and b for a, b in zip(a_right, b_right)),
        "both_wrong": sum(not a and not b for a, b in zip(a_right, b_right)),
    }
