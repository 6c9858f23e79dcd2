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

from modelruntime.readout import readout_features, readout_of, readout_states

PREFIX, CHOSEN, REJECTED, PADDING = 0, 1, 2, -1


@dataclass(frozen=True)
class PackedPair:
    ids: list[int]
    prefix: int  # tokens of shared context at the start of `ids`
    chosen: int  # tokens of the chosen tail after it
    rejected: int  # tokens of the rejected tail after that
    alike: int = 0  # of the prefix, its last `alike` tokens begin both responses alike

    @property
    def response_start(self):
        return self.prefix - self.alike

    def __len__(self):
        return len(self.ids)


def pack(chosen_ids: list[int], rejected_ids: list[int], max_length: int, side: str = "left",
         prompt: int | None = None) -> PackedPair:
    """Split two full token sequences into shared prefix + tails; each side <= max_length tokens.

    `prompt` leading tokens are the dialogue before the response (None: all the tokens the two
    share); `fit` cuts that prompt and the two responses, and responses that begin alike share
    those tokens in the row too.
    """
    prompt = _shared(chosen_ids, rejected_ids) if prompt is None else min(prompt, _shared(chosen_ids, rejected_ids))
    prefix, (chosen, rejected) = fit(chosen_ids[:prompt], [chosen_ids[prompt:], rejected_ids[prompt:]], max_length, side)
    alike = _shared(chosen, rejected)
    return PackedPair(prefix + chosen + rejected[alike:], len(prefix) + alike, len(chosen) - alike, len(rejected) - alike,
                      alike)


def _shared(a: list[int], b: list[int]) -> int:
    """Leading tokens the two have in common; each keeps at least one of its own."""
    shared, limit = 0, min(len(a), len(b)) - 1
    while shared < limit and a[shared] == b[shared]:
        shared += 1
    return shared


def fit(prefix: list[int], tails: list[list[int]], max_length: int, side: str = "left"):
    """(prefix, tails) cut so that the prefix followed by any one tail is at most max_length tokens.

    left: a long tail keeps its last tokens, and the prefix its newest tokens in the room left
    (the response and the turn it answers survive; a long response loses its start).
    right: the prefix keeps its newest tokens, at least half the room where it needs it; a long
    tail keeps its first tokens and its last one, the end-of-turn token where the score is read
    (the question survives and the response is read from its start, as an annotator reads it).
    Both tails get the same prefix, so a pair is judged on one context: a dialogue scored alone
    (rewardmodel/scoring.py) may keep a few more prompt tokens where its response is the shorter.
    """
    if side == "left":
        tails = [tail[-max_length:] for tail in tails]
    elif side == "right":
        room = max_length - min(len(prefix), max_length // 2)
        tails = [tail if len(tail) <= room else tail[: room - 1] + tail[-1:] for tail in tails]
    else:
        raise ValueError(f"truncation side must be left or right, got {side!r}")
    room = max_length - max(len(tail) for tail in tails)
    return (prefix[-room:] if room > 0 else []), tails


def packed_batch(pairs: list[PackedPair], pad_id: int, device=None):
    """Tensors for one forward pass: ids, a 4D attention mask, position ids, the two read-outs,
    and each response's tokens ((2 x rows, width) bool: chosen rows, then rejected rows)."""
    width = max(len(p) for p in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    segment = torch.full((len(pairs), width), PADDING, dtype=torch.long)
    positions = torch.zeros((len(pairs), width), dtype=torch.long)
    spans = torch.zeros((2, len(pairs), width), dtype=torch.bool)
    chosen_at, rejected_at = [], []
    for row, p in enumerate(pairs):
        ids[row, : len(p)] = torch.tensor(p.ids)
        c_end, r_end = p.prefix + p.chosen, p.prefix + p.chosen + p.rejected
        segment[row, : p.prefix] = PREFIX
        segment[row, p.prefix : c_end] = CHOSEN
        segment[row, c_end:r_end] = REJECTED
        spans[:, row, p.response_start : p.prefix] = True  # the start both responses share
        spans[0, row, p.prefix : c_end] = True
        spans[1, row, c_end:r_end] = True
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
        spans.flatten(0, 1).to(device),
    )


def packed_features(model, ids, mask, positions, chosen_at, rejected_at, spans, readout=None):
    """(2 x rows, width) what the head reads, chosen rows then rejected rows, as `readout` (default:
    the model's, modelruntime/readout.py) says: the final layer's last token, or a probe's layers."""
    readout = readout or readout_of(model)
    output = model.base_model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                              output_hidden_states=bool(readout.layers))
    rows = torch.arange(ids.size(0), device=ids.device).repeat(2)
    return readout_features(readout, readout_states(output, readout), rows, torch.cat([chosen_at, rejected_at]), spans)


def packed_scores(model, *batch):
    """(chosen scores, rejected scores) of a packed batch (packed_batch's tensors)."""
    values = model.score(packed_features(model, *batch)).squeeze(-1).float()
    half = values.size(0) // 2
    return values[:half], values[half:]
