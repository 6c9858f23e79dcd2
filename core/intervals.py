"""Confidence intervals of a proportion (violation rates, benchmark accuracies). Pure Python."""

import math

Z_95 = 1.959964  # two-sided 95 % normal quantile


def wilson_interval(successes: int, total: int, z: float = Z_95) -> tuple[float, float] | None:
    """(low, high) of the Wilson score interval for successes / total; None when total is 0.

    centre = (p + z^2 / 2n) / (1 + z^2 / n);  half = z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n)
    """
    if total <= 0:
        return None
    if not 0 <= successes <= total:
        raise ValueError(f"the count must be between 0 and total ({total}), got {successes}")
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
