"""Our DPO (rlhf/dpo.py) against TRL's DPOTrainer: same model, data, hyperparameters, sequence
length and number of steps, in one run.

    .venv/bin/python bench/dpo.py                          # 64 HH-RLHF harmless pairs, 64 held out
    .venv/bin/python bench/dpo.py --pairs 16 --heldout 16  # a quick look

Both sides fully fine-tune SmolLM2-135M-Instruct (the default model) with the sigmoid DPO loss,
beta 0.1, AdamW with TRL's defaults (betas 0.9 / 0.999, eps 1e-8, no weight decay), a constant
learning rate, clipping 1.0, batch --batch-size pairs, one epoch. Pairs longer than --max-length
tokens are left out for both. TRL runs as it comes (gradient checkpointing on, a reference
model copy run on every step) and without checkpointing; ours computes the reference log-probs
once before the first step and runs each pair as one packed row, its prompt once
(modelruntime/packing.py). Held-out preference accuracy is measured the same way for every
side (rlhf/dpo.py's implicit reward, chosen above rejected, on our tokenisation; a tie counts
half). Each side runs in its own process, so peak memory is its own. Prints a table and writes
bench/results/dpo.json.
"""

from __future__ import annotations

import argparse
import json
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
RESULTS = REPO / "bench" / "results" / "dpo.json"
SIDES = ("trl", "trl-no-checkpointing", "ours")


def prepare(args, workdir: Path) -> Path:
    """HH-RLHF harmless pairs (response A is the chosen one) that fit --max-length on both sides."""
    from transformers import AutoTokenizer

    from dataio.formats import file_records
    from modelruntime.modelstore import default_model_dir
    from rlhf.sft import sft_example

    base = default_model_dir(REPO / "var" / "models")
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    rows = []
    for record in file_records(HH_FILE, "hh"):
        chosen, rejected = record.responses[0]["text"], record.responses[1]["text"]
        lengths = [len(sft_example(tokenizer, record.context, text, 10**9)[0]) for text in (chosen, rejected)]
        if max(lengths) <= args.max_length - 8 and chosen.strip() != rejected.strip():  # room for TRL's own ids
            rows.append({"context": record.context, "chosen": chosen, "rejected": rejected})
        if len(rows) == args.pairs + args.heldout:
            break
    data = {"base": str(base), "train": rows[: args.pairs], "heldout": rows[args.pairs :]}
    path = workdir / "data.json"
    path.write_text(json.dumps(data))
    return path


def dpo_config(args):
    from rlhf.config import DPOConfig

    return DPOConfig(beta=0.1, learning_rate=args.learning_rate, warmup_steps=0, min_lr_ratio=1.0, epochs=1.0,
                     batch_size=args.batch_size, micro_batch_size=args.batch_size, max_length=args.max_length,
                     adam_beta1=0.9, adam_beta2=0.999, adam_eps=1e-8, weight_decay=0.0, max_grad_norm=1.0,
                     checkpoint_every=10**6)


def pairs_of(rows):
    from rlhf.dpo import PreferencePair

    return [PreferencePair(r["context"], r["chosen"], r["rejected"]) for r in rows]


def run_ours(args, data):
    from modelruntime.modelstore import load_policy
    from rlhf.dpo import dpo_train

    torch.manual_seed(0)
    model, tokenizer = load_policy(data["base"])
    started = time.perf_counter()
    model, result = dpo_train(dpo_config(args), model, tokenizer, pairs_of(data["train"]))
    return time.perf_counter() - started, result.steps, model, tokenizer


def run_trl(args, data):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(data["base"], local_files_only=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(data["base"], local_files_only=True)
    config = DPOConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=args.batch_size, num_train_epochs=1,
        learning_rate=args.learning_rate, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=1.0, beta=0.1, max_length=args.max_length, report_to="none", save_strategy="no",
        logging_steps=10, disable_tqdm=True, seed=0, use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(), dataloader_num_workers=0,
        gradient_checkpointing=args.worker == "trl",  # TRL's default; the other side measures TRL without it
    )
    rows = [{"prompt": r["context"], "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in data["train"]]
    trainer = DPOTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    return seconds, trainer.state.global_step, trainer.model.eval(), tokenizer


def heldout_accuracy(model, tokenizer, data, args) -> float:
    """The implicit reward beta * (log pi - log ref) on held-out pairs, chosen above rejected."""
    from modelruntime.modelstore import load_policy
    from rlhf.dpo import implicit_reward_accuracy, pair_examples, pairs_logprobs

    examples = pair_examples(tokenizer, pairs_of(data["heldout"]), args.max_length)
    policy = pairs_logprobs(model.eval(), examples, tokenizer.pad_token_id, args.batch_size)
    reference_model, _ = load_policy(data["base"], model.device)
    reference = pairs_logprobs(reference_model, examples, tokenizer.pad_token_id, args.batch_size)
    return implicit_reward_accuracy(policy, reference, 0.1)["dpo/accuracy"]


def worker(args):
    data = json.loads(Path(args.data).read_text())
    run = run_ours if args.worker == "ours" else run_trl
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    seconds, steps, model, tokenizer = run(args, data)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the evaluation loads a reference
    peak_cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    accuracy = heldout_accuracy(model, tokenizer, data, args)
    result = {
        "implementation": args.worker,
        "train_seconds": round(seconds, 2),
        "steps": steps,
        "pairs": len(data["train"]),
        "pairs_per_second": round(len(data["train"]) / seconds, 3),
        "peak_rss_mib": round(peak_rss),
        "peak_cuda_mib": round(peak_cuda) if peak_cuda is not None else None,
        "heldout_pairs": len(data["heldout"]),
        "heldout_accuracy": round(accuracy, 4),
    }
    Path(args.out).write_text(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=64, help="training pairs (one epoch)")
    parser.add_argument("--heldout", type=int, default=64, help="held-out pairs for accuracy")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=5e-6)
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated subset of " + ", ".join(SIDES))
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON report goes")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    sides = [s for s in args.sides.split(",") if s]
    load_before = os.getloadavg()[0]  # 2 shared cores: other work on the machine moves pairs/s a lot
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = prepare(args, tmp)
        results = {}
        for side in sides:
            out = tmp / f"{side}.json"
            subprocess.run(
                [sys.executable, __file__, "--worker", side, "--data", str(data), "--out", str(out),
                 "--pairs", str(args.pairs), "--batch-size", str(args.batch_size),
                 "--max-length", str(args.max_length), "--learning-rate", str(args.learning_rate)],
                check=True,
            )
            results[side] = json.loads(out.read_text())
    report = {
        "command": "bench/dpo.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
                   + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"),
        "model": "SmolLM2-135M-Instruct (full fine-tune)",
        "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "settings": {"beta": 0.1, "learning_rate": args.learning_rate, "batch_size": args.batch_size,
                     "max_length": args.max_length, "epochs": 1, "loss": "sigmoid"},
        "results": list(results.values()),
    }
    if "ours" in results:
        for side in ("trl", "trl-no-checkpointing"):
            if side in results:
                report[f"throughput_ratio_vs_{side}"] = round(
                    results["ours"]["pairs_per_second"] / results[side]["pairs_per_second"], 2)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'side':<22}{'pairs/s':>9}{'steps':>7}{'peak RSS MiB':>14}{'held-out acc':>14}")
    for row in report["results"]:
        print(f"{row['implementation']:<22}{row['pairs_per_second']:>9}{row['steps']:>7}{row['peak_rss_mib']:>14}"
              f"{row['heldout_accuracy']:>14}")
    for key, value in report.items():
        if key.startswith("throughput_ratio"):
            print(f"{key}: {value}x")


if __name__ == "__main__":
    main()
