"""Our reward-model training against TRL's RewardTrainer: same model, data, hyperparameters,
sequence length and number of steps, in one run.

    .venv/bin/python bench/reward_model.py                 # 512 HH-RLHF harmless pairs, 256 held out
    .venv/bin/python bench/reward_model.py --pairs 64 --heldout 32   # a quick look

Both sides get the same token ids (the chat template rendered once, here) with a `margin`
column, full fine-tuning of SmolLM2-135M-Instruct with the paper's optimiser settings (AdamW,
lr 1e-5, 3 % warm-up but at least 5 steps, cosine to 10 %, weight decay 0.1, clip 1.0), one
epoch. Pairs longer than --max-length are left out for both, since TRL drops them. TRL runs twice:
as it comes (gradient checkpointing on: less memory, a second forward) and without checkpointing.
Each side runs in its own process, so peak memory is its own. Prints a table and writes
bench/results/reward_model.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

HH_FILE = REPO.parent / "shared" / "data" / "hh-rlhf-harmless" / "harmless-base.dev.jsonl.gz"
RESULTS = REPO / "bench" / "results" / "reward_model.json"
# TRL as it comes (gradient checkpointing on), TRL without it, ours; each in its own process.
SIDES = ("trl", "trl-no-checkpointing", "ours")


def prepare(args, workdir: Path) -> Path:
    """Token ids of chosen / rejected for train and held-out pairs, identical for both sides."""
    from transformers import AutoTokenizer

    from dataio.formats import file_records
    from modelruntime.modelstore import default_model_dir
    from rewardmodel.modeling import encode

    base = default_model_dir(REPO / "var" / "models")
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    rows = []
    for record in file_records(HH_FILE, "hh"):  # response A is the chosen one
        chosen = encode(tokenizer, [*record.context, {"role": "assistant", "content": record.responses[0]["text"]}], 10**9)
        rejected = encode(tokenizer, [*record.context, {"role": "assistant", "content": record.responses[1]["text"]}], 10**9)
        if max(len(chosen), len(rejected)) <= args.max_length:
            rows.append({"chosen_ids": chosen, "rejected_ids": rejected, "margin": 0.0})
        if len(rows) == args.pairs + args.heldout:
            break
    data = {"base": str(base), "train": rows[: args.pairs], "heldout": rows[args.pairs :]}
    path = workdir / "data.json"
    path.write_text(json.dumps(data))
    return path


def optimiser_settings(args):
    steps = args.pairs // args.batch_size
    return {"steps": steps, "warmup": max(5, math.ceil(0.03 * steps))}  # as rewardmodel.training


def run_ours(args, data, out_dir):
    from modelruntime.packing import pack
    from rewardmodel import training
    from rewardmodel.config import RewardModelConfig
    from rewardmodel.data import TrainingPair
    from rewardmodel.modeling import load_for_scoring

    config = RewardModelConfig(
        learning_rate=1e-5, batch_size=args.batch_size, gradient_accumulation_steps=1,
        max_length=args.max_length, checkpoint_every=10**6, epochs=1.0,
    )
    # The ids are ready: hand them to the trainer's encoder unchanged.
    ids = {}

    def encode_pairs(tokenizer, pairs, max_length):
        return [ids[id(p)] for p in pairs]

    pairs = []
    for row in data["train"]:
        pair = TrainingPair(context=[], chosen="", rejected="", margin=row["margin"])
        ids[id(pair)] = pack(row["chosen_ids"], row["rejected_ids"], args.max_length)
        pairs.append(pair)
    training.encode_pairs = encode_pairs
    result = training.train(config, pairs, out_dir, base_path=data["base"])
    model, _ = load_for_scoring(result.checkpoint)
    return result.metrics["train_seconds"], result.steps, model, "ours"


def run_trl(args, data, out_dir):
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    settings = optimiser_settings(args)
    tokenizer = AutoTokenizer.from_pretrained(data["base"], local_files_only=True)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(data["base"], num_labels=1, local_files_only=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    config = RewardConfig(
        output_dir=str(out_dir), per_device_train_batch_size=args.batch_size, num_train_epochs=1,
        learning_rate=1e-5, lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": 0.1},
        warmup_steps=settings["warmup"], weight_decay=0.1, max_grad_norm=1.0, max_length=args.max_length,
        report_to="none", save_strategy="no", logging_steps=10, disable_tqdm=True, seed=0,
        use_cpu=not torch.cuda.is_available(), bf16=torch.cuda.is_available(), dataloader_num_workers=0,
        # TRL's default trades speed for memory (a second forward in the backward); the
        # "trl-no-checkpointing" side measures TRL without it.
        gradient_checkpointing=args.worker == "trl",
    )
    trainer = RewardTrainer(model=model, args=config, train_dataset=Dataset.from_list(data["train"]),
                            processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    return seconds, trainer.state.global_step, trainer.model.eval(), "trl"


def heldout_accuracy(model, rows, kind, pad_id):
    """Each side scored the way it trains: ours at the last real token, TRL by its own forward."""
    from rewardmodel.modeling import pad_batch, scores

    device = next(model.parameters()).device
    right = 0
    with torch.inference_mode():
        for row in rows:
            pair = [row["chosen_ids"], row["rejected_ids"]]
            if kind == "ours":
                ids, mask = pad_batch(pair, pad_id, device)
                chosen, rejected = scores(model, ids, mask).tolist()
            else:
                chosen, rejected = (
                    model(input_ids=torch.tensor([s], device=device)).logits[0, 0].item() for s in pair
                )
            right += chosen > rejected
    return right / len(rows)


def worker(args):
    data = json.loads(Path(args.data).read_text())
    run = run_ours if args.worker == "ours" else run_trl
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as out_dir:
        seconds, steps, model, kind = run(args, data, Path(out_dir))
        pad_id = model.config.pad_token_id
        accuracy = heldout_accuracy(model, data["heldout"], kind, pad_id)
    result = {
        "implementation": args.worker,
        "train_seconds": round(seconds, 2),
        "steps": steps,
        "pairs": len(data["train"]),
        "pairs_per_second": round(len(data["train"]) / seconds, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None,
        "heldout_pairs": len(data["heldout"]),
        "heldout_accuracy": round(accuracy, 4),
    }
    Path(args.out).write_text(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=512, help="training pairs (one epoch)")
    parser.add_argument("--heldout", type=int, default=256, help="held-out pairs for accuracy")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = prepare(args, tmp)
        results = []
        for side in SIDES:
            out = tmp / f"{side}.json"
            subprocess.run(
                [sys.executable, __file__, "--worker", side, "--data", str(data), "--out", str(out),
                 "--pairs", str(args.pairs), "--batch-size", str(args.batch_size),
                 "--max-length", str(args.max_length)],
                check=True,
            )
            results.append(json.loads(out.read_text()))
    trl, trl_plain, ours = results
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
                   + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"),
        "model": "SmolLM2-135M-Instruct (full fine-tune)",
        "data": f"HH-RLHF harmless dev, pairs up to {args.max_length} tokens",
        "batch_size": args.batch_size,
        "results": results,
        "speedup": round(ours["pairs_per_second"] / trl["pairs_per_second"], 2),
        "speedup_vs_trl_no_checkpointing": round(ours["pairs_per_second"] / trl_plain["pairs_per_second"], 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"\n{report['machine']}; {report['model']}; {report['data']}")
    print(f"{'':21} {'pairs/s':>9} {'steps':>6} {'train s':>8} {'peak RSS MiB':>13} {'held-out acc':>13}")
    for row in results:
        print(f"{row['implementation']:21} {row['pairs_per_second']:>9.3f} {row['steps']:>6} "
              f"{row['train_seconds']:>8.1f} {row['peak_rss_mib']:>13} {row['heldout_accuracy']:>13.3f}")
    print(f"speed-up (ours / TRL defaults): {report['speedup']}x; ours / TRL without gradient "
          f"checkpointing: {report['speedup_vs_trl_no_checkpointing']}x   -> {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
