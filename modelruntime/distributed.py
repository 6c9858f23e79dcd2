"""The torch.distributed pieces every multi-process trainer (RM, SFT, PPO) shares. No Django.

- `process_group_start`: NCCL on CUDA (one device per local rank), gloo on CPU.
- `model_shard`: FSDP2, `fully_shard` on each decoder layer, then on the whole model, so one
  layer's full weights exist at a time (PyTorch's FSDP2 tutorial does the same).
- `rank_share`: this rank's part of a global micro-batch. Every rank builds the same global
  batches in the same order as the one-process run, and takes every world-th pair of each.
- `gradient_scale`: FSDP2 averages gradients over ranks; a rank's loss is multiplied by the world
  size so the average is the one-process sum over the global batch.
- `metrics_sum`: all-reduce of per-rank sums (loss x pairs, correct, counts), for rank 0's report.
- `sharded_save` / `sharded_load`: model and optimizer through torch.distributed.checkpoint (DCP),
  one file per rank, written by modelruntime/checkpoint.py's folder_write_atomic (rank 0 takes the
  lock, names the temporary folder, and writes the marker and renames after a barrier). DCP
  reshards on load, so a state saved by N processes resumes with M, one included.
- `full_state_dict`: the whole model gathered to rank 0 for the plain safetensors checkpoint.
- `module_shard`, `gather_buffers_init`: PPO's value head as its own unit, and the gathered-weight
  buffers made before PPO's first rollout runs under inference mode.

Outside a process group every function is the one-process identity: rank 0 of 1.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
import torch.distributed as dist

from modelruntime.checkpoint import DONE_MARKER, STEP_PREFIX, folder_write_atomic

DCP_METADATA = ".metadata"  # the file DCP's coordinator writes: a folder holding it is sharded
EXTRA_FILE = "extra.pt"  # step, schedule, running metrics: the same on every rank, saved by rank 0


def process_group_start() -> torch.device:
    """Join the group torchrun set up (env://); returns this rank's device."""
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
        return torch.device("cuda", local_rank)
    dist.init_process_group("gloo")
    return torch.device("cpu")


def process_group_end() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def decoder_layers(model) -> list[torch.nn.Module]:
    """The transformer blocks (LlamaDecoderLayer and its kin), wherever a wrapper put them."""
    return [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]


def model_shard(model):
    """FSDP2: each decoder layer its own unit; then the decoder (embeddings, final norm) and each
    head, so callers may run `model.model(...)` and `model.score(...)` apart (modelruntime/packing.py
    does); the root last. A head tied to the embeddings stays with them on the root, and such a
    model must be called through its root forward."""
    from torch.distributed.fsdp import fully_shard

    layers = decoder_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no decoder layers to shard")
    for layer in layers:
        fully_shard(layer)
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    input_ = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    tied = output is not None and input_ is not None and output.weight is input_.weight
    if not tied:
        in_layers = {id(p) for layer in layers for p in layer.parameters()}
        chain = [m for m in model.modules() if any(child is layers[0] for child in m.modules())]  # root .. layer
        decoder = chain[-3] if len(chain) >= 3 else model  # root, ..., LlamaModel, its ModuleList, layer
        if decoder is not model:
            fully_shard(decoder)  # embeddings and final norm
            in_layers |= {id(p) for p in decoder.parameters()}
        for module in model.modules():  # heads: modules holding parameters of their own outside the above
            own = [p for p in module.parameters(recurse=False) if id(p) not in in_layers]
            if own and module is not model:
                fully_shard(module)
                in_layers |= {id(p) for p in module.parameters()}
    fully_shard(model)
    return model


def gather_buffers_init(*models) -> None:
    """Gather every FSDP unit's weights once, outside inference mode, and free them again.

    FSDP2 allocates a unit's gathered-weights buffer at its first all-gather and reuses it; if
    that first gather runs under torch.inference_mode (PPO's rollouts sample first), the buffer
    is an inference tensor and the training forward after it fails to copy into it.
    """
    from torch.distributed.fsdp import FSDPModule

    for model in models:
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.unshard()
                module.reshard()


def module_shard(module):
    """A small trainable module beside the model (PPO's value head) sharded on its own, so the
    optimizer sees sharded parameters only."""
    from torch.distributed.fsdp import fully_shard

    fully_shard(module)
    return module


def rank_share(indices: list, rank_: int | None = None, world: int | None = None) -> list:
    """This rank's part of one global micro-batch (every world-th item: lengths stay balanced)."""
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    return indices[rank_::world]


def gradient_scale() -> int:
    """FSDP2 reduce-scatters the mean of the ranks' gradients; times world size it is their sum."""
    return world_size()


def metrics_sum(values: list[float]) -> list[float]:
    """Element-wise sum over ranks (float64: counts stay exact)."""
    if not dist.is_initialized():
        return list(values)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def sharded_dirs(folder: Path | str) -> list[Path]:
    """Complete states in `folder` (checkpoint.py's layout: step-NNNNNNN/ with its marker), oldest first."""
    return sorted(p for p in Path(folder).glob(f"{STEP_PREFIX}*") if (p / DONE_MARKER).is_file())


def is_sharded(path: Path) -> bool:
    return (Path(path) / DCP_METADATA).is_file()


def sharded_save(folder: Path | str, *, step: int, model, optimizer, extra: dict, keep: int = 1) -> Path:
    """Every rank's shard of model + optimizer as the state of `step`; `extra` from rank 0."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    folder = Path(folder)
    dest = folder / f"{STEP_PREFIX}{step:07d}"
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}

    def write(tmp: Path | None):
        # Rank 0 made the temporary folder (under folder_write_atomic's lock); everyone writes there.
        names = [str(tmp) if tmp else None]
        if dist.is_initialized():
            dist.broadcast_object_list(names, src=0)
        tmp = Path(names[0])
        dcp.save(state, checkpoint_id=tmp)
        if rank() == 0:
            torch.save(extra, tmp / EXTRA_FILE)
        barrier()  # every shard is on disk before rank 0 writes the marker

    if rank() == 0:
        folder_write_atomic(dest, write, marker_name=DONE_MARKER,
                            marker={"step": step, "format": "torch.distributed.checkpoint",
                                    "processes": world_size()})
        for old in sharded_dirs(folder)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
            (folder / f".{old.name}.lock").unlink(missing_ok=True)
    else:
        write(None)
    barrier()  # nobody reads the folder before the rename
    return dest


def sharded_load(path: Path | str, *, model, optimizer) -> dict:
    """Load a state written by `sharded_save` (by any number of processes); returns its `extra`."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    path = Path(path)
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=path)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    return torch.load(path / EXTRA_FILE, map_location="cpu", weights_only=True)


def debris_clear(folder: Path | str) -> None:
    """Rank 0 drops temporary folders of a killed writer before anyone looks for a state."""
    if rank() == 0:
        for debris in Path(folder).glob(".*.tmp"):
            shutil.rmtree(debris, ignore_errors=True)
    barrier()


def full_state_dict(model) -> dict[str, torch.Tensor]:
    """The unsharded model state on rank 0's CPU (an empty dict on the other ranks)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if not dist.is_initialized():
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
