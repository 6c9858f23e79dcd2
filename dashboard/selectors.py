"""Read queries for the staff dashboard: progress, annotators, agreement, leaderboard, models."""

from __future__ import annotations

from collections import Counter, defaultdict
from statistics import median

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Q
from django.db.models.functions import TruncDate

from annotation.models import (
    AnnotatorProfile,
    Assignment,
    Batch,
    Comparison,
    Judgment,
    Project,
    Strength,
)
from core.vocabulary import SAFETY_BIN_LABELS, safety_bin_of_judgment
from dashboard import stats
from margin.models import Job

NO_STRENGTH = "none"  # imported labels without a strength (HH-RLHF, PandaLM)


# --- progress -------------------------------------------------------------------------------------


def _comparison_counts(comparisons):
    """comparisons (a queryset) -> totals: comparisons, complete ones, judgments done / wanted."""
    rows = comparisons.annotate(
        done=Count("judgments"),
        wanted_n=F("batch__project__judgments_per_comparison"),
    ).values("judgments_wanted", "wanted_n", "done", "is_gold")
    total = complete = done = wanted = gold = 0
    for row in rows:
        want = row["judgments_wanted"] or row["wanted_n"]
        total += 1
        gold += row["is_gold"]
        complete += row["done"] >= want
        done += min(row["done"], want)
        wanted += want
    return {"comparisons": total, "complete": complete, "judgments_done": done,
            "judgments_wanted": wanted, "gold": gold,
            "percent": round(100 * done / wanted) if wanted else 0}


def projects_overview():
    return [
        {"project": project, "open_batches": project.open_batches,
         **_comparison_counts(Comparison.objects.filter(batch__project=project))}
        for project in Project.objects.annotate(
            open_batches=Count("batches", filter=Q(batches__is_open=True))
        )
    ]


def batches_progress(*, project):
    return [
        {"batch": batch, **_comparison_counts(Comparison.objects.filter(batch=batch))}
        for batch in Batch.objects.filter(project=project).order_by("number")
    ]


def _judgments_in(project, batch=None):
    judgments = Judgment.objects.filter(comparison__batch__project=project)
    return judgments.filter(comparison__batch=batch) if batch is not None else judgments


def judgments_per_day(*, project, batch=None):
    return list(
        _judgments_in(project, batch)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(judgments=Count("pk"))
        .order_by("day")
    )


def strength_distribution(*, project, batch=None):
    """Judgments per strength level (strongest first), then ties and imported labels without one."""
    counts = Counter(
        "tie" if row["choice"] == Judgment.Choice.TIE else (row["strength"] or NO_STRENGTH)
        for row in _judgments_in(project, batch).values("choice", "strength")
    )
    levels = [(value, label) for value, label in Strength.choices]
    levels += [("tie", "Tie (imported)"), (NO_STRENGTH, "No strength (imported)")]
    total = sum(counts.values())
    return [
        {"value": value, "label": label, "judgments": counts[value],
         "share": counts[value] / total if total else 0}
        for value, label in levels
        if counts[value] or value in Strength.values
    ]


def safety_bins(*, project, batch=None):
    """Judgments per safety bin (Llama 2, sec. 3.2.2 and Fig. 8), named as the export names them."""
    counts = Counter(
        safety_bin_of_judgment(*row)
        for row in _judgments_in(project, batch).values_list(
            "choice", "response_a_safe", "response_b_safe"
        )
    )
    return [
        {"value": value or "unlabelled", "label": label, "judgments": counts[value]}
        for value, label in SAFETY_BIN_LABELS.items()
    ]


def skips(*, project, batch=None):
    skipped = Assignment.objects.filter(
        comparison__batch__project=project, status=Assignment.Status.SKIPPED
    )
    if batch is not None:
        skipped = skipped.filter(comparison__batch=batch)
    return list(
        skipped
        .values("skip_reason")
        .annotate(skips=Count("pk"))
        .order_by("-skips", "skip_reason")
    )


# --- annotators -----------------------------------------------------------------------------------


def _directions_by_comparison(judgments):
    by_comparison = defaultdict(list)
    for comparison_id, annotator_id, choice in judgments.values_list(
        "comparison_id", "annotator_id", "choice"
    ):
        by_comparison[comparison_id].append((annotator_id, choice))
    return by_comparison


def majority_agreement(judgments):
    """annotator id -> (agreeing, counted): how often their choice matched the strict majority
    of the *other* judgments on the same comparison (no strict majority: not counted)."""
    result = defaultdict(lambda: [0, 0])
    for labels in _directions_by_comparison(judgments).values():
        for i, (annotator_id, choice) in enumerate(labels):
            if annotator_id is None:
                continue
            others = Counter(c for j, (_, c) in enumerate(labels) if j != i)
            if not others:
                continue
            top, votes = others.most_common(1)[0]
            if votes * 2 <= sum(others.values()):
                continue
            result[annotator_id][0] += choice == top
            result[annotator_id][1] += 1
    return result


def annotators_table(*, project=None):
    """One row per annotator who judged (in the project, or anywhere): volume, speed, agreement
    with the majority, gold accuracy, and staff's pause / exclude flags."""
    judgments = Judgment.objects.filter(annotator__isnull=False)
    if project is not None:
        judgments = judgments.filter(comparison__batch__project=project)
    seconds = defaultdict(list)
    gold = defaultdict(lambda: [0, 0])
    for annotator_id, spent, choice, is_gold, gold_choice in judgments.values_list(
        "annotator_id", "seconds_spent", "choice", "comparison__is_gold", "comparison__gold_choice"
    ):
        if spent is not None:
            seconds[annotator_id].append(spent)
        if is_gold and gold_choice:
            gold[annotator_id][0] += choice == gold_choice
            gold[annotator_id][1] += 1
    counts = Counter(judgments.values_list("annotator_id", flat=True))
    majority = majority_agreement(judgments)
    users = get_user_model().objects.filter(pk__in=counts).order_by("username")
    profiles = {p.user_id: p for p in AnnotatorProfile.objects.filter(user__in=users)}
    rows = []
    for user in users:
        agree, counted = majority.get(user.pk, (0, 0))
        right, golds = gold[user.pk]
        rows.append({
            "user": user,
            "profile": profiles.get(user.pk),
            "judgments": counts[user.pk],
            "median_seconds": median(seconds[user.pk]) if seconds[user.pk] else None,
            "majority_agreement": agree / counted if counted else None,
            "majority_counted": counted,
            "gold_accuracy": right / golds if golds else None,
            "gold_judged": golds,
        })
    return rows


# --- agreement and review -------------------------------------------------------------------------


def agreement_for(*, project, batch=None):
    rows = list(_judgments_in(project, batch).values_list("comparison_id", "choice", "strength"))
    return stats.agreement_report(rows)


def comparisons_for_review(*, project, max_majority_share=0.67, include_adjudicated=False):
    """Comparisons with two or more judgments whose biggest side holds at most
    `max_majority_share` of them (split verdicts), most split first."""
    judged = (
        Comparison.objects.filter(batch__project=project)
        .annotate(n=Count("judgments"), a=Count("judgments", filter=Q(judgments__choice="a")),
                  b=Count("judgments", filter=Q(judgments__choice="b")))
        .filter(n__gte=2)
    )
    if not include_adjudicated:
        judged = judged.filter(adjudication__isnull=True)
    rows = []
    for comparison in judged.select_related("batch").order_by("pk"):
        share = max(comparison.a, comparison.b) / comparison.n
        if share <= max_majority_share:
            rows.append({"comparison": comparison, "majority_share": share})
    return sorted(rows, key=lambda row: (row["majority_share"], row["comparison"].pk))


def comparison_for_review(*, comparison_id):
    return (
        Comparison.objects.select_related("batch__project", "dialogue", "response_a", "response_b")
        .prefetch_related("judgments__annotator")
        .get(pk=comparison_id)
    )


# --- policy versions ------------------------------------------------------------------------------


def _version_battles(project=None):
    """(names, wins as (winner, loser) indices, winner texts, loser texts) from judged comparisons
    between two different policy versions."""
    judgments = Judgment.objects.filter(
        choice__in=("a", "b"),
        comparison__response_a__policy_version__isnull=False,
        comparison__response_b__policy_version__isnull=False,
    ).exclude(comparison__response_a__policy_version=F("comparison__response_b__policy_version"))
    if project is not None:
        judgments = judgments.filter(comparison__batch__project=project)
    rows = list(judgments.values_list(
        "choice",
        "comparison__response_a__policy_version__name",
        "comparison__response_b__policy_version__name",
        "comparison__response_a__text",
        "comparison__response_b__text",
    ))
    names = sorted({name for _, a, b, _, _ in rows for name in (a, b)})
    index = {name: i for i, name in enumerate(names)}
    wins, winner_texts, loser_texts = [], [], []
    for choice, a, b, text_a, text_b in rows:
        first, second = ((a, text_a), (b, text_b)) if choice == "a" else ((b, text_b), (a, text_a))
        wins.append((index[first[0]], index[second[0]]))
        winner_texts.append(first[1])
        loser_texts.append(second[1])
    return names, wins, winner_texts, loser_texts


def policy_leaderboard(*, project=None, bootstrap=200):
    """Bradley-Terry ratings of policy versions from judged comparisons between two versions."""
    names, wins, _, _ = _version_battles(project)
    return stats.bradley_terry_with_ci(names, wins, bootstrap=bootstrap)


def policy_leaderboard_style_controlled(*, project=None, bootstrap=100):
    """The same battles with response length and Markdown elements as covariates (LMSYS's style
    control): ratings of what is left once style is accounted for."""
    names, wins, winner_texts, loser_texts = _version_battles(project)
    return stats.bradley_terry_style_with_ci(
        names, wins, [stats.style_counts(t) for t in winner_texts], [stats.style_counts(t) for t in loser_texts],
        bootstrap=bootstrap,
    )


# --- jobs -----------------------------------------------------------------------------------------

JOB_FILTERS = {"state": Job.State.values, "kind": Job.Kind.values}


def jobs_list(*, state="", kind=""):
    """Newest first; filters only from the allowlist above (anything else is ignored)."""
    jobs = Job.objects.select_related("created_by")
    if state in JOB_FILTERS["state"]:
        jobs = jobs.filter(state=state)
    if kind in JOB_FILTERS["kind"]:
        jobs = jobs.filter(kind=kind)
    return jobs[:200]


def job_params_rows(params, prefix=""):
    """A job's parameters as (name, value) rows for a table; nested dicts (its config) become
    dotted names, "config.learning_rate"."""
    rows = []
    for name, value in (params or {}).items():
        if isinstance(value, dict) and value:
            rows += job_params_rows(value, prefix=f"{prefix}{name}.")
        elif isinstance(value, list):
            rows.append((f"{prefix}{name}", ", ".join(str(item) for item in value) or "—"))
        else:
            rows.append((f"{prefix}{name}", "—" if value in ("", None, {}) else str(value)))
    return rows


# --- reward-model guardrails (issue 21) -----------------------------------------------------------


def reward_model_guardrails(*, reward_model_id):
    """One reward model's newest overall evaluation with its length baselines, and for a safety
    RM the unsafe precision / recall curve, the score histograms and where the gate sits."""
    from dashboard.models_data import chart
    from rewardmodel.evaluation import PAPER_GATE
    from rewardmodel.models import RewardModel

    reward_model = RewardModel.objects.select_related("project").get(pk=reward_model_id)
    evaluation = reward_model.evaluations.filter(batch=None).order_by("-created_at").first()
    length = evaluation.length if evaluation else {}
    safety = evaluation.safety_curve if evaluation else {}
    gate = reward_model.safety_gate if reward_model.safety_gate is not None else PAPER_GATE
    curve = safety.get("curve", [])
    gate_row = min(curve, key=lambda row: abs(row["threshold"] - gate)) if curve else None
    histogram = safety.get("histogram", {})
    edges = histogram.get("edges", [])
    return {
        "reward_model": reward_model, "evaluation": evaluation, "length": length, "safety": safety,
        "gate": gate, "gate_is_paper": reward_model.safety_gate is None, "gate_row": gate_row,
        "curve_chart": chart(
            "rm-safety-curve", "Unsafe responses caught below each threshold",
            [row["threshold"] for row in curve],
            [{"label": "precision", "data": [row["precision"] for row in curve]},
             {"label": "recall", "data": [row["recall"] for row in curve]}],
            "threshold on the sigmoid score (below it: called unsafe)", "share",
        ),
        "histogram_chart": chart(
            "rm-safety-histogram", "Scores of safe and unsafe responses",
            [f"{low:g}–{high:g}" for low, high in zip(edges, edges[1:])],
            [{"label": "safe", "data": histogram.get("safe", [])},
             {"label": "unsafe", "data": histogram.get("unsafe", [])}],
            "sigmoid score", "responses", kind="bar", counts=True,
        ),
    }
