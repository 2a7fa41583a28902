"""lib/engine/memory.py: which allocator a process runs, and that a preloaded tcmalloc reuses a
freed large block where the system malloc maps it anew (page faults counted, not timed)."""
import os
import subprocess
import sys
import textwrap

import pytest

from lib.engine.memory import SYSTEM, allocator, preload_names

GLIBC = "7f0000000000-7f0000021000 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n"


@pytest.mark.parametrize("lines, expected", [
    (GLIBC, SYSTEM),
    (GLIBC + "7f1000000000-7f1000030000 r-xp 00000000 08:01 2 /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4.5.10\n",
     "tcmalloc"),
    (GLIBC + "7f1000000000-7f1000030000 r-xp 00000000 08:01 2 /opt/conda/lib/libjemalloc.so.2\n", "jemalloc"),
    (GLIBC + "7f1000000000-7f1000030000 rw-p 00000000 00:00 0 \n", SYSTEM),        # anonymous mapping
])
def test_allocator_is_read_from_the_loaded_libraries(tmp_path, lines, expected):
    maps = tmp_path / "maps"
    maps.write_text(lines)
    assert allocator(str(maps)) == expected
    assert allocator(str(tmp_path / "missing")) == SYSTEM


def run_python(script: str, preload: str | None) -> str:
    """stdout of ``python -c script`` (stripped), with ``preload`` as the only LD_PRELOAD, or none."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update({"LD_PRELOAD": preload} if preload else {})
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env=env).stdout.strip()


# A 64 MiB block: above glibc's largest dynamic mmap threshold (32 MiB), so the system malloc maps
# every such allocation anew and faults it in page by page.
SCRIPT = textwrap.dedent("""
    import resource, torch
    from lib.engine.memory import allocator
    for _ in range(3):
        torch.empty(16 * 2 ** 20).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(16 * 2 ** 20).fill_(1.0)
    print(allocator(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


@pytest.mark.skipif("tcmalloc" not in preload_names(), reason="tcmalloc is not installed (libtcmalloc-minimal4)")
def test_preloaded_tcmalloc_reuses_freed_blocks():
    pages = 64 * 2 ** 20 // 4096

    def run(preload):
        name, faults = run_python(SCRIPT, preload).rsplit(" ", 1)
        return name, int(faults)
    assert run(None)[0] == SYSTEM and run(None)[1] > pages // 2
    name, faults = run(preload_names()["tcmalloc"])
    assert name == "tcmalloc" and faults < pages // 100


SAME = textwrap.dedent("""
    import hashlib, torch
    from tools.bench.benchmark import STEP_SHAPES, shape_model, train_step_fn
    model, batch = shape_model({**STEP_SHAPES["quickstart"], "batch": 2}, torch.device("cpu"))
    step = train_step_fn(model, batch)
    for _ in range(2):
        step()
    print(hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest())
""")


@pytest.mark.skipif("tcmalloc" not in preload_names(), reason="tcmalloc is not installed (libtcmalloc-minimal4)")
def test_the_allocator_does_not_change_what_training_computes():
    hashes = {run_python(SAME, preload) for preload in (None, preload_names()["tcmalloc"])}
    assert len(hashes) == 1
