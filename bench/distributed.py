"""Reward-model training as one process and as 2 torchrun processes (FSDP2), same model, data and
global batches, in one run: pairs per second, the launch overhead, and whether the models agree.

    .venv/bin/python bench/distributed.py                       # 48 HH-RLHF harmless pairs, SmolLM2-135M
    .venv/bin/python bench/distributed.py --pairs 16 --tiny     # the 2-layer test model: a quick look

Three sides, each started fresh so nothing is warm:
  in-process   `train()` in one Python process: what a job with processes=1 runs in the worker
  torchrun-1   the same through modelruntime/launch.py with 1 rank (FSDP2 over one process)
  torchrun-2   2 ranks, each half of every micro-batch (gloo on CPU, NCCL on GPUs)
`pairs/s` counts the training loop only (the trainer's own clock); `wall s` is what a user waits:
interpreter and model start, the launch, the loop, gathering and saving the final checkpoint.
With 2 CPU cores shared by both ranks little speed-up is expected: each rank gets one core
(torchrun sets OMP_NUM_THREADS=1) where one process uses both, and FSDP2 adds an all-gather per
layer per pass. What the run shows is that the two-process model equals the one-process one
(`max |score diff|` on held-out pairs). Prints a table; writes bench/results/distributed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

HH_FILE = REPO.parent / "shared" / "data" / "hh-rlhf-harmless" / "harmless-base.dev.jsonl.gz"
RESULTS = REPO / "bench" / "results" / "distributed.json"
SIDES = (("in-process", 0), ("torchrun-1", 1), ("torchrun-2", 2))


def pairs_load(args):
    """(train, held-out) TrainingPairs from HH-RLHF harmless whose both sides fit max_length."""
    from dataio.formats import file_records
    from rewardmodel.data import TrainingPair

    pairs = []
    for record in file_records(HH_FILE, "hh"):  # response A is the chosen one
        pair = TrainingPair(context=record.context, chosen=record.responses[0]["text"],
                            rejected=record.responses[1]["text"], margin=0.0)
        if max(len(text) for text in (pair.chosen, pair.rejected, *(m["content"] for m in pair.context))) < 600:
            pairs.append(pair)  # short in characters: a CPU run measures the machinery, not long attention
        if len(pairs) == args.pairs + args.heldout:
            break
    return pairs[: args.pairs], pairs[args.pairs :]


def base_model(args) -> Path:
    if args.tiny:
        from tests.tiny_model import build_tiny_model

        return build_tiny_model(REPO / "var" / "test-cache" / "tiny-llama")
    from modelruntime.modelstore import default_model_dir

    return default_model_dir(REPO / "var" / "models")


def config_for(args, processes):
    from rewardmodel.config import RewardModelConfig

    # The paper's optimiser (lr 1e-5, cosine, clip 1.0); checkpoints off: the loop is measured.
    return RewardModelConfig(batch_size=args.batch_size, gradient_accumulation_steps=1, max_length=args.max_length,
                             checkpoint_every=10**6, epochs=1.0, processes=max(1, processes))


def run_side(args, processes, base, train_pairs, out_dir) -> dict:
    from modelruntime.launch import distributed_run, spec_write
    from rewardmodel.training import TrainResult

    config = config_for(args, processes)
    if not processes:
        command = [sys.executable, __file__, "--worker", "--base", str(base), "--out", str(out_dir),
                   "--pairs", str(args.pairs), "--heldout", str(args.heldout), "--batch-size", str(args.batch_size),
                   "--max-length", str(args.max_length)] + (["--tiny"] if args.tiny else [])
        subprocess.run(command, check=True)
        return json.loads((out_dir / "result.json").read_text())
    workdir = out_dir / "distributed"
    entry_args = spec_write(workdir, spec={"kind": "reward_model", "config": config.to_dict(),
                                           "output_dir": str(out_dir), "base_path": str(base), "metadata": {}},
                            data=[asdict(p) for p in train_pairs])
    return TrainResult.from_dict(distributed_run(entry_args=entry_args, nproc=processes, workdir=workdir,
                                                 on_event=lambda e: None, cancel_requested=lambda: False)).to_dict()


def worker(args):
    """The in-process side, in its own interpreter like the others."""
    from rewardmodel.training import train

    train_pairs, _ = pairs_load(args)
    result = train(config_for(args, 1), train_pairs, Path(args.out), base_path=args.base)
    (Path(args.out) / "result.json").write_text(json.dumps(result.to_dict()))


def heldout_scores(checkpoint, pairs, max_length) -> torch.Tensor:
    from rewardmodel.evaluation import score_pairs
    from rewardmodel.modeling import load_for_scoring

    model, tokenizer = load_for_scoring(checkpoint)
    return torch.tensor(score_pairs(model, tokenizer, pairs, max_length))  # (pairs, 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=48, help="training pairs (one epoch)")
    parser.add_argument("--heldout", type=int, default=16, help="held-out pairs to compare the models on")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per optimizer step (the global batch)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--tiny", action="store_true", help="the 2-layer test model instead of SmolLM2-135M")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    base = base_model(args)
    train_pairs, heldout = pairs_load(args)
    load_before = os.getloadavg()[0]
    rows, scores = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, processes in SIDES:
            started = time.perf_counter()
            result = run_side(args, processes, base, train_pairs, Path(tmp) / name)
            wall = time.perf_counter() - started
            scores[name] = heldout_scores(result["checkpoint"], heldout, args.max_length)
            train_seconds = result["metrics"]["train_seconds"]
            rows.append({"side": name, "processes": max(1, processes), "steps": result["steps"],
                         "pairs_per_second": round(len(train_pairs) / train_seconds, 3),
                         "train_seconds": train_seconds, "wall_seconds": round(wall, 1),
                         "loss": result["metrics"]["loss/rm"]})
    for row in rows:
        row["max_score_diff_vs_in_process"] = float((scores[row["side"]] - scores["in-process"]).abs().max())
    one, two = rows[0], rows[2]
    report = {
        "command": "bench/distributed.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
                   + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"),
        "model": "tiny 2-layer Llama (tests/tiny_model.py)" if args.tiny else "SmolLM2-135M-Instruct (full fine-tune)",
        "data": f"HH-RLHF harmless dev: {len(train_pairs)} training, {len(heldout)} held-out pairs",
        "batch_size": args.batch_size,
        # Other work on the machine skews every number: with more runnable processes than cores,
        # 2 ranks get a larger share of the CPUs than 1 process does.
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "results": rows,
        "speedup_2_vs_1": round(two["pairs_per_second"] / one["pairs_per_second"], 2),
        "launch_overhead_seconds": round((two["wall_seconds"] - two["train_seconds"])
                                         - (one["wall_seconds"] - one["train_seconds"]), 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"\n{report['machine']}; {report['model']}; {report['data']}; global batch {args.batch_size}; "
          f"load average {report['load_average_1min'][0]} at the start, {report['load_average_1min'][1]} at the end")
    print(f"{'':12} {'procs':>5} {'pairs/s':>8} {'steps':>6} {'train s':>8} {'wall s':>7} {'max |score diff|':>17}")
    for row in rows:
        print(f"{row['side']:12} {row['processes']:>5} {row['pairs_per_second']:>8.2f} {row['steps']:>6} "
              f"{row['train_seconds']:>8.1f} {row['wall_seconds']:>7.1f} {row['max_score_diff_vs_in_process']:>17.2e}")
    print(f"2 processes / 1: {report['speedup_2_vs_1']}x pairs/s; launch, gather and save cost "
          f"{report['launch_overhead_seconds']} s more than in-process   -> {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
