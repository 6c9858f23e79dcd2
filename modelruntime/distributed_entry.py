"""One rank of a distributed training job: `python -m modelruntime.distributed_entry --spec S --events E`,
started by torchrun (modelruntime/launch.py documents the spec and the events). No Django here.

Joins the process group, reads the spec and its data, runs the trainer for the spec's kind, and on
rank 0 appends progress, log lines and the result to the events file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
from pathlib import Path

# kind -> the Django-free trainer `run(spec, data, *, device, on_progress, log) -> result dict` (JSON).
# Named, not imported: modelruntime sits below the apps (docs/architecture.md).
TRAINERS = {
    "reward_model": "rewardmodel.training:train_from_spec",
    "sft": "rlhf.sft:sft_from_spec",
    "ppo": "rlhf.ppo:ppo_from_spec",
}


class EventWriter:
    """Rank 0's side of the events file: one JSON object a line, flushed as written."""

    def __init__(self, path: Path | str | None):
        self.file = open(path, "a") if path else None  # noqa: SIM115 (open for the whole run)

    def write(self, event: dict) -> None:
        if self.file:
            self.file.write(json.dumps(event) + "\n")
            self.file.flush()

    def progress(self, step, total, metrics=None, log_line=None):
        self.write({"step": step, "total": total, "metrics": metrics or {}})
        if log_line:
            self.write({"log": log_line})

    def log(self, line: str) -> None:
        self.write({"log": line})


def trainer_for(kind: str):
    if kind not in TRAINERS:
        raise ValueError(f"spec kind {kind!r} is not one of {', '.join(TRAINERS)}")
    module, function = TRAINERS[kind].split(":")
    return getattr(importlib.import_module(module), function)


def spec_read(path: Path | str) -> tuple[dict, object]:
    path = Path(path)
    spec = json.loads(path.read_text())
    for key in ("kind", "config", "output_dir", "data"):
        if key not in spec:
            raise ValueError(f"{path}: the spec has no {key!r}")
    data = json.loads((path.parent / spec["data"]).read_text())
    return spec, data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="spec.json written by modelruntime.launch.spec_write")
    parser.add_argument("--events", default="", help="events file rank 0 appends to")
    args = parser.parse_args(argv)

    from modelruntime import distributed
    from modelruntime.launch import _prctl_death_signal

    _prctl_death_signal(signal.SIGKILL)  # torchrun killed outright: no rank outlives it
    ranks_dir = os.environ.get("MARGIN_RANKS_DIR")
    if ranks_dir:
        Path(ranks_dir, f"rank-{os.environ.get('RANK', 0)}.pid").write_text(str(os.getpid()))
    device = distributed.process_group_start()
    try:
        spec, data = spec_read(args.spec)
        events = EventWriter(args.events if distributed.rank() == 0 else None)
        result = trainer_for(spec["kind"])(spec, data, device=device, on_progress=events.progress, log=events.log)
        events.write({"result": result})
    finally:
        distributed.process_group_end()
    return 0


if __name__ == "__main__":
    sys.exit(main())
