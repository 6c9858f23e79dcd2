"""Reads for the models page: reward-model accuracy per batch and strength (Llama 2, Table 8's
shape), calibration, rejection-sampling reward vs K (Fig. 7), PPO curves and win rates.

Each chart is a plain dict {id, title, type, labels, datasets: [{label, data}], x, y} that
static/dashboard/charts.js hands to Chart.js, and each comes with the table of its numbers.
"""

from __future__ import annotations

from collections import defaultdict

from annotation.models import Strength

STRENGTH_COLUMNS = [*Strength.values, "ungraded"]
# The PPO table's columns and the log keys they read (modelruntime/__init__.py names them; the
# second key is the name before that scheme, for versions trained earlier).
PPO_COLUMNS = {"reward": ("reward/score", "reward"), "kl": ("kl/reference_k1", "kl"),
               "value_loss": ("loss/value", "value_loss"), "entropy": ("ppo/entropy", "entropy"),
               "response_length": ("ppo/response_length", "response_length")}


def chart(chart_id, title, labels, datasets, x, y, kind="line"):
    return {"id": chart_id, "title": title, "type": kind, "labels": labels,
            "datasets": datasets, "x": x, "y": y}


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
    return {
        "reward_models": RewardModel.objects.all()[:50],
        "accuracy_chart": accuracy_chart, "accuracy_rows": accuracy_rows, "batch_labels": batch_labels,
        "strength_chart": strength_chart, "strength_rows": strength_rows,
        "strength_columns": STRENGTH_COLUMNS,
        "calibration_chart": calibration_chart, "calibration_rows": calibration_rows,
    }


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
