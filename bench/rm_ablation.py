"""What makes a small reward model good: one change at a time against the CPU recipe.

    scripts/reward-models import                 # once: the real data sets into var/reward-models.sqlite3
    .venv/bin/python bench/rm_ablation.py        # all variants (~1 h on 2 cores)
    .venv/bin/python bench/rm_ablation.py --only baseline lr_1e-5

Data: the Tulu human-eval comparisons (graded strength) of the "Open helpfulness" project, the
same prompt-level held-out split as the README's helpfulness RM (15 %, seed 0). Every variant
trains on the same seeded sample of --pairs training pairs from SmolLM2-135M-Instruct and is
scored on the same held-out pairs; only the named setting changes. Prints a table (accuracy with
a 95 % Wilson interval, per strength, train minutes) and writes bench/results/rm_ablation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "margin.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{REPO / 'var' / 'reward-models.sqlite3'}")
os.environ.setdefault("MARGIN_MODEL_STORE", str(REPO / "var" / "models"))

from core.intervals import wilson_interval  # noqa: E402

RESULTS = REPO / "bench" / "results" / "rm_ablation.json"
RECIPE = REPO / "bench" / "recipes" / "helpfulness-top4.json"  # the recipe these ablations started from

# One change each against the recipe (lr 1e-4, top 4 layers, 384 tokens, the project's margin).
# In order of interest, so a cut-short run has the main answers.
VARIANTS = {
    "baseline": {},
    "lr_1e-5": {"learning_rate": 1e-5},  # the paper's rate, for 7B-70B models
    "margin_none": {"margin_scheme": "none"},
    "all_layers": {"train_layers": 0},
    "max_length_192": {"max_length": 192},
    "lora_16": {"train_layers": 0, "lora_rank": 16},
    "margin_large": {"margin_scheme": "large"},
    "lr_3e-4": {"learning_rate": 3e-4},
    "top_1_layer": {"train_layers": 1},
}


def tulu_pairs(config):
    """(train, held-out) Tulu pairs with the variant's margin scheme."""
    from annotation.models import Project
    from rewardmodel.data import pairs_for_projects, split

    project = Project.objects.get(name="Open helpfulness")
    pairs, _ = pairs_for_projects(
        [project], objective="helpfulness", margin_scheme=config.margin_scheme or None,
        min_judgments=config.min_judgments,
    )
    tulu = [p for p in pairs if p.source.startswith("tulu")]
    if not tulu:
        sys.exit("No Tulu pairs: run `scripts/reward-models import` first.")
    return split(tulu, config.heldout_fraction)


def run_variant(name, overrides, args, base_path):
    from rewardmodel.config import RewardModelConfig
    from rewardmodel.evaluation import report, score_pairs
    from rewardmodel.modeling import load_for_scoring
    from rewardmodel.training import train

    recipe = json.loads(RECIPE.read_text())
    recipe.pop("max_pairs", None)
    config = RewardModelConfig(**{**recipe, "mix_ratio": 0.0, **overrides})
    train_pairs, heldout = tulu_pairs(config)
    train_pairs = random.Random(0).sample(train_pairs, min(args.pairs, len(train_pairs)))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        result = train(config, train_pairs, folder, base_path=base_path)
        model, tokenizer = load_for_scoring(result.checkpoint)
        scores = score_pairs(model, tokenizer, heldout, config.max_length, truncation_side=config.truncation_side)
    summary = report(heldout, scores)
    correct = sum(c > r for c, r in scores)
    low, high = wilson_interval(correct, len(heldout))
    return {
        "variant": name,
        "overrides": overrides,
        "train_pairs": len(train_pairs),
        "heldout_pairs": len(heldout),
        "accuracy": round(correct / len(heldout), 4),
        "ci95": [round(low, 4), round(high, 4)],
        "per_strength": {k: v["accuracy"] for k, v in summary["per_strength"].items() if v["pairs"]},
        "final_train_loss": result.metrics.get("loss/rm"),
        "train_minutes": round(result.metrics["train_seconds"] / 60, 2),
        "total_minutes": round((time.perf_counter() - started) / 60, 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=320, help="training pairs per variant")
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="run only these variants")
    args = parser.parse_args()

    import django

    django.setup()
    import torch

    from modelruntime.modelstore import default_model_dir

    torch.manual_seed(0)
    base_path = default_model_dir(Path(os.environ["MARGIN_MODEL_STORE"]))
    previous = json.loads(RESULTS.read_text())["variants"] if RESULTS.exists() else {}
    rows = dict(previous)
    for name in args.only or VARIANTS:
        print(f"training {name} ...", flush=True)
        rows[name] = run_variant(name, VARIANTS[name], args, base_path)
        print(json.dumps(rows[name]), flush=True)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                       f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
            "data": "Tulu human-eval (graded), prompt-level held-out 15 %, seed 0",
            "variants": rows,
        }, indent=2))

    print(f"\n{'variant':16} {'acc':>6} {'95% CI':>14} {'better':>7} {'slightly':>9} {'train min':>10}")
    for row in rows.values():
        strength = row["per_strength"]
        print(f"{row['variant']:16} {row['accuracy']:6.3f} {row['ci95'][0]:6.3f}-{row['ci95'][1]:.3f} "
              f"{strength.get('better', float('nan')):7.3f} {strength.get('slightly_better', float('nan')):9.3f} "
              f"{row['train_minutes']:10.1f}")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
