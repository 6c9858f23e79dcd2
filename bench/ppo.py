"""Our PPO against TRL's GRPO trainer, and a PPO demonstration on SmolLM2-135M.

    .venv/bin/python bench/ppo.py compare   # per-iteration time, ours vs TRL GRPO, same run
    .venv/bin/python bench/ppo.py demo      # a few PPO iterations raise a toy reward, KL bounded

compare: the same policy (SmolLM2-135M-Instruct), reward model (SmolLM2 with a scalar head, see
below), prompts (first human turns of HH-RLHF harmless dev) and batch: `--rollouts` completions
per iteration, updated in `--rollouts / --minibatch` gradient steps, KL beta 0.01 to a frozen
reference on both sides, temperature 1, at most `--max-new-tokens` tokens. TRL 1.16 ships no PPO
any more; its GRPO with num_generations=2 draws the same number of completions per iteration
(half the prompts, two answers each). One iteration = one generation round plus its updates; the
first iteration of each side is a warm-up and is left out of the mean. The reward model's head
is untrained (seeded): scoring costs the same as with a trained one, which is all a timing needs.
Each side runs in its own process. A third side runs TRL in a process with our malloc setting
(modelruntime/allocator.py), to show how much of the gap that setting is. Prompts recur: with 16
prompts and 8 completions per iteration each comes back every second iteration, and ours then
reads it from the frozen models' prompt KV cache (modelruntime/prefixcache.py); `--prompts 64` with 4
timed iterations has no prompt twice, which times ours without that help.

demo: PPO (our code, `ppo_train`) on SmolLM2; mean reward on the training prompts is measured
before and after with fixed seeds. No trained reward model ships with the repo; the reward is
the README's trained RMs (`--reward trained`, Llama 2's combined reward; HH prompts are
red-teaming prompts, so the safety RM scores them), or
the untrained-head reward model above (`--reward rm`, default: its untrained head makes the score an
arbitrary but fixed, dense function of the dialogue, which is what shows whether PPO climbs a
reward) or a toy brevity reward: `--reward characters` (the response's length in characters / (4 x max_new_tokens): longer
words, no early stop; dense and decided by the response alone) or `--reward brevity` (minus the
length in tokens / max_new_tokens; SmolLM2's answers to these prompts rarely end within 32 tokens,
so it gives PPO almost no signal). bench/RLHF.md has the runs.

Both print a table and write JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench.sampling import hh_prompts  # noqa: E402
from modelruntime.modelstore import (  # noqa: E402
    checkpoint_is_complete,
    default_model_dir,
    load_policy,
    save_checkpoint,
)

STORE = Path(os.environ.get("MARGIN_MODEL_STORE", REPO / "var" / "models"))


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"


def bench_reward_model(base: Path) -> Path:
    """SmolLM2 with a seeded, untrained scalar head, saved once as a reward-model checkpoint."""
    from rewardmodel.modeling import load_for_training

    dest = STORE / "bench" / "smollm2-random-head-rm"
    if not checkpoint_is_complete(dest):
        model, tokenizer = load_for_training(base, seed=0)
        save_checkpoint(model, tokenizer, dest, {"name": "bench-rm", "kind": "reward_model"})
    return dest


def ours(policy_path, rm_path, prompts, args) -> dict:
    from rewardmodel.scoring import load_scorer
    from rlhf.config import PPOConfig
    from rlhf.ppo import PPOTrainer, prompts_for_iteration
    from rlhf.rewards import combined_reward_fn

    config = PPOConfig(batch_size=args.rollouts, minibatch_size=args.minibatch, learning_rate=1e-5,
                       max_new_tokens=args.max_new_tokens, kl_beta=0.01, generation_batch_size=args.rollouts)
    policy, tokenizer = load_policy(policy_path, "cpu")
    trainer = PPOTrainer(config, policy, tokenizer, combined_reward_fn(load_scorer(rm_path, "cpu")))
    seconds, lengths = [], []
    for iteration in range(args.iterations + 1):
        start = time.perf_counter()
        record = trainer.iteration(prompts_for_iteration(prompts, iteration, args.rollouts, 0), seed=iteration)
        seconds.append(time.perf_counter() - start)
        lengths.append(record["ppo/response_length"])
        print(f"  ours iteration {iteration}: {seconds[-1]:.1f} s, {record['ppo/response_length']:.1f} tokens")
    return {"seconds": seconds, "response_length": lengths}


def trl_grpo(policy_path, rm_path, prompts, args) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    stamps, lengths = [], []

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            stamps.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

        def on_log(self, args_, state, control, logs=None, **k):
            if logs and "completions/mean_length" in logs:
                lengths.append(logs["completions/mean_length"])

    steps_per_iteration = args.rollouts // args.minibatch
    tokenizer = AutoTokenizer.from_pretrained(policy_path, local_files_only=True)
    tokenizer.padding_side = "left"
    rm_tokenizer = AutoTokenizer.from_pretrained(rm_path, local_files_only=True)
    reward_model = AutoModelForSequenceClassification.from_pretrained(rm_path, num_labels=1, local_files_only=True)
    policy = AutoModelForCausalLM.from_pretrained(policy_path, local_files_only=True, dtype=torch.float32)
    dataset = Dataset.from_list([{"prompt": p} for p in prompts])
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out, use_cpu=True, bf16=False, report_to="none", save_strategy="no", logging_steps=1,
            learning_rate=1e-5, beta=0.01, temperature=1.0, top_p=1.0, max_completion_length=args.max_new_tokens,
            num_generations=2, per_device_train_batch_size=args.minibatch, gradient_accumulation_steps=1,
            steps_per_generation=steps_per_iteration, num_iterations=1,
            max_steps=steps_per_iteration * (args.iterations + 1), dataloader_num_workers=0, seed=0,
        )
        trainer = GRPOTrainer(model=policy, reward_funcs=reward_model, args=config, train_dataset=dataset,
                              processing_class=tokenizer, reward_processing_classes=rm_tokenizer, callbacks=[Clock()])
        trainer.train()
    seconds = [stamps[(i + 1) * steps_per_iteration] - stamps[i * steps_per_iteration]
               for i in range(args.iterations + 1)]
    for i, s in enumerate(seconds):
        print(f"  TRL GRPO iteration {i}: {s:.1f} s")
    return {"seconds": seconds, "response_length": lengths}


SIDES = {
    "ours (rlhf.ppo)": "ours",
    "TRL 1.16 GRPOTrainer": "trl",
    # TRL in a process with our allocator setting (modelruntime/allocator.py): how much of the gap it is.
    "TRL GRPO + our malloc setting": "trl-kept-memory",
}


def compare(args):
    policy_path = default_model_dir(STORE)
    bench_reward_model(policy_path)  # built once, before the timed sides
    # Each side in a fresh process: nothing one side loads, warms up or sets up (our trainer sets
    # glibc's malloc options for the process) reaches the other.
    results = {}
    for name, side in SIDES.items():
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [sys.executable, __file__, "side", "--side", side, "--side-output", out.name,
                       "--prompts", str(args.prompts), "--rollouts", str(args.rollouts),
                       "--minibatch", str(args.minibatch), "--max-new-tokens", str(args.max_new_tokens),
                       "--iterations", str(args.iterations)]
            subprocess.run(command, check=True)
            results[name] = json.loads(Path(out.name).read_text())
    print(f"\n{'trainer':30} {'s/iteration':>12} {'tokens/response':>16} {'vs ours':>8}")
    summary = {}
    ours_s = statistics.fmean(results["ours (rlhf.ppo)"]["seconds"][1:])
    for name, r in results.items():
        mean = statistics.fmean(r["seconds"][1:])  # the first iteration is a warm-up
        length = statistics.fmean(r["response_length"]) if r["response_length"] else float("nan")
        summary[name] = {"seconds_per_iteration": mean, "mean_response_length": length, **r}
        print(f"{name:30} {mean:>12.1f} {length:>16.1f} {mean / ours_s:>7.2f}x")
    trl_s = summary["TRL 1.16 GRPOTrainer"]["seconds_per_iteration"]
    print(f"speed-up against TRL as it comes: {trl_s / ours_s:.2f}x (goal >= 1.5x)")
    name = "ppo-vs-trl.json" if args.prompts == 16 else f"ppo-vs-trl-{args.prompts}prompts.json"
    write(name, {"setting": vars(args), "machine": machine(), "results": summary, "speedup": trl_s / ours_s})


def side(args):
    """One side of `compare`, in its own process; writes its timings to --side-output."""
    policy_path = default_model_dir(STORE)
    rm_path = bench_reward_model(policy_path)
    prompts = hh_prompts(args.prompts)
    torch.manual_seed(0)
    if args.side == "ours":
        result = ours(policy_path, rm_path, prompts, args)
    else:
        if args.side == "trl-kept-memory":
            from modelruntime.allocator import keep_freed_memory

            keep_freed_memory()
        result = trl_grpo(policy_path, rm_path, prompts, args)
    Path(args.side_output).write_text(json.dumps(result))


def demo(args):
    from rlhf.config import PPOConfig
    from rlhf.generation import SamplingConfig, sample_responses
    from rlhf.ppo import ppo_train

    policy_path = default_model_dir(STORE)
    prompts = hh_prompts(args.prompts)
    max_new_tokens = args.max_new_tokens

    def brevity(conversations):
        # The reward sees text only; re-tokenizing gives the response's length in tokens.
        return [-len(tokenizer(c[-1]["content"], add_special_tokens=False)["input_ids"]) / max_new_tokens
                for c in conversations]

    def characters(conversations):
        return [len(c[-1]["content"]) / (4 * max_new_tokens) for c in conversations]

    if args.reward == "rm":
        from rewardmodel.scoring import load_scorer
        from rlhf.rewards import combined_reward_fn

        reward_fn = combined_reward_fn(load_scorer(bench_reward_model(policy_path), "cpu"))
    elif args.reward == "trained":
        from rewardmodel.scoring import load_scorer
        from rlhf.rewards import combined_reward_fn

        # The README's RMs (scripts/reward-models). HH harmless prompts are red-teaming prompts,
        # so the Llama 2 gate takes the safety RM's score for every one of them.
        trained = [STORE / "reward_models" / f"{name}-smollm2" / "model" for name in ("helpfulness", "safety")]
        if not all(path.is_dir() for path in trained):
            sys.exit("--reward trained needs the RMs of `scripts/reward-models` in var/models/reward_models/")
        reward_fn = combined_reward_fn(load_scorer(trained[0], "cpu"), load_scorer(trained[1], "cpu"),
                                       is_safety=lambda conversation: True)
    else:
        reward_fn = characters if args.reward == "characters" else brevity

    def prompt_rewards(path):
        """Mean reward of each prompt's --eval-samples responses: prompts are the paired unit,
        since a reward model's score depends on the prompt far more than on the answer."""
        model, _ = load_policy(path, "cpu")
        sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=1234)
        samples = sample_responses(model, tokenizer, prompts, sampling, k=args.eval_samples)
        texts = [p + [{"role": "assistant", "content": s.text}] for p, per in zip(prompts, samples) for s in per]
        rewards = reward_fn(texts)
        k = args.eval_samples
        return [statistics.fmean(rewards[i * k : (i + 1) * k]) for i in range(len(prompts))]

    _, tokenizer = load_policy(policy_path, "cpu")
    before_per_prompt = prompt_rewards(policy_path)
    before = statistics.fmean(before_per_prompt)
    print(f"mean reward on the {len(prompts)} training prompts before PPO: {before:.3f}")
    config = PPOConfig.from_dict({"preset": "cpu", "iterations": args.iterations, "batch_size": args.rollouts,
                                  "minibatch_size": args.minibatch, "max_new_tokens": max_new_tokens,
                                  "checkpoint_every": args.iterations, "learning_rate": args.learning_rate,
                                  "kl_beta": args.kl_beta})
    out = Path(tempfile.mkdtemp(prefix="ppo-demo-"))
    start = time.perf_counter()
    result = ppo_train(config, policy_path, prompts, reward_fn, out, device="cpu",
                       on_progress=lambda done, total, r: print(
                           f"  iteration {done}/{total}: reward {r['reward/score']:.3f} kl {r['kl/reference_k1']:.3f} "
                           f"length {r['ppo/response_length']:.1f} entropy {r['ppo/entropy']:.2f}"))
    seconds = time.perf_counter() - start
    after_per_prompt = prompt_rewards(result.checkpoint)
    after = statistics.fmean(after_per_prompt)
    gains = [a - b for a, b in zip(after_per_prompt, before_per_prompt)]
    gain_se = statistics.stdev(gains) / len(gains) ** 0.5 if len(gains) > 1 else float("nan")
    print(f"\n{'iteration':>9} {'reward':>8} {'kl':>8} {'value_loss':>10} {'entropy':>8} {'length':>7}")
    for r in result.iterations:
        print(f"{r['iteration']:>9} {r['reward/score']:>8.3f} {r['kl/reference_k1']:>8.3f} {r['loss/value']:>10.4f} "
              f"{r['ppo/entropy']:>8.2f} {r['ppo/response_length']:>7.1f}")
    print(f"mean reward on the training prompts: before {before:.3f}, after {after:.3f}; "
          f"gain {after - before:+.3f} +- {gain_se:.3f} (standard error over prompts), "
          f"{sum(g > 0 for g in gains)}/{len(gains)} prompts up; "
          f"max KL {max(r['kl/reference_k1'] for r in result.iterations):.3f} nats; {seconds:.0f} s of training")
    beta = "" if args.kl_beta == 0.01 else f"-kl{args.kl_beta:g}"  # the paper's beta keeps the plain name
    write(f"ppo-demo-{args.reward}{beta}.json", {"setting": vars(args), "machine": machine(), "reward": args.reward,
                            "config": config.to_dict(), "before": before, "after": after,
                            "before_per_prompt": before_per_prompt, "after_per_prompt": after_per_prompt,
                            "gain_standard_error": gain_se,
                            "iterations": result.iterations, "training_seconds": seconds})


def write(name, payload):
    path = REPO / "bench" / "results" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(f"wrote {path.relative_to(REPO)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", choices=["compare", "demo", "side"], default="compare")
    parser.add_argument("--side", choices=sorted(set(SIDES.values())), help=argparse.SUPPRESS)
    parser.add_argument("--side-output", help=argparse.SUPPRESS)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--rollouts", type=int, default=16, help="completions per iteration")
    parser.add_argument("--minibatch", type=int, default=8, help="completions per gradient step")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations (compare) / PPO iterations (demo)")
    parser.add_argument("--eval-samples", type=int, default=2, help="demo: samples per prompt for the mean reward")
    parser.add_argument("--learning-rate", type=float, default=1e-5, help="demo: PPO learning rate")
    parser.add_argument("--reward", choices=["rm", "trained", "characters", "brevity"], default="rm",
                        help="demo: the reward PPO climbs (trained: the README's safety and helpfulness RMs)")
    parser.add_argument("--kl-beta", type=float, default=0.01, help="demo: per-token KL penalty (paper: 0.01)")
    args = parser.parse_args()
    {"compare": compare, "demo": demo, "side": side}[args.mode](args)


if __name__ == "__main__":
    main()
