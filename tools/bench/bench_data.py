"""Data-loading benchmark: per-clip pickles (MotionBERT's layout) vs the memory-mapped clip store.

    python tools/bench/bench_data.py                        # 1000 clips, batch 32, workers 0 and 2
    python tools/bench/bench_data.py --clips 2000 --workers 0 2 4 --json bench_data.json

Makes a synthetic H36M-format source file (``lib/data/synthetic/``), slices it with the real
converter into both stores (243-frame clips), then iterates a shuffled DataLoader over the same
``--clips`` clips from each store, the way training does, and prints clips/s and the ratio.
"warm" rows read files that are in the page cache
(they were just written): decoding, copies and Python overhead. "cold" rows (workers 0) evict the
store's files from the page cache before every epoch, so they are read from disk.
``run_data_benchmark`` is importable (e.g. from ``tools/bench/benchmark.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


import torch
from torch.utils.data import DataLoader, Subset

from lib.data.clip_store import array_paths
from lib.data.dataset import ArrayClipDataset, MotionDataset3D
from lib.data.prepare import convert_source_to_clips
from lib.data.synthetic import write_synthetic_h36m

FRAMES, STRIDE, TDS = 243, 27, 1          # 'small' synthetic videos give ~1800 train clips


def make_clips(work_dir: str, num_clips: int) -> str:
    """Source file + both stores under ``work_dir``; returns the data root (subset 'BENCH')."""
    source = os.path.join(work_dir, "source.pkl")
    if not os.path.isfile(source):
        write_synthetic_h36m(source, seed=0, size="small")
    out = os.path.join(work_dir, "clips", "BENCH")
    counts = convert_source_to_clips(work_dir, "source.pkl", out, FRAMES, STRIDE, TDS, stores="both")
    if counts["train"] < num_clips:
        raise SystemExit(f"only {counts['train']} train clips; ask for --clips <= that")
    return os.path.join(work_dir, "clips")


def make_loader(dataset, batch_size: int, workers: int) -> DataLoader:
    """A DataLoader as training builds it (shuffled, seeded, persistent workers, prefetch 4)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers else None,
                      generator=torch.Generator().manual_seed(0))


def time_epoch(loader: DataLoader) -> float:
    start = time.perf_counter()
    for x, y in loader:
        assert x.shape[1:] == (FRAMES, 17, 3) and y.shape == x.shape
    return time.perf_counter() - start


def unwrap(dataset):
    return dataset.dataset if isinstance(dataset, Subset) else dataset


def evict(stores: dict, store: str) -> None:
    """Drop one store's files (only those) from the page cache. Every Dataset's memory map is
    closed first: pages mapped by any process cannot be evicted."""
    for dataset in map(unwrap, stores.values()):
        if isinstance(dataset, ArrayClipDataset):
            dataset._arrays = None
    inner = unwrap(stores[store])
    if isinstance(inner, ArrayClipDataset):
        paths = [array_paths(folder, inner.split)[0] for folder in inner.folders]
    else:
        paths = inner.files
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def run_data_benchmark(num_clips: int = 1000, batch_size: int = 32, workers=(0, 2), epochs: int = 5,
                       work_dir: str | None = None, cold: bool = True) -> list[dict]:
    """One row per (store, workers, cache): epoch seconds and clips/s, and the speed-up over pickles.

    The stores' epochs are interleaved (pkl, npy, pkl, npy, ...) so that other load on the
    machine hits all of them alike; a row's epoch time is the fastest epoch after the first.
    ``cold`` adds rows (workers 0) where each epoch starts with the store's files evicted from
    the page cache (``posix_fadvise(DONTNEED)``), i.e. read from disk.
    """
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = make_clips(work_dir or tmp, num_clips)
        keep = list(range(num_clips))
        stores = {"pkl": Subset(MotionDataset3D(root, ["BENCH"], "train"), keep),
                  "npy": Subset(ArrayClipDataset(root, ["BENCH"], "train"), keep)}
        settings = [(w, "warm") for w in workers] + ([(0, "cold")] if cold and hasattr(os, "posix_fadvise") else [])
        rows = []
        for num_workers, cache in settings:
            loaders = {store: make_loader(ds, batch_size, num_workers) for store, ds in stores.items()}
            times = {store: [] for store in stores}
            for _ in range(max(epochs, 2)):
                for store, loader in loaders.items():
                    if cache == "cold":
                        evict(stores, store)
                    times[store].append(time_epoch(loader))
            for store, (first, *later) in times.items():
                rows.append({"store": store, "workers": num_workers, "cache": cache, "clips": num_clips,
                             "batch_size": batch_size, "first_epoch_s": first, "epoch_s": min(later),
                             "clips_per_s": num_clips / min(later)})
            del loaders
    by_key = {(r["store"], r["workers"], r["cache"]): r for r in rows}
    for row in rows:
        row["speedup_vs_pkl"] = row["clips_per_s"] / by_key[("pkl", row["workers"], row["cache"])]["clips_per_s"]
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = ["| store | workers | page cache | epoch (s) | first epoch (s) | clips/s | vs pkl |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['store']} | {r['workers']} | {r['cache']} | {r['epoch_s']:.3f} | {r['first_epoch_s']:.3f} | "
                     f"{r['clips_per_s']:,.0f} | {r['speedup_vs_pkl']:.1f}x |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=1000, help="clips per epoch (the first N train clips)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers values")
    p.add_argument("--epochs", type=int, default=5, help="epochs per setting; the fastest after the first counts")
    p.add_argument("--work_dir", default=None, help="keep source and clips here (default: a temp folder)")
    p.add_argument("--no_cold", action="store_true", help="skip the cold page-cache rows")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rows = run_data_benchmark(args.clips, args.batch_size, args.workers, args.epochs, args.work_dir,
                              cold=not args.no_cold)
    print(f"\nData loading, {args.clips} clips of {FRAMES} frames, batch {args.batch_size}, "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs:\n")
    print(format_rows(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
