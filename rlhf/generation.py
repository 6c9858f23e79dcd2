"""Response generation: chat conversations in, sampled assistant replies out.

Used wherever the loop needs model text: the two responses of a comparison, the K samples of
rejection sampling, PPO rollouts. `sample_responses` is the engine: every prompt repeated K
times, sorted by length so a batch holds similar lengths, left-padded, each distinct prompt
prefilled once and its KV cache shared by its K copies, decoded with the KV cache by HF
`generate` on whatever device the model sits on; it returns token ids as well as text,
because PPO scores exactly the tokens that were sampled.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
from transformers import DynamicCache, GenerationConfig

ROLES = ("system", "user", "assistant")


@dataclass
class SamplingConfig:
    temperature: float = 0.7  # softmax temperature; 0 means greedy decoding
    top_p: float = 0.9  # nucleus sampling: keep the smallest token set with this probability mass
    max_new_tokens: int = 128  # upper bound on the length of each response, in tokens
    seed: int | None = None  # same seed, model and conversations give the same responses

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Sample:
    """One sampled response: the exact tokens, so PPO can score what the policy produced."""

    prompt_index: int  # position of its conversation in the input list
    prompt_ids: list[int] = field(repr=False)
    response_ids: list[int] = field(repr=False)  # generated tokens, the stop token included, no padding
    text: str = ""
    finished: bool = False  # stopped at end-of-turn rather than at max_new_tokens


def generate_responses(
    model, tokenizer, conversations: list[list[dict]], config: SamplingConfig, batch_size: int = 8
) -> list[str]:
    """One assistant reply per conversation, in input order."""
    samples = sample_responses(model, tokenizer, conversations, config, k=1, batch_size=batch_size)
    return [per_prompt[0].text for per_prompt in samples]


def sample_responses(
    model,
    tokenizer,
    conversations: list[list[dict]],
    config: SamplingConfig,
    k: int = 1,
    batch_size: int = 64,
    ignore_eos: bool = False,
    on_batch=None,
) -> list[list[Sample]]:
    """K samples per conversation: result[i] holds the K samples of conversations[i].

    `ignore_eos` makes every response exactly max_new_tokens long (benchmarks compare equal work);
    `on_batch(rows_done, rows_total)` is called after each generate call (progress bars).
    Deterministic for the same seed, inputs, k and batch_size.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    prompts = [_prompt_ids(tokenizer, conversation) for conversation in conversations]
    # K copies of each prompt, sorted by length: a batch of similar lengths wastes few forward
    # passes on padding, and the K copies of one prompt sit together.
    rows = sorted(((i, copy) for i in range(len(prompts)) for copy in range(k)), key=lambda r: len(prompts[r[0]]))
    samples: list[list[Sample | None]] = [[None] * k for _ in prompts]
    generation_config = _generation_config(tokenizer, config)
    if ignore_eos:
        generation_config.min_new_tokens = config.max_new_tokens
    with torch.inference_mode(), _seeded(config.seed, model.device):
        for start in range(0, len(rows), batch_size):
            batch_rows = rows[start : start + batch_size]
            outputs = _generate_batch(model, tokenizer, [prompts[i] for i, _ in batch_rows], generation_config)
            for (i, copy), (response_ids, finished) in zip(batch_rows, outputs):
                text = tokenizer.decode(response_ids, skip_special_tokens=True).strip()
                samples[i][copy] = Sample(i, prompts[i], response_ids, text, finished)
            if on_batch:
                on_batch(start + len(batch_rows), len(rows))
    return samples


def chat_prompt(tokenizer, conversation: list[dict]) -> str:
    """The text the model continues: every turn in the chat template, then the assistant header."""
    if not conversation or conversation[-1].get("role") != "user":
        raise ValueError("a conversation must be a non-empty list of messages ending with a user turn")
    for message in conversation:
        if message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise ValueError(f"bad chat message {message!r}: needs a role in {ROLES} and string content")
    return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)


def _prompt_ids(tokenizer, conversation: list[dict]) -> list[int]:
    # The chat template already writes any BOS token; adding special tokens would double it.
    return tokenizer(chat_prompt(tokenizer, conversation), add_special_tokens=False)["input_ids"]


def _generation_config(tokenizer, config: SamplingConfig) -> GenerationConfig:
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    common = dict(
        max_new_tokens=config.max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad_token_id,
        use_cache=True,
    )
    if config.temperature == 0:
        return GenerationConfig(do_sample=False, **common)
    # top_k=0 switches off HF's implicit top-k of 50, so sampling is exactly what the config says.
    return GenerationConfig(do_sample=True, temperature=config.temperature, top_p=config.top_p, top_k=0, **common)


@contextmanager
def _seeded(seed: int | None, device: torch.device):
    if seed is None:
        yield
        return
    # fork_rng restores the caller's RNG state afterwards: seeding generation must not change
    # what an enclosing training loop draws next.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def shared_prefill(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> DynamicCache | None:
    """The KV cache of every row's prompt but its last token, computed once per distinct row.

    The K copies of a prompt sit in one batch; running the prompt through the model once and
    copying its cache K times saves (K-1)/K of the prefill, which on a CPU is about half of
    all the work for short responses. None when no two rows are equal. With left padding, the
    prompt minus its last token padded to width-1 lines up with the full prompt padded to width,
    so `generate` continues from this cache with the last prompt token.
    """
    rows = torch.cat([input_ids, attention_mask], dim=1)
    distinct, row_of = torch.unique(rows, dim=0, return_inverse=True)
    if len(distinct) == len(rows) or input_ids.shape[1] < 2:
        return None
    width = input_ids.shape[1]
    ids, mask = distinct[:, : width - 1], distinct[:, width : 2 * width - 1]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # as generate numbers left-padded rows
    cache = DynamicCache(config=model.config)
    model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
    cache.reorder_cache(row_of)  # one copy per row, in the batch's order
    return cache


def _generate_batch(model, tokenizer, prompts: list[list[int]], generation_config: GenerationConfig):
    """[(response token ids up to and including the stop token, stopped at EOS?)] per prompt."""
    batch = tokenizer.pad({"input_ids": prompts}, padding=True, padding_side="left", return_tensors="pt")
    batch = batch.to(model.device)
    cache = shared_prefill(model, batch["input_ids"], batch["attention_mask"])
    output = model.generate(**batch, generation_config=generation_config, past_key_values=cache)  # (B, T_prompt + T_new)
    new_tokens = output[:, batch["input_ids"].shape[1] :].tolist()  # (B, T_new)
    stop_ids = generation_config.eos_token_id
    stop_ids = set(stop_ids if isinstance(stop_ids, list) else [stop_ids])
    results = []
    for tokens in new_tokens:
        # generate pads finished rows after their stop token; the pad may equal the stop token.
        end = next((n for n, token in enumerate(tokens) if token in stop_ids), None)
        if end is None or generation_config.min_new_tokens:
            results.append((tokens, False))
        else:
            results.append((tokens[: end + 1], True))
    return results
