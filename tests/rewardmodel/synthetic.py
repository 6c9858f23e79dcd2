"""Separable synthetic preference pairs and a training run a subprocess can kill mid-way."""

import os
import signal
import sys
from pathlib import Path

from core.heldout import prompt_key
from rewardmodel.config import RewardModelConfig
from rewardmodel.data import TrainingPair

TOPICS = ["tea", "rivers", "chess", "bread", "planets", "knots", "bees", "glass", "maps", "clocks"]


def separable_pairs(count, offset=0):
    """The chosen answer is a polite, on-topic sentence; the rejected one a curt refusal."""
    pairs = []
    for i in range(offset, offset + count):
        topic = TOPICS[i % len(TOPICS)]
        context = [{"role": "user", "content": f"Question {i}: tell me something about {topic}."}]
        pairs.append(
            TrainingPair(
                context=context,
                chosen=f"Gladly! Here is a useful fact about {topic}, explained step by step.",
                rejected="No.",
                margin=(i % 3) / 3,
                strength=["negligibly_better", "slightly_better", "better"][i % 3],
                prompt_key=prompt_key(context),
            )
        )
    return pairs


def resume_config(**overrides):
    values = dict(learning_rate=3e-4, batch_size=4, gradient_accumulation_steps=2,
                  max_length=64, checkpoint_every=3, min_warmup_steps=2)
    return RewardModelConfig(**{**values, **overrides})


if __name__ == "__main__":
    # python -m tests.rewardmodel.synthetic BASE OUT KILL_AT_STEP [in-checkpoint]
    import torch

    from rewardmodel import training

    base, out, kill_at, where = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(1)

    def kill_while_writing(obj, path):
        # Half a checkpoint on disk, then the process dies as under SIGKILL from outside.
        Path(path).write_bytes(b"partial")
        os.kill(os.getpid(), signal.SIGKILL)

    def on_progress(step, total, metrics):
        if where == "after-step" and step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if where == "in-checkpoint" and step == kill_at - 1:
            training.torch.save = kill_while_writing

    training.train(resume_config(), separable_pairs(96), out, base_path=base, on_progress=on_progress)
    sys.exit(3)  # not killed: the test fails on this exit code
