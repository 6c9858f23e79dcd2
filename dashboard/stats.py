"""Agreement statistics and policy ratings, from maintained libraries where one exists.

Inputs are plain Python: a list of units (comparisons), each a list of labels given by different
annotators. No Django here, so every number is checked against hand arithmetic in a unit test.

Codings of a judgment (choice a / b / tie, strength one of four levels or empty for imports):
- direction-only: -1 (A better), 0 (tie), +1 (B better);
- strength-aware: the signed eight-step scale -4..-1 (A significantly .. negligibly better),
  +1..+4 (B negligibly .. significantly better), 0 for a tie. A side chosen without a strength
  (HH-RLHF and other imports) has no place on this scale and counts as missing there.
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import combinations

import numpy as np

# Strongest first, as annotation.models.Strength lists them.
STRENGTH_STEPS = {
    "significantly_better": 4,
    "better": 3,
    "slightly_better": 2,
    "negligibly_better": 1,
}


def direction_code(choice: str, strength: str = ""):
    return {"a": -1, "b": 1, "tie": 0}.get(choice)


def strength_code(choice: str, strength: str = ""):
    if choice == "tie":
        return 0
    step = STRENGTH_STEPS.get(strength or "")
    if step is None or choice not in ("a", "b"):
        return None
    return -step if choice == "a" else step


def units_from(rows, coding):
    """rows: (comparison_id, choice, strength) -> list of units, each the list of coded labels.

    Missing codes are dropped; units with fewer than two labels cannot show (dis)agreement and
    are dropped too.
    """
    by_unit: dict = {}
    for unit, choice, strength in rows:
        code = coding(choice, strength)
        if code is not None:
            by_unit.setdefault(unit, []).append(code)
    return [labels for labels in by_unit.values() if len(labels) >= 2]


def pairwise_agreement(units):
    """Share of annotator pairs, pooled over units, who gave the same label."""
    agreeing = total = 0
    for labels in units:
        for x, y in combinations(labels, 2):
            total += 1
            agreeing += x == y
    return agreeing / total if total else None


def _count_table(units, categories):
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(units), len(categories)))
    for row, labels in enumerate(units):
        for label in labels:
            table[row, index[label]] += 1
    return table


def fleiss_kappa(units):
    """Fleiss' kappa (statsmodels). It needs the same number of raters per unit, so it is
    computed on the units with the most common count. Returns (kappa, units used)."""
    from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

    if not units:
        return None, 0
    raters = Counter(len(labels) for labels in units).most_common(1)[0][0]
    used = [labels for labels in units if len(labels) == raters]
    categories = sorted({label for labels in used for label in labels})
    if len(categories) < 2:
        return (1.0 if used else None), len(used)  # everyone agreed on one label
    kappa = statsmodels_fleiss_kappa(_count_table(used, categories), method="fleiss")
    return float(kappa), len(used)


def krippendorff_alpha(units, level="ordinal"):
    """Krippendorff's alpha (the `krippendorff` package); units may have different counts."""
    import krippendorff

    if not units:
        return None
    width = max(len(labels) for labels in units)
    # Reliability data: one row per "rater slot", one column per unit; the statistic only uses
    # which values share a unit, so slots need not be the same person across units.
    data = np.full((width, len(units)), np.nan)
    for column, labels in enumerate(units):
        data[: len(labels), column] = labels
    values = np.unique(data[~np.isnan(data)])
    if len(values) < 2:
        return 1.0
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level,
                                    value_domain=values))


def gwet_ac1(units, categories):
    """Gwet's AC1 for any number of raters per unit (Gwet 2014, eq. 2.8 and 4.x).

    Hand-written: the maintained implementation (irrCAC) pins scipy==1.12.0, which would
    downgrade NumPy under PyTorch. `categories` is the scale's full label set (q = its size).
    pa = mean over units of sum_k r_ik (r_ik - 1) / (r_i (r_i - 1));
    pi_k = mean over units of r_ik / r_i;  pe = sum_k pi_k (1 - pi_k) / (q - 1).
    """
    if not units or len(categories) < 2:
        return None
    return _gwet_ac1_of_table(_count_table(units, categories))


def _gwet_ac1_of_table(table):
    """Gwet's AC1 of a (units, q) table of label counts (the bootstrap resamples its rows)."""
    return _gwet_of_table(table, np.eye(table.shape[1]))


def ordinal_weights(q):
    """Gwet's ordinal weights (Handbook, 4th ed., sec. 3.x; irrCAC's `ordinal.weights`): between
    the k-th and l-th category w = 1 - C(|k - l| + 1, 2) / C(q, 2), so neighbours nearly agree
    and the two ends not at all. On the signed eight-step scale (-4..-1, +1..+4) neighbouring
    steps are 1 apart in rank, whatever their codes."""
    ranks = np.arange(q)
    distance = np.abs(ranks[:, None] - ranks[None, :])  # (q, q)
    return 1 - (distance + 1) * distance / 2 / (q * (q - 1) / 2)


def _gwet_of_table(table, weights):
    """Gwet's AC2 (AC1 with identity weights) of a (units, q) count table, Handbook eq. 3.x:
    pa = mean over units with 2+ labels of sum_k r_ik (r*_ik - 1) / (r_i (r_i - 1)), where
    r*_ik = sum_l w_kl r_il; pi_k = mean over all units of r_ik / r_i;
    pe = T_w / (q (q - 1)) * sum_k pi_k (1 - pi_k), T_w the sum of all weights."""
    q = table.shape[1]
    raters = table.sum(axis=1)  # (units,)
    several = raters >= 2
    weighted = table @ weights.T  # (units, q): r*_ik
    pa = float(np.mean((table * (weighted - 1)).sum(axis=1)[several] / (raters * (raters - 1))[several]))
    pi = (table / raters[:, None]).mean(axis=0)  # (q,)
    pe = float(weights.sum() / (q * (q - 1)) * (pi * (1 - pi)).sum())
    return (pa - pe) / (1 - pe) if pe < 1 else None


def gwet_ac2(units, categories):
    """Gwet's AC2 with ordinal weights over `categories` in scale order (lowest first); units
    with one label still count towards the chance term, as in Gwet's formula."""
    if not units or len(categories) < 2:
        return None
    return _gwet_of_table(_count_table(units, categories), ordinal_weights(len(categories)))


# Below this many comparisons with two or more judgments, the page says the numbers are too few
# to read (one comparison gives a kappa of -0.5 or 1.0 by chance alone).
MIN_AGREEMENT_UNITS = 10


def bootstrap_intervals(units, categories, *, resamples=200, seed=0, level=0.95):
    """95 % percentile intervals of pairwise agreement and Gwet's AC1 / AC2 over comparisons resampled
    with replacement. Per-comparison counts are built once and their rows resampled, so 10,000
    comparisons take a fraction of a second, not a Python loop per resample."""
    table = _count_table(units, categories)  # (units, q)
    raters = table.sum(axis=1)  # (units,)
    agreeing = (table * (table - 1) / 2).sum(axis=1)  # agreeing annotator pairs per unit
    pairs = raters * (raters - 1) / 2
    rows = np.random.default_rng(seed).integers(0, len(units), (resamples, len(units)))  # (R, units)
    pairwise = agreeing[rows].sum(axis=1) / pairs[rows].sum(axis=1)  # (R,)
    ac1 = [value for value in (_gwet_ac1_of_table(table[r]) for r in rows) if value is not None]
    weights = ordinal_weights(len(categories))
    ac2 = [value for value in (_gwet_of_table(table[r], weights) for r in rows) if value is not None]
    bounds = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return {"pairwise_interval": tuple(float(v) for v in np.percentile(pairwise, bounds)),
            "ac1_interval": tuple(float(v) for v in np.percentile(ac1, bounds)) if ac1 else None,
            "ac2_interval": tuple(float(v) for v in np.percentile(ac2, bounds)) if ac2 else None}


def agreement_report(rows):
    """All statistics, direction-only and strength-aware, for rows (unit, choice, strength);
    with 95 % bootstrap intervals over comparisons for pairwise agreement and Gwet's AC1, or
    `too_few` when fewer than MIN_AGREEMENT_UNITS comparisons carry two or more labels."""
    report = {}
    for name, coding, base_categories in (
        ("direction", direction_code, [-1, 1]),
        ("strength", strength_code, [-4, -3, -2, -1, 1, 2, 3, 4]),
    ):
        units = units_from(rows, coding)
        has_tie = any(0 in labels for labels in units)
        categories = sorted(base_categories + ([0] if has_tie else []))
        kappa, kappa_units = fleiss_kappa(units)
        report[name] = {
            "units": len(units),
            "judgments": sum(len(labels) for labels in units),
            "pairwise_agreement": pairwise_agreement(units),
            "fleiss_kappa": kappa,
            "fleiss_units": kappa_units,
            "krippendorff_alpha": krippendorff_alpha(units),
            "gwet_ac1": gwet_ac1(units, categories),
            "gwet_ac2": gwet_ac2(units, categories),
            "too_few": len(units) < MIN_AGREEMENT_UNITS,
            "min_units": MIN_AGREEMENT_UNITS,
        }
        if not report[name]["too_few"]:
            report[name].update(bootstrap_intervals(units, categories))
    return report


# --- policy versions ------------------------------------------------------------------------------


def _win_matrix(n_items, wins):
    """wins: array (m, 2) of (winner, loser) -> (n_items, n_items) counts, [i, j] = i beat j."""
    matrix = np.zeros((n_items, n_items))
    np.add.at(matrix, (wins[:, 0], wins[:, 1]), 1)
    return matrix


def bradley_terry(n_items, wins, alpha=0.01):
    """Bradley-Terry log-strengths (choix, iterative Luce spectral ranking), centred on 0.

    wins: list of (winner index, loser index). A small regularisation keeps versions that
    never lost (or never won) finite.
    """
    import choix

    params = choix.ilsr_pairwise_dense(_win_matrix(n_items, np.asarray(wins)), alpha=alpha)
    return params - params.mean()


def bradley_terry_with_ci(names, wins, bootstrap=200, seed=0, level=0.95):
    """Ratings on the Elo scale (400 / ln 10 per unit of log-strength, 1000 = average) with
    percentile bootstrap intervals over resampled judgments. Returns rows, best first."""
    if not wins or len(names) < 2:
        return []
    scale = 400 / math.log(10)
    wins = np.asarray(wins)  # (m, 2)
    point = bradley_terry(len(names), wins)
    rng = np.random.default_rng(seed)
    samples = np.empty((bootstrap, len(names)))
    for b in range(bootstrap):
        samples[b] = bradley_terry(len(names), wins[rng.integers(0, len(wins), len(wins))])
    low, high = np.percentile(samples, [(1 - level) / 2 * 100, (1 + level) / 2 * 100], axis=0)
    played = Counter()
    won = Counter()
    for winner, loser in wins.tolist():
        played[winner] += 1
        played[loser] += 1
        won[winner] += 1
    rows = [
        {
            "name": name,
            "rating": float(1000 + scale * point[i]),
            "low": float(1000 + scale * low[i]),
            "high": float(1000 + scale * high[i]),
            "comparisons": played[i],
            "wins": won[i],
            "win_rate": won[i] / played[i] if played[i] else None,
        }
        for i, name in enumerate(names)
    ]
    return sorted(rows, key=lambda row: -row["rating"])


# --- style-controlled Bradley-Terry (issue 21) -----------------------------------------------------

STYLE_FEATURES = ("length", "headers", "list_items", "bold")


def style_counts(text: str) -> tuple[int, int, int, int]:
    """Characters and Markdown elements of a response, the covariates LMSYS's style control uses
    (Chatbot Arena, "Does style matter?", 2024): length, headers, list items, bold spans."""
    lines = [line.lstrip() for line in text.splitlines()]
    headers = sum(line.startswith("#") for line in lines)
    items = sum(line[:2] in ("- ", "* ", "+ ") or (line.split(". ", 1)[0].isdigit() and ". " in line)
                for line in lines)
    return len(text), headers, items, text.count("**") // 2


def _style_differences(features_winner, features_loser):
    """(battles, k): LMSYS's normalised difference (w - l) / (w + l) (0 when both are 0), then
    scaled to unit root-mean-square over the battles so coefficients are comparable. (RMS, not
    the standard deviation: battles are coded winner-first, and the RMS, unlike the standard
    deviation, is the same whichever side of each battle is written first.)"""
    w, loser = np.asarray(features_winner, float), np.asarray(features_loser, float)  # (m, k)
    total = w + loser
    diff = np.divide(w - loser, total, out=np.zeros_like(total), where=total > 0)
    spread = np.sqrt((diff**2).mean(axis=0))
    return diff / np.where(spread > 0, spread, 1.0)


def bradley_terry_style(n_items, wins, style_diff, alpha=0.01):
    """Logistic regression P(w beats l) = sigmoid(theta_w - theta_l + beta . style_diff) with a
    small ridge (alpha) like the plain fit's; returns (theta centred on 0, beta)."""
    from scipy.optimize import minimize

    wins = np.asarray(wins)  # (m, 2)
    m, k = style_diff.shape
    design = np.zeros((m, n_items + k))  # (m, n + k): +1 winner, -1 loser, then the style columns
    design[np.arange(m), wins[:, 0]] += 1
    design[np.arange(m), wins[:, 1]] -= 1
    design[:, n_items:] = style_diff

    def loss(params):
        margin = design @ params  # (m,)
        value = np.logaddexp(0, -margin).sum() + alpha / 2 * params @ params
        gradient = -design.T @ (1 / (1 + np.exp(margin))) + alpha * params
        return value, gradient

    params = minimize(loss, np.zeros(n_items + k), jac=True, method="L-BFGS-B").x
    theta = params[:n_items]
    return theta - theta.mean(), params[n_items:]


def bradley_terry_style_with_ci(names, wins, features_winner, features_loser, bootstrap=100, seed=0, level=0.95):
    """Style-controlled ratings on the Elo scale with percentile bootstrap intervals, and the
    style coefficients (how many log-odds one standard deviation of each covariate is worth)."""
    if not wins or len(names) < 2:
        return {"rows": [], "coefficients": {}}
    scale = 400 / math.log(10)
    wins = np.asarray(wins)
    diff = _style_differences(features_winner, features_loser)
    point, beta = bradley_terry_style(len(names), wins, diff)
    rng = np.random.default_rng(seed)
    samples = np.empty((bootstrap, len(names)))
    for b in range(bootstrap):
        rows = rng.integers(0, len(wins), len(wins))
        samples[b] = bradley_terry_style(len(names), wins[rows], diff[rows])[0]
    low, high = np.percentile(samples, [(1 - level) / 2 * 100, (1 + level) / 2 * 100], axis=0)
    rows = [{"name": name, "rating": float(1000 + scale * point[i]), "low": float(1000 + scale * low[i]),
             "high": float(1000 + scale * high[i])} for i, name in enumerate(names)]
    return {"rows": sorted(rows, key=lambda row: -row["rating"]),
            "coefficients": {name: float(value) for name, value in zip(STYLE_FEATURES, beta)}}
