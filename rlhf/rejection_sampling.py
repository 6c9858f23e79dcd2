"""Rejection sampling fine-tuning (Llama 2 sec. 3.2.3): K samples per prompt from the latest
policy, scored by the reward, the best kept, the policy fine-tuned on the kept ones.

Also records what Figure 7 plots: the max and the median reward among the first k samples,
averaged over prompts, for k up to K and per temperature (Figure 8). Later iterations pool the
winners of all earlier ones (the paper's fix for forgetting after RLHF-V3). No Django here.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from modelruntime.checkpoint import DONE_MARKER, RESUME_DIR, config_check_same, folder_write_atomic, states_clear
from rlhf.backends import GenerationBackend, LocalBackend
from rlhf.config import RejectionSamplingConfig
from rlhf.generation import SamplingConfig
from rlhf.rewards import RewardFn

SAMPLES_NAME = "rejection_samples.jsonl"  # the winners, saved beside the new policy's weights


@dataclass
class Winner:
    prompt: list[dict]
    response: str
    reward: float
    source: str = ""  # the version whose samples it came from; empty: this run


@dataclass
class RejectionSamplingResult:
    checkpoint: Path
    winners: list[Winner]  # what was fine-tuned on, pooled
    reward_vs_k: list[dict] = field(default_factory=list)
    sft: dict = field(default_factory=dict)
    pooled_from: list[str] = field(default_factory=list)


def k_values(k: int) -> list[int]:
    """1, 2, 4, ... up to K, and K itself: the points of the reward-vs-K curve."""
    values, n = [], 1
    while n < k:
        values.append(n)
        n *= 2
    return values + [k]


def reward_vs_k(rewards: list[list[float]], temperature: float) -> list[dict]:
    """Figure 7: for each k, the max and the median of the first k samples' rewards, averaged over prompts."""
    k = min(len(r) for r in rewards)
    return [
        {
            "temperature": temperature,
            "k": n,
            "max": statistics.fmean(max(r[:n]) for r in rewards),
            "median": statistics.fmean(statistics.median(r[:n]) for r in rewards),
        }
        for n in k_values(k)
    ]


def best_of_k(backend: GenerationBackend, prompts, reward_fn: RewardFn, config: RejectionSamplingConfig,
              temperature: float):
    """(the best sample per prompt as Winners, all rewards per prompt). A served policy gets the
    K samples of a prompt as one request (n=K)."""
    sampling = SamplingConfig(temperature=temperature, top_p=config.top_p,
                              max_new_tokens=config.max_new_tokens, seed=config.seed)
    samples = backend.generate(prompts, sampling, k=config.k)
    conversations = [prompt + [{"role": "assistant", "content": s.text}]
                     for prompt, per_prompt in zip(prompts, samples) for s in per_prompt]
    flat = reward_fn(conversations)
    rewards = [flat[i * config.k : (i + 1) * config.k] for i in range(len(prompts))]
    winners = []
    for prompt, per_prompt, scores in zip(prompts, samples, rewards):
        best = max(range(config.k), key=lambda j: scores[j])
        winners.append(Winner(prompt, per_prompt[best].text, scores[best]))
    return winners, rewards


def pool_winners(current: list[Winner], previous: list[Winner], reward_fn: RewardFn) -> list[Winner]:
    """Per prompt, the best of this run's winner and the earlier runs' winners, all rescored by
    today's reward (earlier scores came from earlier reward models)."""
    if not previous:
        return current
    rescored = reward_fn([w.prompt + [{"role": "assistant", "content": w.response}] for w in previous])
    best: dict[str, Winner] = {}
    for winner, reward in zip(previous, rescored):
        candidate = Winner(winner.prompt, winner.response, reward, winner.source)
        key = json.dumps(winner.prompt, sort_keys=True)
        if key not in best or reward > best[key].reward:
            best[key] = candidate
    for winner in current:
        key = json.dumps(winner.prompt, sort_keys=True)
        if key not in best or winner.reward >= best[key].reward:
            best[key] = winner
    return list(best.values())


def winners_jsonl(winners: list[Winner]) -> str:
    return "".join(json.dumps({"prompt": w.prompt, "response": w.response, "reward": w.reward,
                               "source": w.source}) + "\n" for w in winners)


def winners_load(path: Path, source: str) -> list[Winner]:
    with open(path) as lines:
        return [Winner(r["prompt"], r["response"], r["reward"], r.get("source") or source)
                for r in map(json.loads, lines)]


def rejection_sample(
    config: RejectionSamplingConfig,
    policy_path: Path | str,
    prompts: list[list[dict]],
    reward_fn: RewardFn,
    out_dir: Path | str,
    previous: list[Winner] = (),
    on_progress: Callable[[int, int, dict | None, str | None], None] | None = None,
    device=None,
    metadata: dict | None = None,
    backend: GenerationBackend | None = None,
) -> RejectionSamplingResult:
    """Sample, pick, (pool), fine-tune; the new policy is written to `out_dir` with its winners.

    `backend` samples (a server serving `policy_path`'s weights); default: the in-process engine
    on the model about to be fine-tuned.

    Resumable: the kept samples and then the fine-tuning state are saved in `<out_dir>-resume`;
    a call with the same `out_dir` continues from there and ends with the same model.
    """
    from modelruntime.modelstore import load_policy, save_checkpoint
    from rlhf.sft import sft_train

    if not prompts:
        raise ValueError("rejection sampling needs at least one prompt")
    progress = on_progress or (lambda step, total, metrics=None, log_line=None: None)
    out_dir = Path(out_dir)
    resume_dir = out_dir.with_name(f"{out_dir.name}-{RESUME_DIR}")
    temperatures = [config.temperature] + [t for t in config.curve_temperatures if t != config.temperature]
    model, tokenizer = load_policy(policy_path, device)
    backend = backend or LocalBackend(model=model, tokenizer=tokenizer, batch_size=config.generation_batch_size)
    sampled = _samples_load(resume_dir, config)
    if sampled:
        curve, pooled = sampled
        progress(len(temperatures), len(temperatures) + 1, {"reward_vs_k": curve},
                 f"resuming with the {len(pooled)} kept samples of the interrupted run")
    else:
        curve, winners = [], []
        for number, temperature in enumerate(temperatures):
            progress(number, len(temperatures) + 1, None,
                     f"sampling {config.k} responses for each of {len(prompts)} prompts at temperature {temperature}")
            best, rewards = best_of_k(backend, prompts, reward_fn, config, temperature)
            curve += reward_vs_k(rewards, temperature)
            if temperature == config.temperature:
                winners = best
            progress(number + 1, len(temperatures) + 1, {"reward_vs_k": curve}, None)
        pooled = pool_winners(winners, list(previous) if config.pool_previous else [], reward_fn)
        _samples_save(resume_dir, config, curve, pooled)
    progress(len(temperatures), len(temperatures) + 1, None, f"fine-tuning on {len(pooled)} kept samples")

    def sft_progress(step, total, metrics):
        progress(step, total, metrics, None)

    model.requires_grad_(True)
    sft = sft_train(model, tokenizer, [(w.prompt, w.response) for w in pooled], config, sft_progress,
                    seed=config.seed, resume_dir=resume_dir / "sft")
    save_checkpoint(model, tokenizer, out_dir, {"kind": "rejection_sampling", "config": config.to_dict(),
                                                **(metadata or {})}, extra_files={SAMPLES_NAME: winners_jsonl(pooled)})
    states_clear(resume_dir)
    return RejectionSamplingResult(
        checkpoint=out_dir, winners=pooled, reward_vs_k=curve, sft=sft,
        pooled_from=sorted({w.source for w in pooled if w.source}),
    )


# Settings a resumed run may change: how often fine-tuning saves.
RESUMABLE_CHANGES = {"checkpoint_every"}


def _samples_save(resume_dir: Path, config: RejectionSamplingConfig, curve: list[dict], pooled: list[Winner]):
    """The sampling stage's outcome, so a resumed run fine-tunes on the very same samples."""
    def write(tmp: Path):
        (tmp / "curve.json").write_text(json.dumps(curve))
        (tmp / SAMPLES_NAME).write_text(winners_jsonl(pooled))

    folder_write_atomic(resume_dir / "samples", write, marker_name=DONE_MARKER, marker={"config": config.to_dict()})


def _samples_load(resume_dir: Path, config: RejectionSamplingConfig):
    folder = resume_dir / "samples"
    if not (folder / DONE_MARKER).is_file():
        return None
    saved = json.loads((folder / DONE_MARKER).read_text())["config"]
    config_check_same(saved=saved, current=config.to_dict(), path=resume_dir, may_change=RESUMABLE_CHANGES)
    return json.loads((folder / "curve.json").read_text()), winners_load(folder / SAMPLES_NAME, "")
