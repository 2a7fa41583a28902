"""The validation split: training sequences held out to select the best checkpoint.

MotionBERT and EHGFormer keep as ``best_epoch.bin`` the epoch with the lowest *test* P1, which
makes the reported number optimistic. Pose3D holds out whole training *sequences* (every camera of a
subject/action/subaction together, so no motion is seen in training from another view) and
selects on them; the test set is scored for reporting only. ``select_on: test`` restores the
references' behaviour (no validation split, selection on the test protocol's P1).

Which sequences (config keys ``val_subjects``, ``val_fraction``):

* ``val_subjects: [S8]`` -- every sequence of these training subjects;
* otherwise ``ceil(val_fraction x number of training sequences)`` sequences, those with the
  smallest CRC32 of their id (``s_01_act_02_subact_01``): deterministic, independent of file
  order and spread over subjects and actions.

Each training clip's sequence is recorded in its clip folder's ``meta.json`` when the converter
slices it (:func:`stored_clip_sequences`), so training reads no source file to hold the
validation sequences out. A folder without that record (made by MotionBERT, EHGFormer or an
earlier Pose3D) is matched by slicing the source's train split with the config's settings,
exactly as the converter did (:func:`clip_sequences`).
"""
from __future__ import annotations

import math
import zlib

import numpy as np

import os

from lib.data.clip_store import read_meta
from lib.data.h36m import DataReaderH36M, sequence_id, split_clips
from lib.errors import ConfigError


def sequence_of(sources) -> np.ndarray:
    """Sequence ids (``s_09_act_05_subact_02``) of video ids (``..._ca_01``), vectorised."""
    unique, inverse = np.unique(np.asarray(sources, dtype=str), return_inverse=True)
    return np.array([sequence_id(u) for u in unique])[inverse.reshape(-1)]


def subject_of(sequence: str) -> str:
    """``'S9'`` for ``'s_09_act_05_subact_02'``."""
    return f"S{int(sequence.split('_')[1])}"


def validation_sequences(train_sources, cfg) -> set[str]:
    """The held-out sequences of the training split's video ids (module docstring)."""
    return held_out_sequences(sequence_of(np.unique(np.asarray(train_sources))), cfg)


def held_out_sequences(sequences, cfg) -> set[str]:
    """The held-out sequences among the training ``sequences`` (module docstring); empty for
    ``select_on: test``."""
    if cfg.select_on != "val":
        return set()
    sequences = sorted(set(np.asarray(sequences, dtype=str).tolist()))
    if cfg.val_subjects:
        wanted = {f"S{int(str(s).upper().lstrip('S'))}" for s in cfg.val_subjects}
        chosen = {q for q in sequences if subject_of(q) in wanted}
        if not chosen:
            raise ConfigError(f"val_subjects {list(cfg.val_subjects)}: no such subject in the training split "
                              f"(it has {sorted({subject_of(q) for q in sequences})})")
    else:
        count = math.ceil(float(cfg.val_fraction) * len(sequences))
        chosen = set(sorted(sequences, key=lambda q: (zlib.crc32(q.encode()), q))[:count])
    if len(chosen) == len(sequences):
        raise ConfigError(f"the validation split would take all {len(sequences)} training sequences; "
                          "lower val_fraction or name fewer val_subjects")
    return chosen


def clip_sequences(reader: DataReaderH36M, split: str) -> np.ndarray:
    """Sequence id of every clip of ``split``, in clip-folder order (``%08d.pkl`` i = clip i)."""
    return sequence_of(reader.strided(split, "source")[reader.clip_indices(split)[:, 0]])


def train_clip_sequences(reader: DataReaderH36M) -> np.ndarray:
    """Sequence id of every training clip, in clip-folder order."""
    return clip_sequences(reader, "train")


def stored_clip_sequences(cfg, split: str = "train") -> np.ndarray | None:
    """Sequence id of every clip of ``split`` over the config's clip folders (``subset_list``
    order, as the Dataset), from their ``meta.json``; None when a folder has no such record."""
    found = []
    for subset in cfg.subset_list:
        meta = read_meta(os.path.join(cfg.data_root, subset)) or {}
        clips = (meta.get("clips") or {}).get(split)
        if not isinstance(clips, dict) or not isinstance(clips.get("sequence"), list):
            return None
        found += clips["sequence"]
    return np.asarray(found, dtype=str)


def validation_clip_indices(reader: DataReaderH36M, held_out: set[str]) -> np.ndarray:
    """Frame indices ``[C, clip_len]`` of non-overlapping clips of the held-out sequences
    (the test protocol's slicing applied to them)."""
    sources = reader.strided("train", "source")
    idx = split_clips(sources, reader.n_frames, reader.n_frames)
    keep = np.isin(sequence_of(sources[idx[:, 0]]), sorted(held_out))
    return idx[keep]
