"""What a reward model's head reads from the transformer, and where it is kept in a checkpoint.

Llama 2's reward model (a fine-tuned chat model) reads the final layer at the response's last
token: `FINAL_TOKEN`, the readout of every fine-tuned checkpoint. A probe reward model
(rewardmodel/probe.py) keeps the chat model frozen and reads more: at each of several layers, the
state at the last token and the mean over the response's tokens. Its head, a linear layer over
those features, is saved beside the model as `readout.safetensors` with the layers in the file's
metadata, so a checkpoint says by itself how it is read; every scorer (packed pairs in training
and evaluation, RewardScorer for PPO and rejection sampling) reads through `readout_features`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

READOUT_FILE = "readout.safetensors"


@dataclass(frozen=True)
class Readout:
    layers: tuple[int, ...] = ()  # indices of output_hidden_states (0: embeddings); (): the final output
    response_mean: bool = False  # also the mean over the response's tokens, after each layer's last token

    def width(self, hidden_size: int) -> int:
        return max(len(self.layers), 1) * (2 if self.response_mean else 1) * hidden_size


FINAL_TOKEN = Readout()


def readout_of(model) -> Readout:
    return getattr(model, "readout", FINAL_TOKEN)


def readout_states(output, readout: Readout) -> list[torch.Tensor]:
    """The (B, S, H) states the readout reads from a backbone's output (run with
    output_hidden_states=bool(readout.layers))."""
    if not readout.layers:
        return [output.last_hidden_state]
    return [output.hidden_states[layer] for layer in readout.layers]


def readout_features(readout: Readout, states: list[torch.Tensor], rows, at, spans=None) -> torch.Tensor:
    """(N, width) features: for read-out n, row rows[n] of each state at token at[n] and, with
    response_mean, the mean over the tokens spans[n] (N, S) marks."""
    parts = []
    for hidden in states:
        parts.append(hidden[rows, at])
        if readout.response_mean:
            weights = spans.to(hidden.dtype)
            parts.append(torch.einsum("ns,nsh->nh", weights, hidden[rows]) / weights.sum(1, keepdim=True).clamp_min(1))
    return torch.cat(parts, -1)


def readout_bytes(head: nn.Linear, readout: Readout) -> bytes:
    """The head and its readout as the bytes of `readout.safetensors` (save_checkpoint writes them)."""
    from safetensors.torch import save

    metadata = {"layers": ",".join(map(str, readout.layers)), "response_mean": str(int(readout.response_mean))}
    return save({"weight": head.weight.detach().float().cpu().contiguous(),
                 "bias": head.bias.detach().float().cpu().contiguous()}, metadata=metadata)


def readout_load(folder: Path | str) -> tuple[Readout, nn.Linear] | None:
    """(readout, head) of a checkpoint that has `readout.safetensors`; None for a fine-tuned one."""
    from safetensors import safe_open

    path = Path(folder) / READOUT_FILE
    if not path.is_file():
        return None
    with safe_open(path, "pt") as file:
        metadata = file.metadata() or {}
        weight, bias = file.get_tensor("weight"), file.get_tensor("bias")
    layers = tuple(int(layer) for layer in metadata.get("layers", "").split(",") if layer)
    readout = Readout(layers, metadata.get("response_mean") == "1")
    head = nn.Linear(weight.shape[1], 1)
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return readout, head
