"""Generation backends: where a policy version's text comes from. No Django here.

Every generation path (write-a-prompt pairs, `sample`, rejection sampling, `evaluate_policy`,
`publish_samples`) asks a backend for K responses per conversation:

- `LocalBackend`: the in-process engine (rlhf/generation.py) on this worker's device, the
  embedded default;
- `OpenAIBackend`: any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp) through
  `POST {base_url}/chat/completions`, so the server applies its own chat template; the K samples
  of a conversation are one request with `n=K`; many conversations are in flight at once, up to
  a cap; 429, 5xx, connection errors and timeouts are retried with exponential backoff.

A server that is down, does not serve the model, or does not answer in time raises
`GenerationUnavailable` with a message that says which; callers store nothing half-made.
PPO stays in-process: on-policy sampling needs the weights being trained.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import httpx

if TYPE_CHECKING:  # the web process imports this module through rlhf.models: no torch here
    from rlhf.generation import SamplingConfig

LOCAL, OPENAI = "local", "openai"
BACKENDS = (LOCAL, OPENAI)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


class GenerationUnavailable(RuntimeError):
    """The backend could not generate: server down, model not served, timeout, refused request."""


@dataclass
class Generation:
    """One response as every backend returns it."""

    text: str
    finished: bool  # stopped at end-of-turn rather than at max_new_tokens
    tokens: int  # response length in tokens
    logprobs: list[float] | None = None  # per response token, when asked for


class GenerationBackend(Protocol):
    def generate(self, conversations: list[list[dict]], config: SamplingConfig, *, k: int = 1,
                 logprobs: bool = False, ignore_eos: bool = False,
                 on_progress: Callable[[int, int], None] | None = None) -> list[list[Generation]]:
        """result[i] holds the K responses to conversations[i]; on_progress(rows_done, rows_total)."""

    def describe(self) -> str:
        """A short label for logs: which model, served where."""


@dataclass
class LocalBackend:
    """The in-process engine; `model`/`tokenizer` given (a policy about to be fine-tuned) or
    loaded once per process from `checkpoint_path`."""

    checkpoint_path: str | Path | None = None
    model: object = None
    tokenizer: object = None
    batch_size: int = 64

    def describe(self) -> str:
        return f"local engine on {self.checkpoint_path or 'the loaded model'}"

    def generate(self, conversations, config, *, k=1, logprobs=False, ignore_eos=False, on_progress=None):
        from rlhf.generation import sample_responses

        model, tokenizer = self.model, self.tokenizer
        if model is None:
            from modelruntime.modelstore import load_policy_cached

            model, tokenizer = load_policy_cached(self.checkpoint_path)
        samples = sample_responses(model, tokenizer, conversations, config, k=k, batch_size=self.batch_size,
                                   ignore_eos=ignore_eos, on_batch=on_progress,
                                   record_policy=logprobs and config.temperature > 0)
        return [[Generation(s.text, s.finished, len(s.response_ids),
                            s.logprobs.tolist() if s.logprobs is not None else None) for s in per_prompt]
                for per_prompt in samples]


@dataclass
class OpenAIBackend:
    """An OpenAI-compatible server. `base_url` ends with the API's version, as OpenAI clients
    take it (`http://host:8000/v1`); the key, if any, is read from the environment variable
    named `api_key_env` when a request is made, so no secret is stored with the version."""

    base_url: str
    served_model: str
    api_key_env: str = ""
    max_in_flight: int = 16  # conversations whose request is open at once
    timeout_seconds: float = 120.0  # per request, reading included
    retries: int = 3  # after the first try, on 429 / 5xx / connection errors / timeouts
    backoff_seconds: float = 1.0  # doubles after each retry; a Retry-After header wins

    def __post_init__(self):
        self.base_url = self.base_url.rstrip("/")
        if self.api_key_env and not ENV_NAME.match(self.api_key_env):
            raise ValueError(f"api_key_env must be an environment variable's name, got {self.api_key_env!r}")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {self.max_in_flight}")

    def describe(self) -> str:
        return f"{self.served_model!r} served at {self.base_url}"

    def generate(self, conversations, config, *, k=1, logprobs=False, ignore_eos=False, on_progress=None):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        results: list[list[Generation] | None] = [None] * len(conversations)
        done = 0
        # One pooled connection per request in flight (httpx's default pool stops at 100).
        limits = httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight)
        with httpx.Client(headers=self._headers(), timeout=self.timeout_seconds, limits=limits) as client, \
                ThreadPoolExecutor(max_workers=self.max_in_flight) as pool:
            futures = {pool.submit(self._complete, client, conversation, config, k, logprobs, ignore_eos): i
                       for i, conversation in enumerate(conversations)}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    done += 1
                    if on_progress:
                        on_progress(done * k, len(conversations) * k)
            except BaseException:
                for future in futures:  # one failure fails the call: stop sending the rest
                    future.cancel()
                raise
        return results

    def _headers(self) -> dict:
        if not self.api_key_env:
            return {}
        key = os.environ.get(self.api_key_env)
        if not key:
            raise GenerationUnavailable(f"the environment variable {self.api_key_env} (the API key of "
                                        f"{self.describe()}) is not set in this process")
        return {"Authorization": f"Bearer {key}"}

    def _body(self, conversation, config: SamplingConfig, k, logprobs, ignore_eos) -> dict:
        body = {"model": self.served_model, "messages": conversation, "n": k,
                "temperature": config.temperature, "top_p": config.top_p, "max_tokens": config.max_new_tokens}
        if config.seed is not None:
            body["seed"] = config.seed
        if logprobs:
            body["logprobs"] = True
        if ignore_eos:
            body["ignore_eos"] = True  # vLLM's extension: every response exactly max_tokens long
        return body

    def _complete(self, client, conversation, config, k, logprobs, ignore_eos) -> list[Generation]:
        body = self._body(conversation, config, k, logprobs, ignore_eos)
        url = f"{self.base_url}/chat/completions"
        delay, problem = self.backoff_seconds, ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(delay)
                delay *= 2
            try:
                response = client.post(url, json=body)
            except httpx.TimeoutException:
                problem = f"no answer within {self.timeout_seconds:g} s"
                continue
            except httpx.TransportError as error:
                problem = f"cannot connect ({type(error).__name__}: {error})"
                continue
            if response.status_code in RETRY_STATUSES:
                problem = f"HTTP {response.status_code}: {_error_text(response)}"
                delay = max(delay, _retry_after(response))
                continue
            if response.status_code == 404:
                raise GenerationUnavailable(self._not_served(client, response))
            if response.status_code >= 400:
                raise GenerationUnavailable(f"{self.describe()} refused the request: HTTP "
                                            f"{response.status_code}: {_error_text(response)}")
            return _generations(response.json(), k)
        tries = f"{self.retries + 1} tries" if self.retries else "1 try"
        raise GenerationUnavailable(f"{self.describe()} is unavailable: {problem} ({tries})")

    def _not_served(self, client, response) -> str:
        message = f"{self.base_url} does not serve a model named {self.served_model!r}"
        try:
            served = [m["id"] for m in client.get(f"{self.base_url}/models").json()["data"]]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return f"{message}: HTTP 404: {_error_text(response)}"
        return f"{message} (it serves: {', '.join(served) or 'nothing'})"


def _generations(payload: dict, k: int) -> list[Generation]:
    choices = sorted(payload.get("choices") or [], key=lambda c: c.get("index", 0))
    if len(choices) != k:
        raise GenerationUnavailable(f"the server answered {len(choices)} choices where {k} were asked for")
    out = []
    for choice in choices:
        content = (choice.get("logprobs") or {}).get("content")
        logprobs = [token["logprob"] for token in content] if content else None
        text = (choice.get("message") or {}).get("content") or ""
        out.append(Generation(text.strip(), choice.get("finish_reason") == "stop",
                              len(logprobs) if logprobs else 0, logprobs))
    if not any(g.tokens for g in out):  # no per-token log-probs: share out the usage count
        total = (payload.get("usage") or {}).get("completion_tokens") or 0
        for g in out:
            g.tokens = total // k
    return out


def _error_text(response) -> str:
    try:
        error = response.json().get("error") or response.json()
        return str(error.get("message", error) if isinstance(error, dict) else error)[:300]
    except ValueError:
        return response.text[:300] or response.reason_phrase


def _retry_after(response) -> float:
    try:
        return float(response.headers.get("retry-after", 0))
    except ValueError:
        return 0.0


def backend_for(version, *, model=None, tokenizer=None, batch_size: int = 64) -> GenerationBackend:
    """The backend a policy version (anything with PolicyVersion's backend fields) generates with."""
    if getattr(version, "backend", LOCAL) == OPENAI:
        return OpenAIBackend(base_url=version.openai_base_url, served_model=version.served_model,
                             api_key_env=version.api_key_env, max_in_flight=version.max_in_flight,
                             timeout_seconds=version.timeout_seconds)
    return LocalBackend(checkpoint_path=version.checkpoint_path, model=model, tokenizer=tokenizer,
                        batch_size=batch_size)


def vllm_serve_command(*, name: str, checkpoint: str | Path, base: str | Path | None = None,
                       lora_rank: int | None = None, host: str = "0.0.0.0", port: int = 8000) -> list[str]:
    """The `vllm serve` command line that serves a Margin checkpoint under `name`.

    A full checkpoint is served as itself; a LoRA adapter (`base` given) as vLLM's LoRA module
    over its base model, so requests name the adapter and the base's weights are shared.
    """
    common = ["--host", host, "--port", str(port), "--dtype", "auto"]
    if base is None:
        return ["vllm", "serve", str(checkpoint), "--served-model-name", name, *common]
    rank = ["--max-lora-rank", str(lora_rank)] if lora_rank else []
    return ["vllm", "serve", str(base), *common, "--enable-lora", "--lora-modules", f"{name}={checkpoint}", *rank]
