"""A probe reward model: the chat model stays frozen and a linear head is fitted on what it reads.

Issue 21 (bench/rm_probe.py): within 30 CPU-minutes, fine-tuning SmolLM2-135M fits about 600
pairs; a forward pass without gradients costs about a third of a training step, so the same time
reads every pair of the project once. Each side of a pair becomes one feature vector (at each read
layer: the state at the response's last token, where a fine-tuned head reads, and the mean over
the response's tokens; modelruntime/readout.py), and the head is fitted to the same loss as
fine-tuning (Llama 2 Eq. 2, rewardmodel/loss.py) on the chosen-minus-rejected features:

    minimise  mean softplus(margin - (f_chosen - f_rejected) . w)  +  l2 |w|^2

with the features standardised and no bias in the loss (a pair's order must not matter). Its L2
weight comes from 5-fold cross-validation with folds by prompt, as the held-out split keeps a
prompt's pairs on one side. The saved head adds a bias that centres the training responses'
scores on 0, so the safety gate's sigmoid reads around 0.5 for an average response.

Reading the pairs is resumable: every `checkpoint_every` batches the features read so far are
saved, and a run started again on the same output_dir reads only the rest.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import torch
from torch import nn

from modelruntime.checkpoint import RESUME_DIR, state_load, state_save, states_clear
from modelruntime.packing import packed_batch, packed_features
from modelruntime.readout import READOUT_FILE, Readout, readout_bytes
from rewardmodel.config import RewardModelConfig
from rewardmodel.data import NoTrainingData, TrainingPair
from rewardmodel.modeling import load_for_training

L2_GRID = (1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
FALLBACK_L2 = 1.0  # with pairs of a single fold's prompts, nothing to cross-validate: bench/rm_probe.py's usual pick
FOLDS = 5


def read_pairs(model, pad_id, packed, readout: Readout, batches, device, *, done=0, features=None, on_batch=None):
    """(pairs, 2 sides, width) features of every packed pair, batch by batch in `batches` order
    (index lists); starts at batch `done` of a `features` tensor already partly filled."""
    width = readout.width(model.config.hidden_size)
    features = torch.zeros(len(packed), 2, width) if features is None else features
    model.eval()
    with torch.inference_mode():
        for number in range(done, len(batches)):
            rows = batches[number]
            read = packed_features(model, *packed_batch([packed[i] for i in rows], pad_id, device), readout)
            features[rows] = read.float().cpu().view(2, len(rows), width).transpose(0, 1)
            if on_batch:
                on_batch(number + 1, features)
    return features


def fit_head(gaps: torch.Tensor, margins: torch.Tensor, l2: float) -> torch.Tensor:
    """w minimising mean softplus(margin - gaps . w) + l2 |w|^2 (L-BFGS; the problem is convex)."""
    w = torch.zeros(gaps.shape[1], dtype=gaps.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS([w], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.softplus(margins - gaps @ w).mean() + l2 * (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach()


def prompt_folds(pairs: list[TrainingPair]) -> torch.Tensor:
    """Each pair's cross-validation fold, by its prompt (stable across runs and processes)."""
    return torch.tensor([zlib.crc32(pair.prompt_key.encode()) % FOLDS for pair in pairs])


def cross_validated(gaps, margins, folds, l2) -> float:
    """Share of pairs ordered right by a head fitted on the other folds."""
    right = 0
    for fold in range(FOLDS):
        held = folds == fold
        if not held.any():
            continue
        right += int(((gaps[held] @ fit_head(gaps[~held], margins[~held], l2)) > 0).sum())
    return right / len(gaps)


def head_fit(features: torch.Tensor, margins: torch.Tensor, folds: torch.Tensor, l2: float = 0.0):
    """(head, metrics): a linear layer over raw features; l2 0 picks it by cross-validation."""
    features = features.double()
    gaps = features[:, 0] - features[:, 1]
    scale = gaps.std(0).clamp_min(1e-6) if len(gaps) > 1 else torch.ones(gaps.shape[1], dtype=gaps.dtype)
    gaps, margins = gaps / scale, margins.double()
    cv = {}
    if not l2 and folds.unique().numel() < 2:
        l2 = FALLBACK_L2
    if not l2:
        cv = {value: cross_validated(gaps, margins, folds, value) for value in L2_GRID}
        l2 = max(L2_GRID, key=cv.get)
    weight = fit_head(gaps, margins, l2) / scale  # on raw features
    center = features.mean((0, 1))  # every training response, both sides
    head = nn.Linear(features.shape[-1], 1)
    with torch.no_grad():
        head.weight.copy_(weight[None].float())
        head.bias.fill_(float(-(center @ weight)))
    accuracy = float(((gaps * scale) @ weight > 0).double().mean())
    metrics = {"l2": l2, "rm/accuracy": round(accuracy, 4)}
    if cv:
        metrics["rm/cv_accuracy"] = round(cv[l2], 4)
        metrics["cv_by_l2"] = {str(value): round(acc, 4) for value, acc in cv.items()}
    return head, metrics


def train_probe(config: RewardModelConfig, pairs: list[TrainingPair], output_dir: Path | str, *, base_path,
                on_progress=None, device=None, metadata: dict | None = None):
    """Read every pair with the frozen model, fit the head, save the probe to `output_dir/model`."""
    from modelruntime.modelstore import save_checkpoint
    from rewardmodel.training import FINAL_DIR, TrainResult, encode_pairs

    if not pairs:
        raise NoTrainingData("no training pairs")
    output_dir = Path(output_dir)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, tokenizer = load_for_training(base_path, seed=config.seed, device=device)
    readout = Readout(config.probe_layer_numbers(model.config.num_hidden_layers), response_mean=True)
    packed = encode_pairs(tokenizer, pairs, config.max_length, config.truncation_side)
    order = sorted(range(len(packed)), key=lambda i: len(packed[i]))  # little padding per batch
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    total = len(batches) + 1  # the last step is the fit

    read_as = {"layers": list(readout.layers), "response_mean": readout.response_mean, "pairs": len(pairs)}
    saved = state_load(output_dir / RESUME_DIR)
    done, features = 0, None
    if saved is not None and saved["read_as"] == read_as:  # else the pairs or layers changed: read again
        done, features = saved["step"], saved["features"]

    def batch_read(number, features):
        if number % config.checkpoint_every == 0 and number < len(batches):
            state_save(output_dir / RESUME_DIR, step=number, state={"step": number, "features": features,
                                                                     "read_as": read_as})
        if on_progress:
            on_progress(number, total, {"step": number, "pairs_read": sum(len(b) for b in batches[:number])})

    started = time.perf_counter()
    features = read_pairs(model, tokenizer.pad_token_id, packed, readout, batches, device, done=done,
                          features=features, on_batch=batch_read)
    margins = torch.tensor([pair.margin for pair in pairs])
    model.score, metrics = head_fit(features, margins, prompt_folds(pairs), config.probe_l2)
    train_seconds = time.perf_counter() - started
    if on_progress:  # the job page shows numbers; the L2 table stays in the result's metrics
        on_progress(total, total, {"step": total, **{k: v for k, v in metrics.items() if k != "cv_by_l2"}})

    # The model's own scalar head is zeroed: a loader that does not know readout.safetensors
    # scores every response 0 instead of at random.
    scalar = nn.Linear(model.config.hidden_size, 1, bias=False)
    nn.init.zeros_(scalar.weight)
    probe_head, model.score = model.score, scalar
    final = output_dir / FINAL_DIR
    save_checkpoint(model.cpu().eval(), tokenizer, final,
                    {"kind": "reward_model", "config": config.to_dict(), "pairs": len(pairs), **(metadata or {})},
                    extra_files={READOUT_FILE: readout_bytes(probe_head, readout)})
    states_clear(output_dir / RESUME_DIR)
    return TrainResult(checkpoint=final, steps=total, pairs=len(pairs), resumed_from_step=done,
                       metrics={**metrics, "step": total, "layers": list(readout.layers),
                                "train_seconds": round(train_seconds, 2)})
