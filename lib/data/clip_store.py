"""Clip folders on disk, in MotionBERT's layout: ``<dir>/{train,test}/%08d.pkl``.

Each file is a pickled dict ``{'data_input': [T,17,3] float32, 'data_label': [T,17,3] float32}``,
so data folders made by MotionBERT or EHGFormer work unchanged, and ours work with theirs.
A ``meta.json`` beside the split folders records how the clips were made; the converter uses it
to skip work that is already done (idempotence) and to replace clips made with other settings.
"""
from __future__ import annotations

import glob
import json
import os
import pickle

import numpy as np
from tqdm import tqdm

META_FILE = "meta.json"


def clip_files(split_dir: str) -> list[str]:
    """Sorted ``%08d.pkl`` clip files of one split folder."""
    return sorted(glob.glob(os.path.join(split_dir, "*.pkl")))


def read_meta(out_dir: str) -> dict | None:
    path = os.path.join(out_dir, META_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def is_complete(out_dir: str, spec: dict) -> bool:
    """True when ``out_dir`` already holds exactly the clips made with settings ``spec``."""
    meta = read_meta(out_dir)
    if not meta or meta.get("spec") != spec:
        return False
    return all(len(clip_files(os.path.join(out_dir, split))) == count
               for split, count in meta["num_clips"].items())


def write_pickle_clips(split_dir: str, inputs: np.ndarray, labels: np.ndarray, desc: str = "") -> None:
    """Write one ``%08d.pkl`` per clip (stale files from an earlier run are removed first)."""
    os.makedirs(split_dir, exist_ok=True)
    for old in clip_files(split_dir):
        os.remove(old)
    for i in tqdm(range(len(inputs)), desc=desc or split_dir, unit="clip", mininterval=1.0):
        sample = {"data_input": inputs[i].astype(np.float32), "data_label": labels[i].astype(np.float32)}
        with open(os.path.join(split_dir, f"{i:08d}.pkl"), "wb") as f:
            pickle.dump(sample, f, protocol=4)


def write_meta(out_dir: str, meta: dict) -> None:
    tmp = os.path.join(out_dir, META_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    os.replace(tmp, os.path.join(out_dir, META_FILE))
