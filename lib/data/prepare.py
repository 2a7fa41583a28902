"""Turn a source pickle into clip folders, and make sure a config's data exists.

``convert_source_to_clips`` is what ``tools/convert_h36m_mixste_style.py`` runs.
``ensure_clips`` is called by the training scripts: it uses existing clip folders as they are
(MotionBERT/EHGFormer folders included), converts the source pickle when the clips are missing,
and, for configs that name a ``synthetic_data`` size (the quick start), first generates the
synthetic H36M-format source file when it is missing.
"""
from __future__ import annotations

import os
import time

from lib.data.clip_store import clip_files, is_complete, write_meta, write_pickle_clips
from lib.data.h36m import SPLITS, DataError, DataReaderH36M


def clip_spec(source_path: str, frames: int, stride: int, tds: int) -> dict:
    """Settings that determine the clips (the source file is identified by size and mtime)."""
    st = os.stat(source_path)
    return {"source": os.path.abspath(source_path), "source_bytes": st.st_size,
            "source_mtime": int(st.st_mtime), "frames": frames, "train_stride": stride,
            "test_stride": frames, "tds": tds}


def convert_source_to_clips(dt_root: str, dt_file: str, out_dir: str, frames: int = 243,
                            stride: int = 81, tds: int = 2, force: bool = False) -> dict:
    """Slice the source into ``<out_dir>/{train,test}/%08d.pkl``; returns ``{split: num_clips}``.

    Idempotent: when ``out_dir`` already holds the clips of the same source and settings it
    does nothing; with other settings the old clips are replaced.
    """
    source_path = os.path.join(dt_root, dt_file)
    reader = DataReaderH36M(frames, tds, stride, frames, dt_root, dt_file)
    spec = clip_spec(source_path, frames, stride, tds)
    if not force and is_complete(out_dir, spec):
        counts = {s: len(clip_files(os.path.join(out_dir, s))) for s in SPLITS}
        print(f"Clips in {out_dir} are up to date ({counts['train']} train, {counts['test']} test).")
        return counts
    counts = {}
    for split in SPLITS:
        inputs, labels = reader.get_sliced_data(split)
        write_pickle_clips(os.path.join(out_dir, split), inputs, labels, desc=f"{split} clips")
        counts[split] = len(inputs)
    write_meta(out_dir, {"spec": spec, "num_clips": counts})
    return counts


def ensure_clips(cfg) -> None:
    """Make the clips the config trains on, if they are not there yet (see module docstring)."""
    folders = [os.path.join(cfg.data_root, subset) for subset in cfg.subset_list]
    if all(clip_files(os.path.join(folder, split)) for folder in folders for split in SPLITS):
        return
    ensure_source(cfg)
    for folder in folders:
        print(f"Slicing {os.path.join(cfg.dt_root, cfg.dt_file)} into clips under {folder} ...")
        convert_source_to_clips(cfg.dt_root, cfg.dt_file, folder, cfg.clip_len,
                                cfg.data_stride, cfg.sample_stride)


def ensure_source(cfg) -> str:
    """Path of the config's source pickle; generate it if the config asks for synthetic data."""
    path = os.path.join(cfg.dt_root, cfg.dt_file)
    if os.path.isfile(path):
        return path
    if not cfg.get("synthetic_data"):
        DataReaderH36M(dt_root=cfg.dt_root, dt_file=cfg.dt_file)  # raises the helpful DataError
        raise DataError(f"missing {path}")
    from lib.data.synthetic import write_synthetic_h36m
    print(f"{path} not found: generating synthetic H36M-format data (size '{cfg.synthetic_data}') ...")
    t0 = time.time()
    write_synthetic_h36m(path, seed=0, size=cfg.synthetic_data)
    print(f"  done in {time.time() - t0:.1f} s")
    return path
