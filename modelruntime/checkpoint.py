"""The one checkpoint writer and reader: model-store checkpoints and the resumable training states
of reward-model training, SFT and PPO.

Writing is always the same three moves: fill a temporary folder beside the destination, write the
completion marker last, rename the folder into place. A reader sees a complete folder or none; a
temporary folder found later is debris of a killed writer and goes. Writers of one destination
take turns under a file lock.

A resumable state is a folder of such checkpoints (`<output>/resume`), one per saved step, the
last `keep` kept:

    <folder>/step-0000012/state.pt       torch.save of tensors and plain Python data
    <folder>/step-0000012/complete.json  {"step": 12}, written last

States load with `torch.load(weights_only=True)`: tensors, dicts, lists, numbers and strings
only, so a file dropped into the model store cannot run code in a worker (issue 15, hardening).
Optimizer and scheduler state dicts are such data; RNG states are tensors.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch
from filelock import FileLock

RESUME_DIR = "resume"  # a run's resumable states, inside its output folder
STATE_FILE = "state.pt"
DONE_MARKER = "complete.json"
STEP_PREFIX = "step-"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, or holding more than tensors and plain data."""


def folder_write_atomic(dest: Path | str, write: Callable[[Path], None], *, marker_name: str, marker: dict) -> Path:
    """`write(tmp)` fills a temporary folder; the marker goes in last and the folder replaces `dest`."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Writers of the same destination take turns, so the swap below never races and any
    # temporary folder found while holding the lock belongs to a writer that died.
    with FileLock(dest.parent / f".{dest.name}.lock"):
        for leftover in dest.parent.glob(f".{dest.name}.*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
        try:
            write(tmp)
            (tmp / marker_name).write_text(json.dumps(marker, indent=2, sort_keys=True))
            _swap_into_place(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


def _swap_into_place(tmp: Path, dest: Path) -> None:
    # rename() cannot replace a non-empty folder, so the old one steps aside first; a reader in
    # that instant finds no checkpoint, never a half-written one.
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
        os.replace(dest, old / "old")
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)


# --- resumable training states --------------------------------------------------------------------


def state_save(folder: Path | str, *, step: int, state: dict, keep: int = 1) -> Path:
    """Save `state` as the checkpoint of `step` in `folder`, then drop all but the newest `keep`."""
    folder = Path(folder)
    dest = folder / f"{STEP_PREFIX}{step:07d}"
    folder_write_atomic(dest, lambda tmp: torch.save(state, tmp / STATE_FILE),
                        marker_name=DONE_MARKER, marker={"step": step})
    for old in _complete_states(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
        (folder / f".{old.name}.lock").unlink(missing_ok=True)
    return dest


def state_load(folder: Path | str, *, map_location="cpu") -> dict | None:
    """The newest complete state in `folder`, or None; debris of a killed writer is removed.

    Raises CheckpointError for a file holding anything but tensors and plain data: nothing in it runs.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    for debris in folder.glob(".*.tmp"):
        shutil.rmtree(debris, ignore_errors=True)
    found = _complete_states(folder)
    if not found:
        return None
    path = found[-1] / STATE_FILE
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path} was refused: a training state holds only tensors and plain data "
                              f"({str(error).splitlines()[0]})") from error


def states_clear(folder: Path | str) -> None:
    """Drop a finished run's resumable states."""
    shutil.rmtree(folder, ignore_errors=True)


def config_check_same(*, saved: dict, current: dict, path: Path, may_change=frozenset()) -> None:
    """Resume only the run that was saved: another config on the same name is refused, clearly."""
    changed = sorted(k for k in saved.keys() & current.keys() if k not in may_change and saved[k] != current[k])
    if changed:
        details = ", ".join(f"{k}={saved[k]!r} there, {current[k]!r} now" for k in changed)
        raise ValueError(f"{path} holds a run with other settings ({details}); resume it with "
                         "those settings, or start this one under another name")


def _complete_states(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob(f"{STEP_PREFIX}*") if (p / DONE_MARKER).is_file())


def trainable_weights(module) -> dict[str, torch.Tensor]:
    """The parameters that train (all, the top layers, or LoRA adapters), by name, on the CPU."""
    return {name: p.detach().cpu() for name, p in module.named_parameters() if p.requires_grad}


def trainable_weights_restore(module, weights: dict[str, torch.Tensor]) -> None:
    params = dict(module.named_parameters())
    unknown = sorted(set(weights) - set(params))
    if unknown:
        raise CheckpointError(f"the saved state does not fit this model (e.g. {unknown[0]})")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)


def rng_state() -> dict:
    """The RNG states a resumed run must continue from, as tensors (loadable with weights_only)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def rng_state_restore(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
