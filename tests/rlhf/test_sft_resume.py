"""Fine-tuning inside rejection sampling is resumable: a run killed mid-way (after a step, or while
writing a checkpoint) continues from its last complete state and ends with the same model."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modelruntime.modelstore import load_policy
from rlhf.config import RejectionSamplingConfig
from rlhf.rejection_sampling import rejection_sample

REPO = Path(__file__).resolve().parents[2]

PROMPTS = [[{"role": "user", "content": text}] for text in ("Hi", "What is a reward model?", "Name a colour.")]


def characters(conversations):
    return [float(len(c[-1]["content"])) for c in conversations]


def resume_config():
    # 3 kept samples x 2 epochs, one per step: 6 fine-tuning steps, a state every 2.
    return RejectionSamplingConfig(k=2, temperature=1.0, max_new_tokens=6, learning_rate=1e-3, epochs=2.0,
                                   batch_size=1, micro_batch_size=1, checkpoint_every=2)


def _run(model_dir, out, kill_at=0, where="none"):
    return subprocess.run(
        [sys.executable, "-m", "tests.rlhf.test_sft_resume", str(model_dir), str(out), str(kill_at), where],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )


@pytest.mark.parametrize("where", ["after-step", "in-checkpoint"])
def test_a_killed_fine_tuning_resumes_to_the_same_model(tiny_model_dir, tmp_path, where):
    whole = _run(tiny_model_dir, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = _run(tiny_model_dir, tmp_path / "killed", 5 if where == "after-step" else 4, where)
    assert killed.returncode == -9, killed.stderr[-2000:]

    torch.set_num_threads(1)  # as in the subprocesses: the same sums in the same order
    resumed = rejection_sample(resume_config(), tiny_model_dir, PROMPTS, characters, tmp_path / "killed")

    assert resumed.sft["resumed_from_step"] == (4 if where == "after-step" else 2)
    assert not (tmp_path / "killed-resume").exists()  # resume state is dropped once saved
    a, _ = load_policy(tmp_path / "whole", "cpu")
    b, _ = load_policy(resumed.checkpoint, "cpu")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4, msg=name)


if __name__ == "__main__":
    # python -m tests.rlhf.test_sft_resume MODEL OUT KILL_AT_STEP none|after-step|in-checkpoint
    model_dir, out, kill_at, where = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(1)

    def kill_while_writing(obj, path):
        Path(path).write_bytes(b"partial")  # half a checkpoint on disk, then death as under SIGKILL
        os.kill(os.getpid(), signal.SIGKILL)

    def on_progress(step, total, metrics=None, log_line=None):
        if not metrics or "loss/sft" not in metrics:
            return
        if where == "after-step" and step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if where == "in-checkpoint" and step == kill_at - 1:
            torch.save = kill_while_writing

    rejection_sample(resume_config(), model_dir, PROMPTS, characters, out, on_progress=on_progress)
    sys.exit(0 if where == "none" else 3)  # not killed: the test fails on this exit code
