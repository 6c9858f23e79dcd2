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
from transformers import DynamicCache, GenerationConfig, LogitsProcessor, LogitsProcessorList

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
    # With record_policy: the log-prob of each response token under logits / temperature and the
    # final hidden state that predicted it (T, H), as PPO's old log-probs and value inputs.
    logprobs: torch.Tensor | None = field(default=None, repr=False)
    hidden: torch.Tensor | None = field(default=None, repr=False)


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
    record_policy: bool = False,
) -> list[list[Sample]]:
    """K samples per conversation: result[i] holds the K samples of conversations[i].

    `ignore_eos` makes every response exactly max_new_tokens long (benchmarks compare equal work);
    `on_batch(rows_done, rows_total)` is called after each generate call (progress bars).
    `record_policy` keeps each token's log-prob and hidden state from the decoding pass itself
    (PPO would otherwise run the policy over every rollout once more); it needs temperature > 0.
    Deterministic for the same seed, inputs, k and batch_size.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if record_policy and config.temperature == 0:
        raise ValueError("record_policy needs sampling (temperature > 0)")
    prompts = [_prompt_ids(tokenizer, conversation) for conversation in conversations]
    # K copies of each prompt, sorted by length: a batch of similar lengths wastes few forward
    # passes on padding, and the K copies of one prompt sit together.
    rows = sorted(((i, copy) for i in range(len(prompts)) for copy in range(k)), key=lambda r: len(prompts[r[0]]))
    samples: list[list[Sample | None]] = [[None] * k for _ in prompts]
    generation_config, processors = _engine_generation(tokenizer, config)
    if ignore_eos:
        generation_config.min_new_tokens = config.max_new_tokens
    with torch.inference_mode(), _seeded(config.seed, model.device):
        for start in range(0, len(rows), batch_size):
            batch_rows = rows[start : start + batch_size]
            outputs, logprobs, hidden = _generate_batch(
                model, tokenizer, [prompts[i] for i, _ in batch_rows], generation_config, processors, record_policy
            )
            for row, ((i, copy), (response_ids, finished)) in enumerate(zip(batch_rows, outputs)):
                text = tokenizer.decode(response_ids, skip_special_tokens=True).strip()
                sample = samples[i][copy] = Sample(i, prompts[i], response_ids, text, finished)
                if record_policy:
                    sample.logprobs, sample.hidden = logprobs[row, : len(response_ids)], hidden[row, : len(response_ids)]
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


def _engine_generation(tokenizer, config: SamplingConfig):
    """(GenerationConfig, logits processors) for the engine: HF's greedy loop, our sampler.

    `generate` keeps what it does well (KV cache, stopping, padding finished rows); the draw
    itself is NucleusSampler's, so generate runs greedy on scores that hold only the drawn token.
    """
    generation_config = _generation_config(tokenizer, config)
    if config.temperature == 0:
        return generation_config, None
    greedy = GenerationConfig(do_sample=False, **{
        name: getattr(generation_config, name)
        for name in ("max_new_tokens", "eos_token_id", "pad_token_id", "use_cache")
    })
    return greedy, LogitsProcessorList([NucleusSampler(config.temperature, config.top_p)])


class NucleusSampler(LogitsProcessor):
    """Temperature and top-p sampling with HF's semantics, without sorting the vocabulary.

    HF's top-p sorts all 49k tokens of every row at every step and then draws with multinomial
    over the vocabulary: with 128 rows on 2 CPU cores that is about 0.5 s a step, more than the
    model's own forward pass. The nucleus nearly always lies in the top few hundred tokens, so
    take those (topk) and sort a whole row only when they hold less than top_p of its mass.
    """

    def __init__(self, temperature: float, top_p: float, candidates: int = 256):
        self.temperature, self.top_p, self.candidates = temperature, top_p, candidates
        self.logprobs: list[torch.Tensor] | None = None  # a list: record each step's (B,) log-probs

    def __call__(self, input_ids, scores):
        tokens = nucleus_sample(scores, self.temperature, self.top_p, self.candidates)
        if self.logprobs is not None:
            logprobs = torch.log_softmax(scores.float() / self.temperature, dim=-1)
            self.logprobs.append(logprobs.gather(-1, tokens[:, None]).squeeze(-1))
        drawn = torch.full_like(scores, float("-inf"))
        return drawn.scatter_(1, tokens[:, None], 0.0)


def nucleus_sample(logits: torch.Tensor, temperature: float, top_p: float, candidates: int = 256) -> torch.Tensor:
    """One token per row from the smallest top set holding top_p of the mass (HF's rule: a
    token is dropped when the tokens ranked above it already hold top_p); (rows,) token ids."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p >= 1:
        return _draw(probs, None)
    top, index = probs.topk(min(candidates, probs.shape[-1]))  # descending
    tokens = torch.empty(len(probs), dtype=torch.long, device=probs.device)
    short = top.sum(-1) < top_p  # the nucleus reaches past the candidates: sort these rows whole
    if short.any():
        tokens[short] = _draw_nucleus(*probs[short].sort(dim=-1, descending=True), top_p)
    if not short.all():
        tokens[~short] = _draw_nucleus(top[~short], index[~short], top_p)
    return tokens


def _draw_nucleus(ranked, index, top_p):
    above = ranked.cumsum(-1) - ranked  # mass of the tokens ranked above each one
    return _draw(ranked.masked_fill(above >= top_p, 0.0), index)


def _draw(probs, index):
    # Inverse CDF: one uniform number per row (multinomial over 49k columns is far slower).
    cumulative = probs.cumsum(-1)
    target = torch.rand(len(probs), 1, device=probs.device) * cumulative[:, -1:]
    position = torch.searchsorted(cumulative, target, right=True).clamp(max=probs.shape[-1] - 1)
    return (position if index is None else index.gather(-1, position)).squeeze(-1)


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
    model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True,
          logits_to_keep=1)  # the cache is what we want; skip the vocabulary projection of every position
    cache.reorder_cache(row_of)  # one copy per row, in the batch's order
    return cache


def _generate_batch(model, tokenizer, prompts, generation_config: GenerationConfig, processors=None,
                    record_policy=False):
    """([(response token ids up to and including the stop token, stopped at EOS?)] per prompt,
    log-probs (B, T_new), final hidden states (B, T_new, H)); the last two None unless recorded."""
    batch = tokenizer.pad({"input_ids": prompts}, padding=True, padding_side="left", return_tensors="pt")
    batch = batch.to(model.device)
    cache = shared_prefill(model, batch["input_ids"], batch["attention_mask"])
    hidden, hook = [], None
    if record_policy:
        processors[0].logprobs = []
        # The final norm's output at the last position is what the LM head reads for the next token.
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        hook = base.get_decoder().norm.register_forward_hook(
            lambda module, args, output: hidden.append(output[:, -1].float())
        )
    try:
        output = model.generate(**batch, generation_config=generation_config, logits_processor=processors,
                                past_key_values=cache)  # (B, T_prompt + T_new)
    finally:
        if hook is not None:
            hook.remove()
    logprobs = None
    if record_policy:
        logprobs, hidden = torch.stack(processors[0].logprobs, 1), torch.stack(hidden, 1)
        processors[0].logprobs = None
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
    return results, logprobs, (hidden if record_policy else None)
