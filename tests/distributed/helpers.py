"""Running the real torchrun entry point from a test: a spec for the tiny model, the rank pids,
and a check that no process of a run is left."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from modelruntime.launch import RANKS_DIR, distributed_run, rank_pids, spec_write


def rm_spec_run(config, pairs, output_dir: Path, base: Path, *, nproc=2, on_event=None, cancel=None,
                max_restarts=0) -> dict:
    workdir = Path(output_dir) / "distributed"
    entry_args = spec_write(workdir, spec={"kind": "reward_model", "config": config.to_dict(),
                                           "output_dir": str(output_dir), "base_path": str(base), "metadata": {}},
                            data=[asdict(pair) for pair in pairs])
    return distributed_run(entry_args=entry_args, nproc=nproc, workdir=workdir, on_event=on_event or (lambda e: None),
                           cancel_requested=cancel or (lambda: False), max_restarts=max_restarts)


def ranks_of(output_dir: Path) -> list[int]:
    return rank_pids(Path(output_dir) / "distributed" / RANKS_DIR)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.is_file() and status.read_text().split(")")[-1].split()[0] == "Z")  # a zombie is gone


def rm_scores(checkpoint, pairs) -> torch.Tensor:
    from rewardmodel.evaluation import score_pairs
    from rewardmodel.modeling import load_for_scoring

    model, tokenizer = load_for_scoring(checkpoint)
    return torch.tensor(score_pairs(model, tokenizer, pairs, 64))


def processes_running(needle: str) -> list[int]:
    """Pids whose command line contains `needle` (a run's spec path names torchrun and its ranks)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(int(proc.name))
        except OSError:
            continue
    return [pid for pid in found if alive(pid) and pid != os.getpid()]


def wait_for_step(events: Path, step: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events.is_file() and f'"step": {step},' in events.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{events} never reached step {step}")


if __name__ == "__main__":
    # python -m tests.distributed.helpers BASE OUT: a worker running a 2-rank job, for a test to kill.
    from tests.distributed.test_reward_model import CONFIG, PAIRS

    rm_spec_run(CONFIG, PAIRS, Path(sys.argv[2]), Path(sys.argv[1]))
