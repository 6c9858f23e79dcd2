"""Reads for the models page: reward-model accuracy per batch and strength (Llama 2, Table 8's
shape), calibration, rejection-sampling reward vs K (Fig. 7), PPO curves and win rates.

Each chart is a plain dict {id, title, type, labels, datasets: [{label, data}], x, y} that
static/dashboard/charts.js hands to Chart.js, and each comes with the table of its numbers.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import PurePath

from annotation.models import Strength

STRENGTH_COLUMNS = [*Strength.values, "ungraded"]
# The PPO table's columns and the log keys they read (modelruntime/__init__.py names them; the
# second key is the name before that scheme, for versions trained earlier).
PPO_COLUMNS = {"reward": ("reward/score", "reward"), "kl": ("kl/reference_k1", "kl"),
               "value_loss": ("loss/value", "value_loss"), "entropy": ("ppo/entropy", "entropy"),
               "response_length": ("ppo/response_length", "response_length")}


def chart(chart_id, title, labels, datasets, x, y, kind="line", counts=False):
    """`counts`: the y axis counts things, so it steps by whole numbers. A chart with nothing to
    draw (no labels, or no value but None, or only zero counts) is marked `empty`: the page
    says so instead of drawing bare axes."""
    values = [v for dataset in datasets for v in dataset["data"] if v is not None]
    empty = not labels or not values or (counts and not any(values))
    return {"id": chart_id, "title": title, "type": kind, "labels": labels,
            "datasets": datasets, "x": x, "y": y, "integer": counts, "empty": empty}


def reward_model_section():
    from rewardmodel.models import RewardModel, RewardModelEvaluation

    evaluations = list(
        RewardModelEvaluation.objects.select_related("reward_model", "batch__project")
        .order_by("reward_model__created_at", "batch__project__name", "batch__number", "label")
    )
    batch_labels = []
    for evaluation in evaluations:
        label = str(evaluation.batch) if evaluation.batch else evaluation.label
        if label not in batch_labels:
            batch_labels.append(label)
    by_model = defaultdict(dict)
    strength_totals = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))
    for evaluation in evaluations:
        label = str(evaluation.batch) if evaluation.batch else evaluation.label
        by_model[evaluation.reward_model.name][label] = evaluation.accuracy
        for strength, cell in (evaluation.per_strength or {}).items():
            if cell.get("accuracy") is not None and cell.get("pairs"):
                total = strength_totals[evaluation.reward_model.name][strength]
                total[0] += cell["accuracy"] * cell["pairs"]
                total[1] += cell["pairs"]
    accuracy_rows = [
        {"model": name, "cells": [accuracies.get(label) for label in batch_labels]}
        for name, accuracies in by_model.items()
    ]
    accuracy_chart = chart(
        "rm-accuracy", "Reward-model accuracy per batch", batch_labels,
        [{"label": row["model"], "data": row["cells"]} for row in accuracy_rows],
        "batch (in collection order)", "accuracy",
    )
    strength_rows = [
        {"model": name, "cells": [
            (totals[s][0] / totals[s][1], totals[s][1]) if totals[s][1] else (None, 0)
            for s in STRENGTH_COLUMNS
        ]}
        for name, totals in strength_totals.items()
    ]
    strength_chart = chart(
        "rm-strength", "Accuracy per strength level", [s.replace("_", " ") for s in STRENGTH_COLUMNS],
        [{"label": row["model"], "data": [c[0] for c in row["cells"]]} for row in strength_rows],
        "strength of the human preference", "accuracy", kind="bar",
    )
    newest = next((e for e in reversed(evaluations) if e.calibration), None)
    calibration_rows = newest.calibration if newest else []
    calibration_chart = chart(
        "rm-calibration",
        f"Calibration of {newest.reward_model.name} on {newest.label}" if newest else "Calibration",
        [f"{row['low']}–{row['high'] if row['high'] is not None else '∞'}" for row in calibration_rows],
        [{"label": "humans agree with the model", "data": [r["agreement"] for r in calibration_rows]},
         {"label": "model's predicted probability",
          "data": [r.get("predicted") for r in calibration_rows]}],
        "score gap |r_a − r_b|", "share", kind="bar",
    )
    reward_models = list(RewardModel.objects.select_related("project", "parent")[:50])
    names = base_model_names([rm.base_model for rm in reward_models])
    for rm in reward_models:
        rm.base_name = names[rm.base_model]
    return {
        "reward_models": reward_models,
        "accuracy_chart": accuracy_chart, "accuracy_rows": accuracy_rows, "batch_labels": batch_labels,
        "strength_chart": strength_chart, "strength_rows": strength_rows,
        "strength_columns": STRENGTH_COLUMNS,
        "calibration_chart": calibration_chart, "calibration_rows": calibration_rows,
    }


def base_model_names(paths):
    """Checkpoint path -> the name people know it by: the policy version or reward model
    registered with that checkpoint, else the checkpoint's directory name (the default model's
    is "SmolLM2-135M-Instruct"). The page never shows the server's file-system layout."""
    from rewardmodel.models import RewardModel
    from rlhf.models import PolicyVersion

    known = {}
    for model in (PolicyVersion, RewardModel):
        for name, checkpoint in model.objects.filter(checkpoint_path__in=paths).values_list("name", "checkpoint_path"):
            known.setdefault(checkpoint, name)
    return {path: known.get(path) or PurePath(path).name or "—" for path in paths}


def policy_section():
    from rlhf.models import PolicyVersion

    versions = list(PolicyVersion.objects.select_related("parent").order_by("created_at"))
    rs_charts, ppo_charts, win_rates = [], [], []
    for version in versions:
        curve = version.metrics.get("reward_vs_k") or []
        if curve:
            ks = sorted({row["k"] for row in curve})
            datasets = []
            for temperature in sorted({row["temperature"] for row in curve}):
                points = {row["k"]: row for row in curve if row["temperature"] == temperature}
                for stat in ("max", "median"):
                    datasets.append({"label": f"{stat} reward, T={temperature}",
                                     "data": [points.get(k, {}).get(stat) for k in ks]})
            rs_charts.append({
                "version": version, "rows": sorted(curve, key=lambda r: (r["temperature"], r["k"])),
                "chart": chart(f"rs-{version.pk}", f"{version.name}: reward vs K", ks, datasets,
                                "K (samples per prompt)", "reward"),
            })
        iterations = [ppo_row(record) for record in version.metrics.get("ppo_iterations") or []]
        if iterations:
            steps = [row["iteration"] for row in iterations]
            ppo_charts.append({
                "version": version, "rows": iterations,
                "chart": chart(
                    f"ppo-{version.pk}", f"{version.name}: PPO reward and KL", steps,
                    [{"label": "reward", "data": [row.get("reward") for row in iterations]},
                     {"label": "KL", "data": [row.get("kl") for row in iterations]}],
                    "iteration", "value"),
            })
        if version.metrics.get("win_rate"):
            win_rates.append({"version": version, **version.metrics["win_rate"]})
    return {"versions": versions, "rs_charts": rs_charts, "ppo_charts": ppo_charts,
            "win_rates": win_rates}


def ppo_row(record: dict) -> dict:
    """One PPO log record under the table's plain column names (a template cannot read "kl/...")."""
    return {"iteration": record["iteration"],
            **{column: next((record[k] for k in keys if k in record), None) for column, keys in PPO_COLUMNS.items()}}


def models_context():
    return {**reward_model_section(), **policy_section()}
