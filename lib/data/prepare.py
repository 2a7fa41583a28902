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
``meta.json`` also records the source the clips were made from (size, mtime, content sha256):
a source replaced or regenerated since is refused with the command that re-slices
(:func:`check_source`).

Slicing is atomic and owned (:func:`convert_source_to_clips`): the folder is written beside its
place and renamed into it with ``meta.json`` -- Pose3D's marker -- inside, so a folder without
``meta.json`` is never a half-made Pose3D folder; a second slicing of the same folder refuses
with the first one's PID.
"""
from __future__ import annotations

import glob
import os
import shutil
import time

import numpy as np

from lib.data.clip_store import (CONVERTER, META_FILE, STORES, array_paths, array_store_valid, clip_files,
                                 file_sha256, meta_stores, open_array_clips, pack_pickle_clips, read_array_header,
                                 read_meta, read_pickle_clip, store_is_complete,
                                 write_array_clips, write_meta, write_pickle_clips)
from lib.data.h36m import SPLITS, DataReaderH36M, load_source
from lib.data.skeleton import NUM_JOINTS
from lib.data.splits import clip_sequences
from lib.errors import ConfigError, DataError, InputFileError
from lib.io import TMP_MARK, os_errors_of_writing, own_folder, temp_path


def clip_spec(source_path: str, frames: int, stride: int, tds: int) -> dict:
    """Settings that determine the clips (the source file is identified by size and mtime; the
    full identity, with a content hash, is :func:`source_identity`)."""
    st = os.stat(source_path)
    return {"source": os.path.abspath(source_path), "source_bytes": st.st_size,
            "source_mtime": int(st.st_mtime), "frames": frames, "train_stride": stride,
            "test_stride": frames, "tds": tds}


# spec fields that identify the source file rather than the slicing (compared by source_changed)
SOURCE_FIELDS = ("source", "source_bytes", "source_mtime")


def source_identity(source_path: str) -> dict:
    """What ``meta.json`` records of the source the clips were made from: size, mtime (ns) and
    the sha256 of its content."""
    st = os.stat(source_path)
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(source_path)}


def source_changed(meta: dict, source_path: str) -> str | None:
    """How the source at ``source_path`` differs from the one the clips in ``meta`` were made
    from (None: the same). A different size is a change; the same size and mtime are the same
    file; the same size with another mtime (a copy, a regenerated file) is decided by the content
    hash. A ``meta.json`` of an older Pose3D (no hash) compares size and mtime (seconds)."""
    st = os.stat(source_path)
    recorded = meta.get("source_identity")
    spec = meta.get("spec") or {}
    size = recorded["bytes"] if recorded else spec.get("source_bytes")
    if size != st.st_size:
        return f"it had {size} bytes, now {st.st_size}"
    if recorded is None:
        if spec.get("source_mtime") != int(st.st_mtime):
            return "it was modified since (mtime)"
        return None
    if recorded.get("mtime_ns") == st.st_mtime_ns or recorded.get("sha256") == file_sha256(source_path):
        return None
    return "same size, other content (sha256)"


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

    Idempotent: stores that already hold the clips of the same source (content) and settings are
    left alone (nothing at all is done when every requested store is up to date); ``force``
    rewrites the requested stores anyway. When the settings or the source changed, the folder is
    made anew with the requested stores.

    Atomic (:func:`build_clip_folder`): the slicing owns ``out_dir`` (:func:`lib.io.own_folder`;
    a second slicing refuses with this one's PID), writes a complete folder beside it and renames
    it into place, ``meta.json`` (Pose3D's marker) written last. A kill leaves ``out_dir`` as it
    was; the next slicing removes the half-made folder and does it again.
    """
    source_path = os.path.join(dt_root, dt_file)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputFileError(f"--out_dir {out_dir!r} is a file; give the clip folder to write")
    if not os.path.isfile(source_path):
        load_source(source_path)                  # raises the DataError naming the file and the fix
    if os.path.realpath(source_path).startswith(os.path.join(os.path.realpath(out_dir), "")):
        raise InputFileError(f"the source pickle {source_path} is inside --out_dir {out_dir}, which slicing replaces "
                             "as a whole (it would destroy the source): choose another --out_dir")
    with own_folder(out_dir, "clip folder", inside=False):
        recover_interrupted_slicing(out_dir)
        spec, meta, wanted = clip_spec(source_path, frames, stride, tds), read_meta(out_dir), parse_stores(stores)
        same = bool(meta) and _settings(meta.get("spec") or {}) == _settings(spec) \
            and source_changed(meta, source_path) is None
        done = [s for s in meta_stores(meta) if same and store_is_complete(out_dir, s, meta["num_clips"])]
        todo = [s for s in wanted if force or s not in done]
        kept = [s for s in done if s not in todo]
        if not todo:
            counts = meta["num_clips"]
            print(f"Clips in {out_dir} are up to date ({counts['train']} train, {counts['test']} test; "
                  f"stores {', '.join(kept)}).")
            return counts
        refuse_foreign_files(out_dir)
        reader = DataReaderH36M(frames, tds, stride, frames, dt_root, dt_file)

        def write(folder: str) -> dict:
            link_stores(out_dir, folder, kept)
            counts, clips = {}, {}
            for split in SPLITS:
                clips[split] = clip_metadata(reader, split)
                inputs, labels = reader.get_sliced_data(split)
                if "pkl" in todo:
                    write_pickle_clips(os.path.join(folder, split), inputs, labels, desc=f"{split} clips")
                if "npy" in todo:
                    write_array_clips(folder, split, inputs, labels)
                counts[split] = len(inputs)
            write_meta(folder, {"spec": spec, "source_identity": source_identity(source_path), "num_clips": counts,
                                "stores": [s for s in STORES if s in kept + todo], "clips": clips})
            return counts
        return build_clip_folder(out_dir, write)


def _settings(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in SOURCE_FIELDS}


# What a clip folder may hold: the stores and meta.json (anything else is the user's, never replaced).
def clip_folder_entries() -> set[str]:
    names = {META_FILE}
    for split in SPLITS:
        names |= {split, *(os.path.basename(p) for p in array_paths("", split))}
    return names


def refuse_foreign_files(out_dir: str) -> None:
    """Slicing replaces the whole folder: refuse when it holds anything but clip stores."""
    if not os.path.isdir(out_dir):
        return
    foreign = sorted(set(os.listdir(out_dir)) - clip_folder_entries())
    if foreign:
        raise InputFileError(f"{out_dir} holds files that are not clips ({', '.join(foreign[:5])}"
                             f"{', ...' if len(foreign) > 5 else ''}); slicing replaces the whole clip folder: "
                             "move them out or choose another --out_dir")


def link_stores(src: str, dst: str, stores: list[str]) -> None:
    """Put the up-to-date ``stores`` of ``src`` into ``dst`` (hard links; a copy where links fail)."""
    for store in stores:
        for split in SPLITS:
            paths = clip_files(os.path.join(src, split)) if store == "pkl" else list(array_paths(src, split))
            for path in paths:
                target = os.path.join(dst, os.path.relpath(path, src))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                try:
                    os.link(path, target)
                except OSError:
                    shutil.copy2(path, target)


def slicing_paths(out_dir: str) -> tuple[str, str]:
    """``(temporary folder, previous folder)`` names of a slicing of ``out_dir`` by this process."""
    out_dir = os.path.normpath(out_dir)
    return temp_path(out_dir), f"{out_dir}{OLD_MARK}{os.getpid()}"


OLD_MARK = ".pose3d-old-"


def build_clip_folder(out_dir: str, write) -> dict:
    """Call ``write(folder)`` on a new folder beside ``out_dir`` and rename it into place (the
    folder there before, if any, is moved aside first and deleted after); returns what ``write``
    returns. The caller owns ``out_dir``."""
    tmp, old = slicing_paths(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        result = write(tmp)
        with os_errors_of_writing(out_dir):
            if os.path.isdir(out_dir):
                os.rename(out_dir, old)
            os.rename(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return result


def recover_interrupted_slicing(out_dir: str) -> None:
    """Undo what a killed slicing of ``out_dir`` left (the caller owns it): the previous folder
    moved aside goes back if ``out_dir`` is missing; half-made and old folders are deleted."""
    out_dir = os.path.normpath(out_dir)
    olds = sorted(glob.glob(glob.escape(out_dir) + OLD_MARK + "*"))
    if olds and not os.path.exists(out_dir):
        os.rename(olds.pop(), out_dir)
        print(f"Restored {out_dir}, moved aside by an interrupted slicing")
    for path in olds + sorted(glob.glob(glob.escape(out_dir) + TMP_MARK + "*")):
        print(f"Removing {path}, left by an interrupted slicing")
        shutil.rmtree(path, ignore_errors=True)


def clip_metadata(reader: DataReaderH36M, split: str) -> dict:
    """What a clip needs besides its arrays, per clip in store order: its sequence id and the
    index of its first frame in the strided split (the clip covers ``frames`` frames from there)."""
    return {"sequence": clip_sequences(reader, split).tolist(),
            "first_frame": reader.clip_indices(split)[:, 0].tolist()}


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
        check_source(folder, meta, cfg)
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


def check_source(folder: str, meta: dict, cfg) -> None:
    """The config's source must be the file the clips were made from (:func:`source_changed`):
    else training would read clips of the old file while validation and test read the new one."""
    source = os.path.join(cfg.dt_root, cfg.dt_file)
    if not os.path.isfile(source):
        return                                    # read (or generated) later; nothing to compare yet
    reason = source_changed(meta, source)
    if reason:
        raise DataError(f"{folder} was sliced from another version of {source} ({reason}; "
                        f"{os.path.join(folder, META_FILE)}): the source was replaced or regenerated after slicing, "
                        f"so training would read the old clips while validation and test read the new file; "
                        f"re-slice it with: {reslice_command(folder, cfg, meta_stores(meta))}")


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
