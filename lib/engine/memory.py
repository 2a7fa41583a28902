"""Which memory allocator serves this process's tensors, and the ones that can be preloaded.

PyTorch's CPU tensors come from ``malloc``. glibc's malloc serves a block above its mmap threshold
(dynamic, at most 32 MiB) with a fresh ``mmap`` and unmaps it on ``free``, so a training step that
allocates and frees the same large activations and gradients every step (``[batch x T x J, C]``,
11-34 MB each at the synthetic_wild size) page-faults all of them in anew each step: about 200,000
faults per step there, which the profiler charges to the first op that writes each block (an
addmm copying its bias, autograd's stack of the ``qkv`` gradient), so those look slow. tcmalloc
(gperftools) keeps freed blocks for reuse; preloaded with ``LD_PRELOAD`` it removes the faults:
1.14x on the isolated synthetic_wild-size step, about 1.05x in a real training run
(docs/benchmarks.md, "Memory allocator"). Keeping glibc's freed memory with ``mallopt`` instead
was measured too and is not used: it helps less and its heap grows step after step (aligned
requests do not fit the freed blocks).

The allocator is a process-wide choice made before Python starts, so Pose3D reports it (the
training log, ``tools/bench/benchmark.py``) and never changes it.
"""
from __future__ import annotations

import ctypes.util
import functools
import os

# allocator name -> (the library file name fragment it is recognised by, its ld.so name to preload)
PRELOADABLE = {
    "tcmalloc": ("libtcmalloc", "tcmalloc_minimal"),
    "jemalloc": ("libjemalloc", "jemalloc"),
}
SYSTEM = "system malloc"


def allocator(maps: str = "/proc/self/maps") -> str:
    """``tcmalloc`` or ``jemalloc`` when one is loaded into this process (preloaded), else
    :data:`SYSTEM` (also where ``/proc/self/maps`` does not exist)."""
    try:
        with open(maps) as f:
            loaded = {os.path.basename(line.split()[-1]) for line in f if "/" in line}
    except OSError:
        return SYSTEM
    for name, (fragment, _) in PRELOADABLE.items():
        if any(lib.startswith(fragment) for lib in loaded):
            return name
    return SYSTEM


@functools.lru_cache(maxsize=None)
def preload_names() -> dict[str, str]:
    """The installed allocators' library names as ``LD_PRELOAD`` takes them (found through
    ldconfig: ``{'tcmalloc': 'libtcmalloc_minimal.so.4'}`` with Debian's libtcmalloc-minimal4).
    Looked up once per process (every training prints it); the mapping is shared, do not modify it."""
    found = {name: ctypes.util.find_library(lib) for name, (_, lib) in PRELOADABLE.items()}
    return {name: path for name, path in found.items() if path}


def describe() -> str:
    """One line for the training log: the allocator and, for the system one, what to preload."""
    name = allocator()
    if name != SYSTEM:
        return f"memory allocator: {name} (preloaded)"
    hint = preload_names().get("tcmalloc")
    how = f"LD_PRELOAD={hint}" if hint else "install tcmalloc (Debian: libtcmalloc-minimal4) and preload it"
    return f"memory allocator: {SYSTEM} (tcmalloc removes its page faults: {how}; docs/train.md)"
