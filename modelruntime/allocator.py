"""Keep freed memory in the process: training steps stop page-faulting their gradients in.

glibc hands every allocation over 32 MiB (a gradient of the 113 MiB embedding, the AdamW step's
temporaries) straight to mmap and returns it to the kernel on free, so each training step maps
its large tensors afresh: about 175,000 page faults per PPO update of SmolLM2-135M here, up to
~0.5 s. Serving every allocation from the heap and not trimming it keeps those pages: after a few
steps the heap settles and a step faults none in. PyTorch's CPU tuning guide gives the same
advice (with jemalloc or tcmalloc). The cost: a training process keeps most of its peak heap
until it exits, which a worker that trains again would reach again anyway.
MARGIN_KEEP_FREED_MEMORY=0 switches it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
_applied = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc once per process for training; False where it does not apply."""
    global _applied
    if _applied:
        return True
    if os.environ.get("MARGIN_KEEP_FREED_MEMORY", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl without mallopt)
        return False
    _applied = bool(
        mallopt(M_MMAP_MAX, 0)  # large blocks from the heap too, so they can be reused
        and mallopt(M_TRIM_THRESHOLD, 2**30)  # keep up to 1 GiB of freed heap instead of returning it
    )
    return _applied
