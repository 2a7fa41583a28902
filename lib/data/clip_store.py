"""Clip stores on disk: MotionBERT's per-clip pickles and a fast memory-mapped array store.

One clip folder ``<dir>`` (e.g. ``data/motion3d/H36M-SH``) can hold either store or both:

``pkl`` (MotionBERT's layout)
    ``<dir>/{train,test}/%08d.pkl``, each a pickled dict ``{'data_input': [T,17,3] float32,
    'data_label': [T,17,3] float32}``, so data folders made by MotionBERT or EHGFormer work
    unchanged, and ours work with theirs.
``npy`` (fast, no pickle)
    ``<dir>/clips_<split>.npy``: all clips of a split in one ``.npy`` array ``[N, 2, T, 17, 3]``
    float32: ``[:, 0]`` = ``data_input`` (x_n, y_n, confidence), ``[:, 1]`` = ``data_label``
    (x_n, y_n, z_n), each clip's two halves contiguous; clip i is ``%08d.pkl`` i.
    ``<dir>/clips_<split>.json`` is its header (format, version, num_clips, frames, joints,
    channels, dtype, shape, bytes, sha256). The files sit
    beside the split folders, not in them, because MotionBERT lists every file of a split
    folder as a clip. The array is read with ``np.load(mmap_mode='r')`` (``allow_pickle=False``),
    after checking it against its header, so a truncated or mismatched file is refused with an
    error that names the file and the command that rebuilds it.

``meta.json`` beside the split folders records how the clips were made (``spec``), how many
there are and which stores hold them; the converter uses it to skip work that is already done
(idempotence) and to replace clips made with other settings.
"""
from __future__ import annotations

import glob
import hashlib
import os
import warnings

import numpy as np
from tqdm import tqdm

from lib.errors import ConfigError, DataError
from lib.io import atomic_path, load_json, load_pickle, own_folder, remove_file, write_json, write_pickle

META_FILE = "meta.json"
STORES = ("pkl", "npy")
STORE_CHOICES = ("auto", "pkl", "npy")          # values of the config key ``clip_store``
ARRAY_FORMAT = "pose3d-clip-array"
ARRAY_CHANNELS = 3                               # input (x, y, conf) and label (x, y, z)
CONVERTER = "python tools/convert_h36m_mixste_style.py"


class ClipStoreError(DataError):
    """A clip store is missing, truncated or does not match its header; the message says
    which file and how to rebuild it."""


# -- per-clip pickles (MotionBERT) ------------------------------------------------------------

def clip_files(split_dir: str) -> list[str]:
    """Sorted ``%08d.pkl`` clip files of one split folder."""
    return sorted(glob.glob(os.path.join(split_dir, "*.pkl")))


def read_pickle_clip(path: str) -> tuple[np.ndarray, np.ndarray]:
    """``(data_input, data_label)`` of one MotionBERT clip file."""
    sample = load_pickle(path, "clip file", hint=f"re-slice the clips with {CONVERTER}")
    if not isinstance(sample, dict) or "data_input" not in sample or "data_label" not in sample:
        raise ClipStoreError(f"{path}: a clip file must hold a dict with 'data_input' and 'data_label'; "
                             f"re-slice the clips with {CONVERTER}")
    return sample["data_input"], sample["data_label"]


def write_pickle_clips(split_dir: str, inputs: np.ndarray, labels: np.ndarray, desc: str = "") -> None:
    """Write one ``%08d.pkl`` per clip (stale files from an earlier run are removed first)."""
    remove_pickle_clips(split_dir)
    os.makedirs(split_dir, exist_ok=True)
    for i in tqdm(range(len(inputs)), desc=desc or split_dir, unit="clip", mininterval=1.0):
        sample = {"data_input": inputs[i].astype(np.float32), "data_label": labels[i].astype(np.float32)}
        write_pickle(os.path.join(split_dir, f"{i:08d}.pkl"), sample)


def remove_pickle_clips(split_dir: str) -> None:
    for old in clip_files(split_dir):
        remove_file(old)


# -- memory-mapped array store ----------------------------------------------------------------

def array_paths(out_dir: str, split: str) -> tuple[str, str]:
    """``(array file, header file)`` of a split's fast store."""
    return (os.path.join(out_dir, f"clips_{split}.npy"), os.path.join(out_dir, f"clips_{split}.json"))


def write_array_clips(out_dir: str, split: str, inputs: np.ndarray, labels: np.ndarray) -> dict:
    """Write ``clips_<split>.npy`` (``[N, 2, T, 17, 3]``: inputs, labels) and its header; returns it.

    The header is removed first and written last, so an interrupted write leaves no valid store.
    """
    array_path, header_path = array_paths(out_dir, split)
    remove_array_clips(out_dir, split)
    os.makedirs(out_dir, exist_ok=True)
    n, frames, joints, _ = np.shape(inputs)
    shape = [int(n), 2, int(frames), int(joints), ARRAY_CHANNELS]
    with atomic_path(array_path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=tuple(shape))
        for start in range(0, n, 256):                # chunks: no second full copy in memory
            out[start:start + 256, 0] = inputs[start:start + 256]
            out[start:start + 256, 1] = labels[start:start + 256]
        out.flush()
        del out
    header = {"format": ARRAY_FORMAT, "version": 1, "file": os.path.basename(array_path),
              "num_clips": int(n), "frames": int(frames), "joints": int(joints),
              "channels": ARRAY_CHANNELS, "dtype": "float32", "shape": shape,
              "bytes": os.path.getsize(array_path), "sha256": file_sha256(array_path)}
    write_json(header_path, header)
    return header


def remove_array_clips(out_dir: str, split: str) -> None:
    for path in reversed(array_paths(out_dir, split)):       # header first
        remove_file(path)


def open_array_clips(out_dir: str, split: str) -> np.ndarray:
    """The split's clips as a read-only memory map ``[N, 2, T, 17, 3]``, checked against the header.

    Raises ClipStoreError (naming the file and the rebuild command) when the header or the
    array is missing, truncated, or disagrees in shape, dtype, clip length or channel count.
    """
    array_path = array_paths(out_dir, split)[0]
    header = read_array_header(out_dir, split)
    check_array_file(array_path, header, rebuild_hint(out_dir))
    return np.load(array_path, mmap_mode="r", allow_pickle=False)


def read_array_header(out_dir: str, split: str) -> dict:
    """The JSON header of a split's fast store, checked for completeness."""
    header_path = array_paths(out_dir, split)[1]
    if not os.path.isfile(header_path):
        raise ClipStoreError(f"fast clip store header not found: {header_path}\n{rebuild_hint(out_dir)}")
    try:
        header = load_json(header_path, "fast clip store header", ClipStoreError)
    except ClipStoreError as err:
        raise ClipStoreError(f"{err}\n{rebuild_hint(out_dir)}") from None
    keys = ("num_clips", "frames", "joints", "channels", "dtype", "shape", "bytes")
    if not isinstance(header, dict) or header.get("format") != ARRAY_FORMAT or any(k not in header for k in keys):
        raise ClipStoreError(f"{header_path}: not a {ARRAY_FORMAT} header (needs format and {list(keys)})\n"
                             f"{rebuild_hint(out_dir)}")
    return header


def check_array_file(array_path: str, header: dict, hint: str) -> None:
    """Compare the ``.npy`` file's own header and size with the JSON header (no data read)."""
    def fail(problem: str):
        raise ClipStoreError(f"{array_path}: {problem}\n{hint}")

    if not os.path.isfile(array_path):
        fail("file not found")
    expected = [header["num_clips"], 2, header["frames"], header["joints"], header["channels"]]
    if header["shape"] != expected or header["channels"] != ARRAY_CHANNELS or header["dtype"] != "float32":
        fail(f"header describes shape {header['shape']} {header['dtype']}, expected "
             f"[num_clips, 2, frames, joints, {ARRAY_CHANNELS}] float32")
    shape, dtype, data_offset = read_npy_header(array_path, fail)
    if list(shape) != header["shape"] or dtype != np.dtype(np.float32):
        fail(f"array is {list(shape)} {dtype}, header says {header['shape']} {header['dtype']} "
             "(clip count, clip length T, joints or channels differ)")
    size = os.path.getsize(array_path)
    needed = data_offset + int(np.prod(shape)) * dtype.itemsize
    if size != header["bytes"] or size != needed:
        fail(f"file has {size} bytes, expected {header['bytes']} (header) / {needed} (shape); "
             "it is truncated or was modified")


def read_npy_header(path: str, fail) -> tuple[tuple, np.dtype, int]:
    """``(shape, dtype, data offset)`` from a ``.npy`` file's own header."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = read(f)
        except ValueError as err:
            fail(f"not a valid .npy file ({err})")
        if fortran_order:
            fail("array is stored in Fortran order")
        return shape, dtype, f.tell()


def verify_array_checksum(out_dir: str, split: str) -> None:
    """Read the whole array and compare its sha256 with the header (slow; optional)."""
    array_path = array_paths(out_dir, split)[0]
    header = read_array_header(out_dir, split)
    if header.get("sha256") and file_sha256(array_path) != header["sha256"]:
        raise ClipStoreError(f"{array_path}: sha256 differs from its header\n{rebuild_hint(out_dir, force=True)}")


def pack_pickle_clips(out_dir: str) -> dict:
    """Build the fast store from the per-clip pickles already in ``out_dir`` (e.g. a folder made
    by MotionBERT); returns ``{split: num_clips}``. No source file needed. The packing owns the
    folder (:func:`lib.io.own_folder`) like a slicing."""
    with own_folder(out_dir, "clip folder", inside=False):
        return _pack(out_dir)


def _pack(out_dir: str) -> dict:
    counts = {}
    for split in ("train", "test"):
        files = clip_files(os.path.join(out_dir, split))
        if not files:
            raise ClipStoreError(f"no clip files in {os.path.join(out_dir, split)} to pack")
        pairs = [read_pickle_clip(p) for p in tqdm(files, desc=f"pack {split}", unit="clip", mininterval=1.0, disable=None)]
        inputs = np.stack([p[0] for p in pairs]).astype(np.float32, copy=False)
        labels = np.stack([p[1] for p in pairs]).astype(np.float32, copy=False)
        counts[split] = write_array_clips(out_dir, split, inputs, labels)["num_clips"]
    return counts


# -- which store holds what -------------------------------------------------------------------

def store_is_complete(out_dir: str, store: str, counts: dict) -> bool:
    """True when ``store`` holds exactly ``counts[split]`` clips per split (cheap checks only)."""
    for split, count in counts.items():
        if store == "pkl" and len(clip_files(os.path.join(out_dir, split))) != count:
            return False
        if store == "npy":
            try:
                header = read_array_header(out_dir, split)
                check_array_file(array_paths(out_dir, split)[0], header, "")
            except ClipStoreError:
                return False
            if header["num_clips"] != count:
                return False
    return True


def array_store_valid(folder: str, split: str) -> bool:
    try:
        open_array_clips(folder, split)
        return True
    except ClipStoreError:
        return False


def choose_store(folders: list[str], split: str, mode: str = "auto") -> str:
    """Store ('pkl' or 'npy') a Dataset over ``folders`` should read, for config ``clip_store``.

    ``auto`` = the fast store when every folder has a valid one whose clip count agrees with the
    pickles (if any), else the pickle folders (with a warning when a fast store is broken).
    """
    if mode not in STORE_CHOICES:
        raise ConfigError(f"clip_store must be one of {STORE_CHOICES}, got {mode!r}")
    if mode != "auto":
        return mode
    for folder in folders:
        pickles = clip_files(os.path.join(folder, split))
        try:
            arrays = open_array_clips(folder, split)
        except ClipStoreError as err:
            if os.path.exists(array_paths(folder, split)[0]) or os.path.exists(array_paths(folder, split)[1]):
                if not pickles:
                    raise
                warnings.warn(f"clip_store auto: ignoring the fast store, reading per-clip pickles.\n{err}")
            return "pkl"
        if pickles and len(pickles) != len(arrays):
            warnings.warn(f"clip_store auto: {array_paths(folder, split)[0]} has {len(arrays)} clips but "
                          f"{os.path.join(folder, split)} has {len(pickles)} pickles; reading the pickles.\n"
                          f"{rebuild_hint(folder)}")
            return "pkl"
    return "npy"


def rebuild_hint(out_dir: str, force: bool = False) -> str:
    """The command that rebuilds the fast store of ``out_dir`` (other stores are kept)."""
    spec = (read_meta(out_dir) or {}).get("spec")
    if spec:
        cmd = (f"{CONVERTER} --dt_root {os.path.dirname(spec['source'])} --dt_file "
               f"{os.path.basename(spec['source'])} --out_dir {out_dir} -f {spec['frames']} "
               f"-s {spec['train_stride']} --tds {spec['tds']} --store npy" + (" --force" if force else ""))
    else:
        cmd = f"{CONVERTER} --out_dir {out_dir} --pack    # from the per-clip pickles"
    return f"Rebuild it with:\n    {cmd}\n(or set clip_store: pkl to read the per-clip pickles instead)"


# -- meta.json --------------------------------------------------------------------------------

def read_meta(out_dir: str) -> dict | None:
    path = os.path.join(out_dir, META_FILE)
    if not os.path.isfile(path):
        return None
    meta = load_json(path, "clip folder meta.json", DataError)
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object; delete it and re-slice the clips with {CONVERTER}")
    return meta


def meta_stores(meta: dict | None) -> list[str]:
    """Stores recorded in ``meta.json`` (files written before the fast store: pickles only)."""
    return list(meta.get("stores", ["pkl"])) if meta else []


def write_meta(out_dir: str, meta: dict) -> None:
    write_json(os.path.join(out_dir, META_FILE), meta)



def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
