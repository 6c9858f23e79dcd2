"""Training processes keep freed memory: after a few steps, a training step's large tensors no
longer fault their pages in (glibc only; the switch turns it off)."""

import os
import subprocess
import sys

import pytest

PROBE = """
import resource, torch
from modelruntime.allocator import keep_freed_memory
applied = keep_freed_memory()

def step():  # a training step's large tensors: gradients (112 MiB like SmolLM2's embedding) and temporaries
    grads = [torch.ones(n) for n in (28 * 2**20, 2**20, 3 * 2**20, 2**21)]
    temporary = torch.ones(16 * 2**20)

for _ in range(5):  # the heap settles in a few steps
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def probe(switch: str) -> tuple[bool, int]:
    env = {**os.environ, "MARGIN_KEEP_FREED_MEMORY": switch}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_training_steps_stop_faulting_their_large_tensors_in_once_memory_is_kept():
    kept_applied, kept_faults = probe("1")
    off_applied, off_faults = probe("0")

    assert kept_applied and not off_applied
    assert off_faults >= 5 * 40_000  # ~180 MiB = 46,000 pages of 4 KiB, mapped afresh each step
    assert kept_faults < 1_000
