"""Does a small reward model learn the preference or the length? Variants against a CPU recipe (BASES).

    scripts/reward-models import                    # once: the real data sets into var/reward-models.sqlite3
    .venv/bin/python bench/rm_length.py             # every variant, 2 at a time, one thread each
    .venv/bin/python bench/rm_length.py --only recipe balanced --pairs 320 --max-length 192
    .venv/bin/python bench/rm_length.py --pairs 600 --combine   # a stored run's margins with length, ensembles

Data (issue 21): the "Open helpfulness" project (Auto-J, PandaLM, Tulu), split by prompt with the
one held-out rule (core/heldout.py, 15 % as the recipe), so the held-out part mixes the three
sources. Every variant trains SmolLM2-135M-Instruct on the same seeded sample of --pairs training
pairs (no HH mix, --max-length tokens per side; issue 21 allows 30 CPU-minutes of training per
variant, which train_cpu_seconds shows) and is scored on the same held-out pairs. Per variant:
overall accuracy (95 % Wilson interval), accuracy where the chosen response is the longer / the
shorter one (rewardmodel/evaluation.py's length_baselines), how often it sides with the longer
response against how often the human labels do, and the CPU-seconds of its training
(time.process_time of its own process: time spent waiting for a core is not counted, but two runs
sharing two cores still slow each other down: a 600-pair all-layer run took 33.4 CPU-minutes
beside another run in session 9, and 23.5 in session 8).
`--objective safety` does the same on "HH harmless" with the safety recipe.
Prints a table and writes bench/results/rm_length.json (rows of earlier runs are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
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

RESULTS = REPO / "bench" / "results" / "rm_length.json"
PROJECTS = {"helpfulness": "Open helpfulness", "safety": "HH harmless"}

# The fine-tuning recipes the variants change, as they were when these runs began (the product's
# recipes are now probes, bench/rm_probe.py; the best fine-tuned one is bench/recipes/helpfulness-finetune.json).
BASES = {"helpfulness": REPO / "bench" / "recipes" / "helpfulness-top4.json",
         "safety": REPO / "bench" / "recipes" / "safety-top8.json"}
# One change each against that base; cheapest first, so a cut-short run has the main answers.
VARIANTS = {
    "recipe": {},
    "balanced": {"length_balanced_batches": True},
    "decorrelate": {"length_decorrelation_weight": 1.0},
    "decorrelate_0.3": {"length_decorrelation_weight": 0.3},
    "balanced_decorrelate": {"length_balanced_batches": True, "length_decorrelation_weight": 1.0},
    # Not a config option: the training sample itself drawn half chosen-longer, half chosen-shorter
    # (the surplus of chosen-longer pairs left out), the same number of pairs as the others.
    "balanced_data": {},
    "all_layers": {"train_layers": 0},
    "all_layers_decorrelate": {"train_layers": 0, "length_decorrelation_weight": 1.0},
    # the recipe's 1e-4 was tuned for the top layers only; Llama 2 fine-tunes every layer at 1e-5 / 5e-6
    "all_layers_lr2e-5": {"train_layers": 0, "learning_rate": 2e-5},
    "all_layers_balanced_decorrelate": {"train_layers": 0, "length_balanced_batches": True,
                                        "length_decorrelation_weight": 1.0},
    # session 10: the length head (ODIN's, reduced to one fitted weight; rewardmodel/loss.py)
    "length_head": {"length_head": True},
    "all_layers_length_head": {"train_layers": 0, "length_head": True},
    "all_layers_lr2e-5_length_head": {"train_layers": 0, "learning_rate": 2e-5, "length_head": True},
    # Not a config option: pairs augmented so that length does not predict the label (see data_write).
    "all_layers_augmented": {"train_layers": 0},
    # session 11: at 192 tokens "left" drops the prompt of most pairs; "right" keeps the question
    # and reads each answer from its start (modelruntime/packing.py's fit). Measured worse (bench/REWARD-MODELS.md).
    "all_layers_right": {"train_layers": 0, "truncation_side": "right"},
    "all_layers_length_head_right": {"train_layers": 0, "length_head": True, "truncation_side": "right"},
    # session 12: top-4 layers gained with a higher rate (bench/rm_ablation.py: 3e-4 over 1e-4)
    "all_layers_lr2e-4_length_head": {"train_layers": 0, "learning_rate": 2e-4, "length_head": True},
    # the recipe again with other seeds (data order, head): how far apart runs of one recipe land
    "all_layers_length_head_seed1": {"train_layers": 0, "length_head": True, "seed": 1},
    "all_layers_length_head_seed2": {"train_layers": 0, "length_head": True, "seed": 2},
}


def recipe_config(objective: str, max_length: int, overrides: dict):
    from rewardmodel.config import RewardModelConfig

    recipe = json.loads(BASES[objective].read_text())
    recipe.pop("max_pairs", None)
    recipe.pop("checkpoint_every", None)
    return RewardModelConfig(**{**recipe, "mix_ratio": 0.0, "max_length": max_length,
                                "checkpoint_every": 10**6, **overrides})


def data_write(args, folder: Path) -> dict:
    """The seeded training sample and the held-out pairs, written once for every variant."""
    import django

    django.setup()
    from annotation.models import Project
    from rewardmodel.data import chosen_is_longer, pairs_for_projects, split

    config = recipe_config(args.objective, args.max_length, {})
    project = Project.objects.filter(name=PROJECTS[args.objective]).first()
    if project is None:
        sys.exit(f"No project {PROJECTS[args.objective]!r}: run `scripts/reward-models import` first.")
    pairs, _ = pairs_for_projects([project], objective=args.objective, min_judgments=config.min_judgments)
    train_split, heldout = split(pairs, config.heldout_fraction)
    rng = random.Random(0)
    train_pairs = rng.sample(train_split, min(args.pairs, len(train_split)))
    if args.heldout:
        heldout = rng.sample(heldout, min(args.heldout, len(heldout)))
    (folder / "train.json").write_text(json.dumps([p.to_dict() for p in train_pairs]))
    kinds = {kind: [p for p in train_split if chosen_is_longer(p) is kind] for kind in (True, False)}
    half = min(args.pairs // 2, *map(len, kinds.values()))
    balanced = [p for kind in (True, False) for p in random.Random(1).sample(kinds[kind], half)]
    (folder / "train-balanced_data.json").write_text(json.dumps([p.to_dict() for p in balanced]))
    augmented = length_augmented(train_split, args.pairs)
    (folder / "train-all_layers_augmented.json").write_text(json.dumps([p.to_dict() for p in augmented]))
    (folder / "heldout.json").write_text(json.dumps([p.to_dict() for p in heldout]))
    sources = sorted({p.source.split(":")[0] for p in heldout})
    return {"objective": args.objective, "project": PROJECTS[args.objective], "all_pairs": len(pairs),
            "train_pairs": len(train_pairs), "heldout_pairs": len(heldout), "heldout_sources": sources,
            "max_length": args.max_length}


def length_augmented(train_split: list, size: int, seed: int = 2) -> list:
    """At most `size` pairs, as many chosen-longer as chosen-shorter: real pairs, plus augmented
    ones where the response written for the prompt beats one written for another prompt (RRM,
    Liu et al. 2024: an off-prompt response loses whatever its length or style), the off-prompt one
    longer where the real pairs favour the longer (shorter where they favour the shorter). As many
    real pairs as leave room for the augmented ones that balance them."""
    from rewardmodel.data import TrainingPair, chosen_is_longer

    rng = random.Random(seed)
    order = rng.sample(train_split, len(train_split))
    surplus = 0  # chosen-longer minus chosen-shorter among the first k real pairs
    for k, pair in enumerate(order, 1):
        surplus += {True: 1, False: -1, None: 0}[chosen_is_longer(pair)]
        if k + abs(surplus) > size:
            k -= 1
            break
    real = order[:k]
    surplus = sum({True: 1, False: -1, None: 0}[chosen_is_longer(p)] for p in real)
    augmented = []
    while len(augmented) < abs(surplus):
        own, other = rng.sample(real, 2)
        if other.prompt_key == own.prompt_key:
            continue
        response, intruder = rng.choice([own.chosen, own.rejected]), rng.choice([other.chosen, other.rejected])
        if (len(response) - len(intruder)) * surplus < 0:
            augmented.append(TrainingPair(context=own.context, chosen=response, rejected=intruder,
                                          objective=own.objective, prompt_key=own.prompt_key, source="augmented:off-prompt"))
    return real + augmented


def worker(args):
    """One variant in its own process: train, score the held-out pairs, write a JSON row."""
    import torch

    from modelruntime.modelstore import default_model_dir
    from rewardmodel.data import TrainingPair
    from rewardmodel.evaluation import report, score_pairs
    from rewardmodel.modeling import load_for_scoring
    from rewardmodel.training import train

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    folder = Path(args.data)
    train_file = folder / f"train-{args.worker}.json"
    train_file = train_file if train_file.exists() else folder / "train.json"
    train_pairs = [TrainingPair(**p) for p in json.loads(train_file.read_text())]
    heldout = [TrainingPair(**p) for p in json.loads((folder / "heldout.json").read_text())]
    overrides = VARIANTS[args.worker]
    config = recipe_config(args.objective, args.max_length, overrides)
    base_path = default_model_dir(Path(os.environ["MARGIN_MODEL_STORE"]))
    with tempfile.TemporaryDirectory() as out:
        cpu, wall = time.process_time(), time.perf_counter()
        result = train(config, train_pairs, out, base_path=base_path)
        train_cpu, train_wall = time.process_time() - cpu, time.perf_counter() - wall
        model, tokenizer = load_for_scoring(result.checkpoint)
        cpu = time.process_time()
        scores = score_pairs(model, tokenizer, heldout, config.max_length, truncation_side=config.truncation_side)
        score_cpu = time.process_time() - cpu
    summary = report(heldout, scores)
    correct = sum(c > r for c, r in scores)
    low, high = wilson_interval(correct, len(heldout))
    length = summary["length"]
    row = {
        "variant": args.worker, "overrides": overrides, "train_pairs": len(train_pairs),
        "heldout_pairs": len(heldout), "accuracy": round(correct / len(heldout), 4),
        "ci95": [round(low, 4), round(high, 4)],
        "chosen_longer": length["chosen_longer"], "chosen_shorter": length["chosen_shorter"],
        "balanced_accuracy": round((length["chosen_longer"]["accuracy"] + length["chosen_shorter"]["accuracy"]) / 2, 4),
        "model_agrees_longer": length["model_agrees_longer"], "humans_agree_longer": length["humans_agree_longer"],
        "longer_wins": length["longer_wins"], "bias": length["bias"],
        "per_source": {k: v["accuracy"] for k, v in summary["per_source"].items()},
        "final_train_loss": result.metrics.get("loss/rm"), "steps": result.steps,
        "length_head_weight": result.metrics.get("length_head_weight"),
        "train_cpu_seconds": round(train_cpu, 1), "train_wall_seconds": round(train_wall, 1),
        "score_cpu_seconds": round(score_cpu, 1), "threads": args.threads,
        # per held-out pair, 1 where the model ranks it right: variants compared pair by pair
        "correct": "".join("1" if c > r else "0" for c, r in scores),
        # per held-out pair, chosen minus rejected score: ensembles of variants computed afterwards
        "margins": [round(c - r, 4) for c, r in scores],
    }
    Path(args.out).write_text(json.dumps(row))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objective", choices=sorted(PROJECTS), default="helpfulness")
    parser.add_argument("--pairs", type=int, default=320, help="training pairs per variant (seeded sample)")
    parser.add_argument("--heldout", type=int, default=0, help="score a seeded sample of this many held-out pairs (0: all)")
    parser.add_argument("--max-length", type=int, default=192, help="tokens per side (the recipe: 384 / 512)")
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="run only these variants")
    parser.add_argument("--jobs", type=int, default=2, help="variants run at once, each its own process")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per variant")
    parser.add_argument("--combine", action="store_true", help="no training: combine the stored margins of this run with length")
    parser.add_argument("--worker", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.combine:
        return combine(args)

    names = args.only or list(VARIANTS)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs = previous.get("runs", {})
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        data = data_write(args, folder)
        print(json.dumps(data), flush=True)
        key = f"{args.objective}-{data['train_pairs']}pairs-{args.max_length}tok"
        rows = runs.get(key, {}).get("variants", {})
        pending, running = list(names), []
        while pending or running:
            while pending and len(running) < args.jobs:
                name = pending.pop(0)
                out = folder / f"{name}.json"
                command = [sys.executable, __file__, "--worker", name, "--data", str(folder), "--out", str(out),
                           "--objective", args.objective, "--max-length", str(args.max_length),
                           "--threads", str(args.threads)]
                print(f"training {name} ...", flush=True)
                running.append((name, out, subprocess.Popen(command)))
            time.sleep(2)
            for name, out, process in list(running):
                if process.poll() is None:
                    continue
                running.remove((name, out, process))
                if process.returncode or not out.exists():
                    print(f"{name} failed (exit {process.returncode})", flush=True)
                    continue
                rows[name] = json.loads(out.read_text())
                print(json.dumps(rows[name]), flush=True)
                # another invocation may have written rows of its own meanwhile: keep them
                latest = json.loads(RESULTS.read_text()).get("runs", {}) if RESULTS.exists() else {}
                commands = [*latest.get(key, {}).get("commands", []), "bench/rm_length.py " + " ".join(sys.argv[1:])]
                runs = {**latest, key: {**data, "commands": sorted(set(commands)),
                                        "variants": {**latest.get(key, {}).get("variants", {}), **rows}}}
                rows = runs[key]["variants"]
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.write_text(json.dumps({
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs, cpu",
                    "runs": runs,
                }, indent=2))
    table(rows, data)


def combine(args):
    """How far the model's score and the length difference go together: the best direction in the
    plane (model margin, log length ratio), chosen on four fifths of the held-out pairs and scored on
    the fifth left out (5-fold), against the model alone and "the longer one wins". If even this
    stays near the length baseline, the model's signal beyond length is small. With two or more
    variants of one run, also their ensemble (the sum of each variant's margins, each divided by its
root mean square so that no variant dominates)."""
    import math

    with tempfile.TemporaryDirectory() as folder:
        data = data_write(args, Path(folder))
        heldout = json.loads((Path(folder) / "heldout.json").read_text())
    key = f"{args.objective}-{data['train_pairs']}pairs-{args.max_length}tok"
    rows = {name: row for name, row in json.loads(RESULTS.read_text())["runs"][key]["variants"].items()
            if "margins" in row}
    lengths = [math.log(len(p["chosen"]) + 1) - math.log(len(p["rejected"]) + 1) for p in heldout]
    if len(rows) > 1:
        spread = {name: (sum(m * m for m in row["margins"]) / len(row["margins"])) ** 0.5 for name, row in rows.items()}
        rows["ensemble of " + " + ".join(rows)] = {"margins": [
            sum(row["margins"][i] / spread[name] for name, row in rows.items()) for i in range(len(heldout))]}
    angles = [2 * math.pi * k / 720 for k in range(720)]
    folds = [i % 5 for i in range(len(heldout))]
    random.Random(0).shuffle(folds)
    longer_wins = sum(1.0 if x > 0 else 0.5 if x == 0 else 0.0 for x in lengths) / len(heldout)  # a tie is a coin flip
    print(f"{key}: {len(heldout)} held-out pairs; longer wins {longer_wins:.3f}")
    for name, row in rows.items():
        points = list(zip(row["margins"], lengths))

        def right(angle, i):
            return math.cos(angle) * points[i][0] + math.sin(angle) * points[i][1] > 0

        correct = 0
        sides_longer = unequal = 0
        for fold in range(5):
            train = [i for i in range(len(points)) if folds[i] != fold]
            best = max(angles, key=lambda a: sum(right(a, i) for i in train))
            for i in (i for i in range(len(points)) if folds[i] == fold):
                correct += right(best, i)
                if points[i][1]:
                    unequal += 1
                    sides_longer += right(best, i) == (points[i][1] > 0)
        alone = sum(m > 0 for m in row["margins"]) / len(points)
        print(f"  {name}: model alone {alone:.3f}; with length (5-fold) {correct / len(points):.3f}, "
              f"siding with the longer on {sides_longer / max(unequal, 1):.3f} of unequal pairs")


def table(rows: dict, data: dict):
    print(f"\n{data['objective']}: {data['train_pairs']} training pairs, {data['heldout_pairs']} held-out "
          f"({', '.join(data['heldout_sources'])}), {data['max_length']} tokens per side")
    print(f"{'variant':33} {'acc':>6} {'95% CI':>13} {'longer':>7} {'shorter':>8} {'balanced':>9} "
          f"{'agrees longer':>14} {'train CPU s':>12} {'vs recipe':>10}")
    recipe = rows.get("recipe", {}).get("correct", "")
    for row in rows.values():
        # pairs only this variant gets right / only the recipe gets right (same held-out pairs)
        gained = sum(a == "1" and b == "0" for a, b in zip(row["correct"], recipe))
        lost = sum(a == "0" and b == "1" for a, b in zip(row["correct"], recipe))
        print(f"{row['variant']:33} {row['accuracy']:6.3f} {row['ci95'][0]:6.3f}-{row['ci95'][1]:.3f} "
              f"{row['chosen_longer']['accuracy']:7.3f} {row['chosen_shorter']['accuracy']:8.3f} "
              f"{row['balanced_accuracy']:9.3f} {row['model_agrees_longer']:6.3f} / {row['humans_agree_longer']:.3f} "
              f"{row['train_cpu_seconds']:12.0f} {f'+{gained} -{lost}' if recipe else '':>10}")
    if rows:
        any_row = next(iter(rows.values()))
        print(f"longer-wins baseline {any_row['longer_wins']:.3f}; 'agrees longer': model / human labels, "
              f"on pairs of unequal length")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
