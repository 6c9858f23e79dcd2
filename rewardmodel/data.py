"""Judgments -> reward-model training pairs: aggregation, margins, safety rules, split, mixing.

The pure part (`aggregate`, `margin_for`, `safety_bin`, `split`, `mix`) works on plain
values and is what the tests pin down; `pairs_for_projects` reads the database.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from statistics import median_low

from core.heldout import prompt_is_heldout, prompt_key
from core.vocabulary import (  # noqa: F401  (BOTH_SAFE and the other bins: read through here by tests)
    BOTH_SAFE,
    BOTH_UNSAFE,
    CHOSEN_SAFE_OTHER_UNSAFE,
    CHOSEN_UNSAFE_OTHER_SAFE,
    MARGINS,
    SAFETY_BINS,
    STRENGTHS,
    UNGRADED,
    safety_bin,
)


@dataclass(frozen=True)
class Vote:
    """One judgment as the aggregation sees it."""

    choice: str  # "a", "b" or "tie"
    strength: str = UNGRADED
    a_safe: bool | None = None
    b_safe: bool | None = None


@dataclass(frozen=True)
class Aggregate:
    choice: str  # "a" or "b"
    strength: str  # median strength of the agreeing votes, or UNGRADED
    agreement: float  # share of all votes on the majority side
    votes: int
    chosen_safe: bool | None
    rejected_safe: bool | None


@dataclass
class TrainingPair:
    context: list  # chat messages before the response
    chosen: str
    rejected: str
    margin: float = 0.0
    strength: str = UNGRADED
    safety_bin: str = ""
    agreement: float = 1.0
    votes: int = 1
    objective: str = "helpfulness"
    prompt_key: str = ""  # same opening prompt, same key: decides the held-out split
    batch_id: int | None = None
    comparison_id: int | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class NoTrainingData(ValueError):
    """Nothing to train or evaluate on; the message says what was missing."""


def aggregate(
    votes: list[Vote], *, min_judgments: int = 1, decided: tuple[str, str] | None = None
) -> tuple[Aggregate | None, str]:
    """Majority choice of the votes, or (None, why it was skipped).

    `decided`: staff's (choice, strength) from the review screen, which settles a split or thin
    comparison; the agreement still says how many raters saw it that way.
    """
    if decided is not None:
        choice, strength = decided
        agreeing = [vote for vote in votes if vote.choice == choice]
    else:
        if len(votes) < min_judgments:
            return None, "too_few_judgments"
        counts = Counter(vote.choice for vote in votes if vote.choice in ("a", "b"))
        if counts["a"] == counts["b"]:
            return None, "tie"
        choice = "a" if counts["a"] > counts["b"] else "b"
        agreeing = [vote for vote in votes if vote.choice == choice]
        graded = [STRENGTHS.index(vote.strength) for vote in agreeing if vote.strength in STRENGTHS]
        # The median of the agreeing raters' levels; median_low keeps it one of the four levels.
        strength = STRENGTHS[median_low(graded)] if graded else UNGRADED
    a_safe = _majority_label(vote.a_safe for vote in votes)
    b_safe = _majority_label(vote.b_safe for vote in votes)
    chosen_safe, rejected_safe = (a_safe, b_safe) if choice == "a" else (b_safe, a_safe)
    result = Aggregate(
        choice=choice,
        strength=strength,
        agreement=len(agreeing) / len(votes),
        votes=len(votes),
        chosen_safe=chosen_safe,
        rejected_safe=rejected_safe,
    )
    return result, ""


def _majority_label(labels) -> bool | None:
    counts = Counter(label for label in labels if label is not None)
    if not counts or counts[True] == counts[False]:
        return None
    return counts[True] > counts[False]


def margin_for(strength: str, scheme: str) -> float:
    """The paper's margin for a rating level; ungraded pairs get none."""
    if scheme not in MARGINS:
        raise ValueError(f"unknown margin scheme {scheme!r}; use none, small or large")
    return MARGINS[scheme].get(strength, 0.0)


def keep_for_objective(pair_bin: str, objective: str) -> bool:
    # Safety RM: a pair whose chosen response is unsafe while the other is safe teaches the
    # opposite of the safety preference (Llama 2 sec. 3.2.2), so it is left out.
    return not (objective == "safety" and pair_bin == CHOSEN_UNSAFE_OTHER_SAFE)


def split(pairs: list[TrainingPair], fraction: float):
    """(train, held-out) by prompt: core/heldout.py's split, the one the policy jobs use too."""
    train, heldout = [], []
    for pair in pairs:
        (heldout if prompt_is_heldout(pair.prompt_key, fraction=fraction) else train).append(pair)
    return train, heldout


def mix(own: list[TrainingPair], other: list[TrainingPair], ratio: float, seed: int = 0):
    """Own pairs plus `ratio` times as many pairs drawn from the other objective's data."""
    wanted = min(len(other), round(ratio * len(own)))
    return own + random.Random(seed).sample(other, wanted)


# --- the database side -----------------------------------------------------------------------


@dataclass
class BuildReport:
    pairs: int = 0
    skipped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {"pairs": self.pairs, "skipped": dict(self.skipped)}


def pairs_for_projects(
    projects, *, objective, margin_scheme=None, min_judgments=1, batches=None, exclude_annotators=()
):
    """Training pairs from every judged comparison of `projects` (our own and imported ones).

    `objective` decides the safety rule; `margin_scheme` defaults to each project's own.
    `exclude_annotators`: user ids (int) and imported rater ids (str) whose votes are left out.
    Returns (pairs, BuildReport).
    """
    from annotation.models import Comparison

    comparisons = (
        Comparison.objects.filter(batch__project__in=projects)
        .select_related("batch__project", "response_a", "response_b", "dialogue", "adjudication")
        .prefetch_related("judgments", "dialogue__turns")
        .order_by("pk")
    )
    if batches is not None:
        comparisons = comparisons.filter(batch__in=batches)
    excluded = _excluded_annotator_ids() | {x for x in exclude_annotators if isinstance(x, int)}
    excluded_raters = {x for x in exclude_annotators if isinstance(x, str) and x}
    report, pairs = BuildReport(), []
    for comparison in comparisons:
        votes = [
            Vote(j.choice, j.strength, j.response_a_safe, j.response_b_safe)
            for j in comparison.judgments.all()
            if j.annotator_id not in excluded and j.external_annotator not in excluded_raters
        ]
        if not votes:
            report.skipped["unjudged"] += 1
            continue
        adjudication = getattr(comparison, "adjudication", None)
        decided = (adjudication.choice, adjudication.strength) if adjudication else None
        result, why = aggregate(votes, min_judgments=min_judgments, decided=decided)
        if result is None:
            report.skipped[why] += 1
            continue
        pair_bin = safety_bin(result.chosen_safe, result.rejected_safe)
        if not keep_for_objective(pair_bin, objective):
            report.skipped["chosen_unsafe_other_safe"] += 1
            continue
        project = comparison.batch.project
        context = comparison.dialogue.messages(upto=comparison.context_length)
        a, b = comparison.response_a.text, comparison.response_b.text
        chosen, rejected = (a, b) if result.choice == "a" else (b, a)
        pairs.append(
            TrainingPair(
                context=context,
                chosen=chosen,
                rejected=rejected,
                margin=margin_for(result.strength, margin_scheme or project.margin_scheme),
                strength=result.strength,
                safety_bin=pair_bin,
                agreement=result.agreement,
                votes=result.votes,
                objective=project.objective,
                prompt_key=prompt_key(context),
                batch_id=comparison.batch_id,
                comparison_id=comparison.pk,
                source=comparison.source or comparison.dialogue.source,
            )
        )
    report.pairs = len(pairs)
    return pairs, report


def _excluded_annotator_ids() -> set:
    """Annotators staff excluded from training (the dashboard's annotator profile flag)."""
    from django.apps import apps

    try:
        profile = apps.get_model("annotation", "AnnotatorProfile")
    except LookupError:
        return set()
    return set(profile.objects.filter(exclude_from_training=True).values_list("user_id", flat=True))


# --- length-balanced batches (issue 21) --------------------------------------------------------


def chosen_is_longer(pair: TrainingPair) -> bool | None:
    """True when the chosen response is the longer one (characters), None when equally long."""
    if len(pair.chosen) == len(pair.rejected):
        return None
    return len(pair.chosen) > len(pair.rejected)


def length_balanced_batches(
    chosen_longer: list[bool | None], lengths: list[int], batch_size: int, epochs: float, seed: int,
    window: int = 32,
) -> list[list[int]]:
    """Pair indices per forward pass, each pass holding as many pairs whose chosen response is the
    longer one as pairs whose chosen is the shorter one, as long as both kinds last.

    In a batch where every chosen response is the longer one, "longer wins" lowers the loss as
    well as the preference does; balanced, it cannot. Per epoch, each kind is shuffled (seeded)
    and, within windows of `window` batches, sorted by `lengths` (less padding, as
    training.micro_batches does); batch k takes the k-th run of each kind. What one kind has left
    over, and equally long pairs (None), fill batches of their own. Batches are then shuffled.
    An odd batch_size is rounded down to an even one for the balanced batches.
    """
    rng = random.Random(seed)
    half = max(1, batch_size // 2)
    order = []
    for _ in range(math.ceil(epochs)):
        epoch = list(range(len(lengths)))
        rng.shuffle(epoch)
        order.extend(epoch)
    order = order[: round(epochs * len(lengths))]
    longer = [i for i in order if chosen_longer[i] is True]
    shorter = [i for i in order if chosen_longer[i] is False]
    balanced = min(len(longer), len(shorter))
    rest = longer[balanced:] + shorter[balanced:] + [i for i in order if chosen_longer[i] is None]
    longer, shorter = longer[:balanced], shorter[:balanced]
    batches = []
    for start in range(0, balanced, half * window):
        a = sorted(longer[start : start + half * window], key=lambda i: lengths[i])
        b = sorted(shorter[start : start + half * window], key=lambda i: lengths[i])
        batches.extend(a[i : i + half] + b[i : i + half] for i in range(0, len(a), half))
    rng.shuffle(rest)
    for start in range(0, len(rest), batch_size * window):
        chunk = sorted(rest[start : start + batch_size * window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches
