"""Prompt KV caches for frozen models: PPO's reference policy and the reward models.

Their weights never change during a run, so the keys and values a frozen model computed for a
prompt stay valid: PPO meets each training prompt again every pass over the prompts, and
rejection sampling scores K responses to one prompt. With the prompt's KV kept, only the tokens
after it are run (about half of each sequence in PPO on HH prompts). Least recently used
prompts go first once the cache holds `max_bytes`.

Only for models that do not change: a cache belongs to one frozen model and is never shared.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from transformers import DynamicCache

DEFAULT_MAX_BYTES = 512 * 2**20  # ~11k tokens of SmolLM2-135M (46 KiB per token), ~250 HH prompts


class PrefixCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()
        self.bytes = 0
        self.hits = 0  # rows whose prompt was not computed for them
        self.misses = 0  # prompts computed

    def run(self, backbone, prefixes: list[list[int]], suffixes: list[list[int]], layers: tuple[int, ...] = ()):
        """Final hidden states of every suffix token, each row continuing its prefix.

        `backbone` is the frozen model's decoder (returns `last_hidden_state`); prefixes may be
        empty, suffixes may not. Returns (hidden (B, S, H), suffix mask (B, S)), right-padded;
        with `layers` (indices of output_hidden_states), a list of those layers' states instead.
        """
        if any(not suffix for suffix in suffixes):
            raise ValueError("every row needs at least one token after its prefix")
        device = next(backbone.parameters()).device
        misses = self.misses
        known = self._lookup(backbone, [p for p in dict.fromkeys(map(tuple, prefixes)) if p], device)
        self.hits += sum(1 for p in prefixes if p) - (self.misses - misses)
        width = max(len(p) for p in prefixes)
        length = max(len(s) for s in suffixes)
        suffix_ids = torch.zeros(len(suffixes), length, dtype=torch.long)
        suffix_mask = torch.zeros_like(suffix_ids)
        for row, suffix in enumerate(suffixes):
            suffix_ids[row, : len(suffix)] = torch.tensor(suffix)
            suffix_mask[row, : len(suffix)] = 1
        prefix_mask = torch.zeros(len(prefixes), width, dtype=torch.long)
        for row, prefix in enumerate(prefixes):
            prefix_mask[row, width - len(prefix) :] = 1  # prefixes left-padded, suffixes right-padded
        starts = torch.tensor([len(p) for p in prefixes])
        positions = starts[:, None] + torch.arange(length)  # each row numbered from its own start
        cache = self._batch_cache([known.get(tuple(p)) for p in prefixes], prefixes, width, device) if width else None
        output = backbone(
            input_ids=suffix_ids.to(device), attention_mask=torch.cat([prefix_mask, suffix_mask], 1).to(device),
            position_ids=positions.to(device), past_key_values=cache, use_cache=cache is not None,
            output_hidden_states=bool(layers),
        )
        hidden = [output.hidden_states[layer] for layer in layers] if layers else output.last_hidden_state
        return hidden, suffix_mask.to(device)

    def _lookup(self, backbone, wanted: list[tuple[int, ...]], device, batch_size: int = 8) -> dict:
        """{prefix: per-layer (keys, values)} for every wanted prefix, computing those not stored."""
        known = {p: self.entries[p] for p in wanted if p in self.entries}
        for prefix in known:  # the prompts of this call are the most recently used
            self.entries.move_to_end(prefix)
        missing = [p for p in wanted if p not in known]
        self.misses += len(missing)
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            width = max(len(p) for p in chunk)
            ids = torch.zeros(len(chunk), width, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, prefix in enumerate(chunk):
                ids[row, width - len(prefix) :] = torch.tensor(prefix)
                mask[row, width - len(prefix) :] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)  # real tokens from 0, as if unpadded
            cache = DynamicCache()
            backbone(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                     past_key_values=cache, use_cache=True)
            for row, prefix in enumerate(chunk):
                kept = [(layer.keys[row, :, width - len(prefix) :].clone(),
                         layer.values[row, :, width - len(prefix) :].clone()) for layer in cache.layers]
                known[prefix] = kept
                self._store(prefix, kept)
        return known

    def _store(self, prefix, kept):
        size = sum(k.nbytes + v.nbytes for k, v in kept)
        if size > self.max_bytes:
            return  # a prompt bigger than the whole cache is recomputed each time
        while self.bytes + size > self.max_bytes:
            _, evicted = self.entries.popitem(last=False)
            self.bytes -= sum(k.nbytes + v.nbytes for k, v in evicted)
        self.entries[prefix] = kept
        self.bytes += size

    @staticmethod
    def _batch_cache(entries, prefixes, width, device) -> DynamicCache:
        """The rows' prompt KV, left-padded to the widest prefix (rows with an empty one: all padding)."""
        sample = next(e for e in entries if e is not None)
        cache = DynamicCache()
        for layer in range(len(sample)):
            heads, dim = sample[layer][0].shape[0], sample[layer][0].shape[-1]
            keys = torch.zeros(len(prefixes), heads, width, dim, dtype=sample[layer][0].dtype, device=device)
            values = torch.zeros_like(keys)
            for row, (entry, prefix) in enumerate(zip(entries, prefixes)):
                if entry is not None:
                    keys[row, :, width - len(prefix) :] = entry[layer][0]
                    values[row, :, width - len(prefix) :] = entry[layer][1]
            cache.update(keys, values, layer)
        return cache
