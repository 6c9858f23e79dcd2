"""Chosen and rejected in one row: the shared dialogue once, then both responses.

A preference pair is two dialogues that differ only in the last response. Scoring them as two
padded rows computes the shared context twice; here a pair is one row

    [ shared context | chosen response | rejected response ]

with a mask that lets each response see the context and itself but not the other response,
and position ids that restart where the context ends, so each response is scored exactly as if
it followed the context alone. On multi-turn data the context is most of the tokens, so this
does close to half the work of the two-row layout (and no padding between the two sides).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PREFIX, CHOSEN, REJECTED, PADDING = 0, 1, 2, -1


@dataclass(frozen=True)
class PackedPair:
    ids: list[int]
    prefix: int  # tokens of shared context at the start of `ids`
    chosen: int  # tokens of the chosen tail after it
    rejected: int  # tokens of the rejected tail after that

    def __len__(self):
        return len(self.ids)


def pack(chosen_ids: list[int], rejected_ids: list[int], max_length: int) -> PackedPair:
    """Split two full token sequences into shared prefix + tails; each side <= max_length tokens.

    When a side is too long, the shared context loses its oldest tokens first (the responses
    survive, as in `modeling.encode`); a tail longer than max_length keeps its last tokens.
    """
    shared = 0
    limit = min(len(chosen_ids), len(rejected_ids)) - 1  # each side keeps at least one own token
    while shared < limit and chosen_ids[shared] == rejected_ids[shared]:
        shared += 1
    chosen_tail, rejected_tail = chosen_ids[shared:], rejected_ids[shared:]
    chosen_tail, rejected_tail = chosen_tail[-max_length:], rejected_tail[-max_length:]
    room = max_length - max(len(chosen_tail), len(rejected_tail))
    prefix = chosen_ids[:shared][-room:] if room > 0 else []
    return PackedPair(prefix + chosen_tail + rejected_tail, len(prefix), len(chosen_tail), len(rejected_tail))


def packed_batch(pairs: list[PackedPair], pad_id: int, device=None):
    """Tensors for one forward pass: ids, a 4D attention mask, position ids, the two read-outs."""
    width = max(len(p) for p in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    segment = torch.full((len(pairs), width), PADDING, dtype=torch.long)
    positions = torch.zeros((len(pairs), width), dtype=torch.long)
    chosen_at, rejected_at = [], []
    for row, p in enumerate(pairs):
        ids[row, : len(p)] = torch.tensor(p.ids)
        c_end, r_end = p.prefix + p.chosen, p.prefix + p.chosen + p.rejected
        segment[row, : p.prefix] = PREFIX
        segment[row, p.prefix : c_end] = CHOSEN
        segment[row, c_end:r_end] = REJECTED
        positions[row, :c_end] = torch.arange(c_end)
        positions[row, c_end:r_end] = torch.arange(p.prefix, p.prefix + p.rejected)  # restarts
        chosen_at.append(c_end - 1)
        rejected_at.append(r_end - 1)
    query, key = segment[:, :, None], segment[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    mask = causal & (key != PADDING) & ((key == PREFIX) | (key == query))
    # Padding rows attend to themselves only, so softmax never sees an all-masked row.
    mask |= torch.eye(width, dtype=torch.bool) & (query == PADDING)
    return (
        ids.to(device),
        mask[:, None].to(device),
        positions.to(device),
        torch.tensor(chosen_at, device=device),
        torch.tensor(rejected_at, device=device),
    )


def packed_scores(model, ids, mask, positions, chosen_at, rejected_at):
    """(chosen scores, rejected scores) of a packed batch."""
    hidden = model.base_model(
        input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
    ).last_hidden_state
    rows = torch.arange(hidden.size(0), device=hidden.device)
    values = model.score(torch.cat([hidden[rows, chosen_at], hidden[rows, rejected_at]])).squeeze(-1).float()
    return values[: len(rows)], values[len(rows) :]
