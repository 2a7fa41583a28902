"""Turn a source pickle into clip stores, and make sure a config's data exists.

``convert_source_to_clips`` is what ``tools/convert_h36m_mixste_style.py`` runs; it writes the
per-clip pickles (MotionBERT's layout), the fast memory-mapped store, or both (see
``lib/data/clip_store.py``). ``ensure_clips`` is called by the training scripts: it uses existing
clip folders as they are (MotionBERT/EHGFormer folders included), converts the source pickle
when the clips are missing, and, for configs that name a ``synthetic_data`` size (the quick
start), first generates the synthetic H36M-format source file when it is missing.

An existing clip folder is checked against the config before it is used
(:func:`check_clip_folder`): its ``meta.json`` (written by the converter) must record the
config's ``clip_len``, ``data_stride`` and ``sample_stride``, else a :class:`DataError` names the
values that differ, the converter command that re-slices the folder and the ``--set`` values
that would match it. A folder without ``meta.json`` (made by MotionBERT or EHGFormer) is used
with one printed line saying what is assumed; only its clip length can be (and is) checked.
"""
from __future__ import annotations

import os
import time

import numpy as np

from lib.data.clip_store import (CONVERTER, STORES, array_paths, array_store_valid, clip_files, meta_stores,
                                 open_array_clips, pack_pickle_clips, read_array_header, read_meta,
                                 read_pickle_clip,
                                 remove_array_clips, remove_pickle_clips, store_is_complete,
                                 write_array_clips, write_meta, write_pickle_clips)
from lib.data.h36m import SPLITS, DataReaderH36M, load_source
from lib.data.skeleton import NUM_JOINTS
from lib.data.splits import clip_sequences
from lib.errors import ConfigError, DataError, InputFileError
from lib.io import remove_file


def clip_spec(source_path: str, frames: int, stride: int, tds: int) -> dict:
    """Settings that determine the clips (the source file is identified by size and mtime)."""
    st = os.stat(source_path)
    return {"source": os.path.abspath(source_path), "source_bytes": st.st_size,
            "source_mtime": int(st.st_mtime), "frames": frames, "train_stride": stride,
            "test_stride": frames, "tds": tds}


def parse_stores(stores) -> list[str]:
    """``'both'``, ``'pkl'``, ``'npy'`` or a sequence of those -> list of stores."""
    names = list(STORES) if stores == "both" else [stores] if isinstance(stores, str) else list(stores)
    unknown = [s for s in names if s not in STORES]
    if unknown or not names:
        raise ConfigError(f"store must be 'pkl', 'npy' or 'both', got {stores!r}")
    return names


def convert_source_to_clips(dt_root: str, dt_file: str, out_dir: str, frames: int = 243,
                            stride: int = 81, tds: int = 2, force: bool = False,
                            stores="both") -> dict:
    """Slice the source into the clip stores of ``out_dir``; returns ``{split: num_clips}``.

    Idempotent: stores that already hold the clips of the same source and settings are left
    alone (nothing at all is done when every requested store is up to date); ``force`` rewrites
    the requested stores anyway. When the settings changed, every old store in ``out_dir`` is
    removed and the requested ones are written anew.
    """
    source_path = os.path.join(dt_root, dt_file)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputFileError(f"--out_dir {out_dir!r} is a file; give the clip folder to write")
    if not os.path.isfile(source_path):
        load_source(source_path)                  # raises the DataError naming the file and the fix
    spec, meta, wanted = clip_spec(source_path, frames, stride, tds), read_meta(out_dir), parse_stores(stores)
    same = bool(meta) and meta.get("spec") == spec
    done = [s for s in meta_stores(meta) if same and store_is_complete(out_dir, s, meta["num_clips"])]
    todo = [s for s in wanted if force or s not in done]
    kept = [s for s in done if s not in todo]
    if not todo:
        counts = meta["num_clips"]
        print(f"Clips in {out_dir} are up to date ({counts['train']} train, {counts['test']} test; "
              f"stores {', '.join(kept)}).")
        return counts
    remove_stale_stores(out_dir, keep=kept)
    reader = DataReaderH36M(frames, tds, stride, frames, dt_root, dt_file)
    counts, clips = {}, {}
    for split in SPLITS:
        clips[split] = clip_metadata(reader, split)
        inputs, labels = reader.get_sliced_data(split)
        if "pkl" in todo:
            write_pickle_clips(os.path.join(out_dir, split), inputs, labels, desc=f"{split} clips")
        if "npy" in todo:
            write_array_clips(out_dir, split, inputs, labels)
        counts[split] = len(inputs)
    write_meta(out_dir, {"spec": spec, "num_clips": counts, "stores": [s for s in STORES if s in kept + todo],
                         "clips": clips})
    return counts


def clip_metadata(reader: DataReaderH36M, split: str) -> dict:
    """What a clip needs besides its arrays, per clip in store order: its sequence id and the
    index of its first frame in the strided split (the clip covers ``frames`` frames from there)."""
    return {"sequence": clip_sequences(reader, split).tolist(),
            "first_frame": reader.clip_indices(split)[:, 0].tolist()}


def remove_stale_stores(out_dir: str, keep: list[str]) -> None:
    """Remove meta.json and every store not in ``keep`` (they are rewritten or out of date)."""
    remove_file(os.path.join(out_dir, "meta.json"))
    for split in SPLITS:
        if "pkl" not in keep:
            remove_pickle_clips(os.path.join(out_dir, split))
        if "npy" not in keep:
            remove_array_clips(out_dir, split)


def has_clips(folder: str, store: str) -> bool:
    if store == "pkl":
        return all(clip_files(os.path.join(folder, split)) for split in SPLITS)
    return all(array_store_valid(folder, split) for split in SPLITS)


def ensure_clips(cfg) -> None:
    """Make the clips the config trains on, if they are not there yet (see module docstring).

    Missing clips are converted into both stores. With ``clip_store: npy`` a folder that only
    has per-clip pickles (e.g. one made by MotionBERT) is packed into the fast store.
    """
    mode = cfg.clip_store
    for folder in (os.path.join(cfg.data_root, subset) for subset in cfg.subset_list):
        if mode != "npy" and (has_clips(folder, "pkl") or has_clips(folder, "npy")):
            check_clip_folder(folder, cfg)
            continue
        if mode == "npy" and has_clips(folder, "npy"):
            check_clip_folder(folder, cfg)
            continue
        if mode == "npy" and has_clips(folder, "pkl"):
            check_clip_folder(folder, cfg)
            print(f"Packing the per-clip pickles of {folder} into the fast clip store ...")
            pack_pickle_clips(folder)
            continue
        if not os.path.isfile(os.path.join(cfg.dt_root, cfg.dt_file)) and not cfg.synthetic_data:
            explain_broken_store(folder)
        ensure_source(cfg)
        print(f"Slicing {os.path.join(cfg.dt_root, cfg.dt_file)} into clips under {folder} ...")
        convert_source_to_clips(cfg.dt_root, cfg.dt_file, folder, cfg.clip_len,
                                cfg.data_stride, cfg.sample_stride)


# How the clips were sliced: (config key, meta.json spec field, converter flag).
SLICING = (("clip_len", "frames", "-f"), ("data_stride", "train_stride", "-s"), ("sample_stride", "tds", "--tds"))


def check_clip_folder(folder: str, cfg) -> None:
    """Refuse a clip folder sliced with other settings than the config's (see module docstring);
    the first clip of the store training will read is opened, so a broken file fails here."""
    frames = stored_clip_frames(folder, cfg.clip_store)
    meta = read_meta(folder)
    if meta is not None:
        check_meta(folder, meta, cfg)
    if frames != cfg.clip_len:
        raise DataError(f"{folder} holds clips of {frames} frames but the config asks for clip_len {cfg.clip_len}; "
                        f"re-slice it with: {reslice_command(folder, cfg)}  (or train on it as it is: "
                        f"--set clip_len={frames})")
    if meta is None:
        print(f"note: {folder} has no meta.json (made by MotionBERT?): assuming its {frames}-frame clips were "
              f"sliced with data_stride {cfg.data_stride}, sample_stride {cfg.sample_stride} as the config says")


def check_meta(folder: str, meta: dict, cfg) -> None:
    """``meta.json``'s slicing settings must be the config's clip_len, data_stride, sample_stride."""
    spec = meta.get("spec") or {}
    differ = [(key, field) for key, field, _ in SLICING if spec.get(field) != cfg[key]]
    if not differ:
        return
    made = ", ".join(f"{key} {spec.get(field)}" for key, field in differ)
    wanted = ", ".join(f"{key} {cfg[key]}" for key, _ in differ)
    stores = meta_stores(meta)
    matching = " ".join(f"--set {key}={spec.get(field)}" for key, field in differ if isinstance(spec.get(field), int))
    raise DataError(f"{folder} was sliced with {made} ({os.path.join(folder, 'meta.json')}) but the config asks for "
                    f"{wanted}; re-slice it with: {reslice_command(folder, cfg, stores)}"
                    + (f"  (or train on it as it is: {matching})" if matching else ""))


def reslice_command(folder: str, cfg, stores=STORES) -> str:
    """The converter command that slices the config's source into ``folder`` as the config says."""
    return (f"{CONVERTER} --dt_root {cfg.dt_root} --dt_file {cfg.dt_file} --out_dir {folder} "
            + " ".join(f"{flag} {cfg[key]}" for key, _, flag in SLICING)
            + ("" if len(stores) != 1 else f" --store {stores[0]}"))


def stored_clip_frames(folder: str, mode: str) -> int:
    """Frames per clip of the store training reads: the fast store's header, else the first
    training pickle (read and checked: [frames, 17, 3] input and label)."""
    files = clip_files(os.path.join(folder, "train"))
    if (mode != "pkl" or not files) and array_store_valid(folder, "train"):
        return int(read_array_header(folder, "train")["frames"])
    path = files[0]
    shapes = [np.shape(part) for part in read_pickle_clip(path)]
    if len(shapes[0]) != 3 or shapes[0][1:] != (NUM_JOINTS, 3) or shapes[0] != shapes[1]:
        raise DataError(f"{path}: data_input/data_label have shapes {shapes}, expected two [frames, {NUM_JOINTS}, 3] "
                        f"arrays; re-slice the clips with {CONVERTER}")
    return int(shapes[0][0])


def explain_broken_store(folder: str) -> None:
    """Raise the fast store's own error when it is there but unusable (and cannot be remade)."""
    for split in SPLITS:
        if any(os.path.exists(path) for path in array_paths(folder, split)):
            open_array_clips(folder, split)


def ensure_source(cfg) -> str:
    """Path of the config's source pickle; generate it if the config asks for synthetic data."""
    path = os.path.join(cfg.dt_root, cfg.dt_file)
    if os.path.isfile(path):
        return path
    if not cfg.synthetic_data:
        DataReaderH36M(dt_root=cfg.dt_root, dt_file=cfg.dt_file)  # raises the helpful DataError
        raise DataError(f"missing {path}")
    from lib.data.synthetic import write_synthetic_h36m
    print(f"{path} not found: generating synthetic H36M-format data (size '{cfg.synthetic_data}') ...")
    t0 = time.time()
    write_synthetic_h36m(path, seed=0, size=cfg.synthetic_data, geometric=cfg.synthetic_geometric,
                         world=cfg.random_cameras)
    print(f"  done in {time.time() - t0:.1f} s")
    return path
