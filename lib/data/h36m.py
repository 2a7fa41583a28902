"""Reader for MotionBERT's preprocessed Human3.6M source pickle (its ``datareader_h36m.py``).

The source file ``h36m_sh_conf_cam_source_final.pkl`` holds ``{'train': {...}, 'test': {...}}``,
each a dict of per-frame arrays with every video concatenated along axis 0:

=====================  =====  =================================================================
key                    split  content
=====================  =====  =================================================================
``joint_2d``           both   [F, 17, >=2] detected 2D keypoints, pixels
``confidence``         both   [F, 17] or [F, 17, 1] detector confidence (ones if absent)
``joint3d_image``      both   [F, 17, 3] GT 3D: pixel projection x, y and pixel-scaled depth z
``camera_name``        both   [F] H36M camera ids ('54138969', ...)
``source``             both   [F] video ids ``s_09_act_05_subact_02_ca_01``
``joints_2.5d_image``  test   [F, 17, 3] GT in millimetres (= joint3d_image x 2.5d_factor)
``2.5d_factor``        test   [F] lambda: millimetres per pixel-scaled unit
``action``             test   [F] action names
=====================  =====  =================================================================

``sample_stride`` (EHGFormer's "tds") subsamples *every* per-frame array, camera names and
sources included, before slicing (MotionBERT's reader strides the arrays but not the camera names, which misaligns
resolutions and frames when the stride is above 1). Slicing is deterministic: short videos are
resampled without the global NumPy RNG that MotionBERT's ``resample`` uses.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from lib.data.camera import UnknownCameraError, resolutions
from lib.data.normalize import denormalize_3d, normalize_2d, normalize_3d
from lib.data.skeleton import NUM_JOINTS
from lib.errors import ConfigError, DataError
from lib.data.values import MM_LIMIT, PIXEL_LIMIT, check_confidence, check_numbers
from lib.io import load_pickle

SPLITS = ("train", "test")
REQUIRED_KEYS = {
    "train": ("joint_2d", "joint3d_image", "camera_name", "source"),
    "test": ("joint_2d", "joint3d_image", "camera_name", "source",
             "joints_2.5d_image", "2.5d_factor", "action"),
}
# Plausible magnitude of each per-frame array (lib/data/values.py); confidence: check_confidence.
SOURCE_LIMITS = {"joint_2d": PIXEL_LIMIT, "joint3d_image": PIXEL_LIMIT, "joints_2.5d_image": MM_LIMIT,
                 "2.5d_factor": MM_LIMIT, "confidence": None}
SYNTHETIC_HINT = ("To try Pose3D without the licensed data, make an H36M-format synthetic file with:\n"
                  "    python tools/make_synthetic_h36m.py --out {path}")


def load_source(path: str) -> dict:
    """Unpickle the source file, with a clear error when it is missing or not in the schema."""
    if not os.path.isfile(path):
        raise DataError(f"H36M source file not found: {path}\n"
                        "Put MotionBERT's h36m_sh_conf_cam_source_final.pkl there (see docs/data.md).\n"
                        + SYNTHETIC_HINT.format(path=path))
    data = load_pickle(path, "H36M source pickle", hint="see docs/data.md")
    if not isinstance(data, dict) or not all(s in data for s in SPLITS):
        raise DataError(f"{path}: expected a dict with 'train' and 'test' splits (see docs/data.md)")
    for split in SPLITS:
        check_split(data[split], split, path)
    return data


def check_split(split_data: dict, split: str, path: str = "<source>") -> None:
    """Validate keys, shapes and lengths of one split; raise DataError naming the problem."""
    missing = [k for k in REQUIRED_KEYS[split] if k not in split_data]
    if missing:
        raise DataError(f"{path}: split '{split}' lacks key(s) {missing}; "
                        f"expected {list(REQUIRED_KEYS[split])} (note the spelling 'joints_2.5d_image')")
    n = len(split_data["source"])
    expect = {"joint_2d": (NUM_JOINTS, None), "joint3d_image": (NUM_JOINTS, 3),
              "joints_2.5d_image": (NUM_JOINTS, 3)}
    for key, (joints, channels) in expect.items():
        if key not in split_data:
            continue
        shape = np.shape(split_data[key])
        if len(shape) != 3 or shape[1] != joints or (channels and shape[2] != channels) or shape[2] < 2:
            raise DataError(f"{path}: '{split}/{key}' has shape {shape}, expected [frames, {joints}, "
                            f"{channels or '>=2'}]")
    for key in ("joint_2d", "joint3d_image", "camera_name", "confidence", "joints_2.5d_image",
                "2.5d_factor", "action"):
        if key in split_data and len(split_data[key]) != n:
            raise DataError(f"{path}: '{split}/{key}' has {len(split_data[key])} frames but "
                            f"'source' has {n}; every per-frame array must have the same length")
    fix = "fill or drop those frames before training or evaluating (index = frame, joint, channel)"
    for key, limit in SOURCE_LIMITS.items():
        if key in split_data:
            check_numbers(split_data[key], f"{path}: '{split}/{key}'", limit, hint=fix)
    if "confidence" in split_data:
        note = check_confidence(split_data["confidence"], f"{path}: '{split}/confidence'", hint=fix)
        if note:
            print(note)


def sequence_id(source: str) -> str:
    """Sequence id of a video id: ``s_09_act_05_subact_02_ca_01`` -> ``s_09_act_05_subact_02``
    (drop the 6-character camera suffix, as MotionBERT's evaluation does)."""
    return str(source)[:-6]


def split_clips(sources, n_frames: int, stride: int, cover_tail: bool = False) -> np.ndarray:
    """Frame indices of the clips of every video, ``[num_clips, n_frames]`` int64 (MotionBERT's
    ``split_clips``).

    A video is a maximal run of equal ``sources``. Its clips start at ``0, stride, 2*stride, ...``
    while the clip fits, so clips never cross videos. A video shorter than ``n_frames`` gives one
    clip of deterministically resampled indices. With ``cover_tail`` a last clip aligned to the
    video's end is added where the regular clips leave frames uncovered (full-coverage evaluation).
    """
    bounds = video_bounds(sources)
    clips = []
    for start, end in bounds:
        length = end - start
        if length < n_frames:
            clips.append(start + resample_indices(length, n_frames))
            continue
        starts = np.arange(start, end - n_frames + 1, stride)
        if cover_tail and starts[-1] + n_frames < end:
            starts = np.append(starts, end - n_frames)
        clips.append(starts[:, None] + np.arange(n_frames))
    if not clips:
        return np.zeros((0, n_frames), np.int64)
    return np.concatenate([np.atleast_2d(c) for c in clips]).astype(np.int64)


def video_bounds(sources) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` of the maximal runs of equal values in ``sources``."""
    src = np.asarray(sources)
    if len(src) == 0:
        return []
    change = np.flatnonzero(src[1:] != src[:-1]) + 1
    edges = np.concatenate([[0], change, [len(src)]])
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def resample_indices(length: int, n_frames: int) -> np.ndarray:
    """``n_frames`` evenly spaced indices into a video of ``length`` frames (deterministic)."""
    return np.round(np.linspace(0, length - 1, n_frames)).astype(np.int64)


@dataclass
class TestMeta:
    """Per-frame test metadata used by the evaluation (docs/protocols.md)."""
    actions: np.ndarray      # [F] str
    factor: np.ndarray       # [F] 2.5d factor lambda (mm per pixel-scaled unit)
    gt_mm: np.ndarray        # [F, 17, 3] joints_2.5d_image, millimetres
    sources: np.ndarray      # [F] str video ids


class DataReaderH36M:
    """Normalised per-frame arrays and clip indices from the H36M source pickle.

    Args:
        n_frames: clip length (243).
        sample_stride: temporal downsampling ("tds") applied to every per-frame array (EHGFormer 2).
        data_stride_train: start-to-start stride of training clips (81).
        data_stride_test: stride of test clips (``n_frames``: non-overlapping).
        dt_root, dt_file: location of the source pickle.
        read_confidence: append the detector confidence as channel 3 (else ones).
        frame_offset: first frame of the strided view (0 .. sample_stride-1); the full-coverage
            evaluation reads every offset so that no original frame is skipped.
        source: an already loaded source dict (skips reading ``dt_root/dt_file``).
    """

    def __init__(self, n_frames: int = 243, sample_stride: int = 2, data_stride_train: int = 81,
                 data_stride_test: int = 243, dt_root: str = "data/motion3d/H36M-SH",
                 dt_file: str = "h36m_sh_conf_cam_source_final.pkl", read_confidence: bool = True,
                 frame_offset: int = 0, source: dict | None = None):
        if min(n_frames, sample_stride, data_stride_train, data_stride_test) < 1:
            raise ConfigError("n_frames, sample_stride and the data strides must be positive")
        self.path = os.path.join(dt_root, dt_file)
        self.raw = source if source is not None else load_source(self.path)
        self.n_frames = n_frames
        self.sample_stride = sample_stride
        self.data_stride = {"train": data_stride_train, "test": data_stride_test}
        self.read_confidence = read_confidence
        if not 0 <= frame_offset < sample_stride:
            raise ConfigError(f"frame_offset must be in [0, {sample_stride}), got {frame_offset}")
        self.frame_offset = frame_offset
        self._res = {split: self._resolutions(split) for split in SPLITS}

    def _resolutions(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            return resolutions(self.strided(split, "camera_name"))
        except UnknownCameraError as err:
            raise UnknownCameraError(f"{self.path}: '{split}/camera_name': {err}") from None

    def strided(self, split: str, key: str) -> np.ndarray:
        """Per-frame array ``key`` of ``split`` after ``sample_stride`` (from ``frame_offset``)."""
        return np.asarray(self.raw[split][key])[self.frame_offset:: self.sample_stride]

    def resolution(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame camera ``(width, height)`` in pixels, after ``sample_stride``."""
        return self._res[split]

    def read_2d(self, split: str) -> np.ndarray:
        """Model input ``[F, 17, 3]`` float32: normalised x, y and the confidence."""
        joints = self.strided(split, "joint_2d")[..., :2].astype(np.float32)
        xy = normalize_2d(joints, *self._res[split])
        conf = self._confidence(split, len(xy))
        return np.concatenate([xy, conf], axis=-1)

    def _confidence(self, split: str, n: int) -> np.ndarray:
        if not self.read_confidence or "confidence" not in self.raw[split]:
            return np.ones((n, NUM_JOINTS, 1), np.float32)
        conf = self.strided(split, "confidence").astype(np.float32)
        return conf[..., None] if conf.ndim == 2 else conf

    def read_3d(self, split: str) -> np.ndarray:
        """Training label ``[F, 17, 3]`` float32: normalised ``joint3d_image`` (not root-relative)."""
        return normalize_3d(self.strided(split, "joint3d_image"), *self._res[split])

    def clip_indices(self, split: str, cover_tail: bool = False) -> np.ndarray:
        """``[num_clips, n_frames]`` frame indices (into the strided arrays) of the split's clips."""
        sources = self.strided(split, "source")
        return split_clips(sources, self.n_frames, self.data_stride[split], cover_tail=cover_tail)

    def get_sliced_data(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs, labels)`` each ``[num_clips, n_frames, 17, 3]`` float32."""
        idx = self.clip_indices(split)
        return self.read_2d(split)[idx], self.read_3d(split)[idx]

    def test_meta(self, strided: bool = True) -> TestMeta:
        """Evaluation metadata of the test split: strided like the inputs, or at the full rate
        of the source file (index it with :meth:`original_frames`)."""
        get = (lambda k: self.strided("test", k)) if strided else (lambda k: np.asarray(self.raw["test"][k]))
        return TestMeta(actions=get("action"), factor=get("2.5d_factor").astype(np.float64),
                        gt_mm=get("joints_2.5d_image").astype(np.float64), sources=get("source"))

    def original_frames(self, strided_idx: np.ndarray) -> np.ndarray:
        """Map indices into the strided arrays back to frame indices of the source file."""
        return self.frame_offset + self.sample_stride * np.asarray(strided_idx)

    def clip_resolution(self, clip_idx: np.ndarray, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """``(width, height)`` ``[num_clips, 1]`` of each clip's first frame, what MotionBERT's evaluation
        denormalises a clip with (clips never mix cameras)."""
        w, h = self._res[split]
        first = clip_idx[:, 0]
        return w[first][:, None], h[first][:, None]

    def denormalize(self, pred: np.ndarray, clip_idx: np.ndarray, split: str = "test") -> np.ndarray:
        """Normalised predictions ``[num_clips, T, 17, 3]`` -> pixel-scaled 3D (clip resolution)."""
        return denormalize_3d(pred, *self.clip_resolution(clip_idx, split))


def reader_from_config(cfg, frame_offset: int = 0, source: dict | None = None) -> DataReaderH36M:
    """The config's source file as its clip folder slices it (``clip_len`` frames every
    ``data_stride`` after ``sample_stride``) and as the test protocol does (non-overlapping clips);
    ``frame_offset``/``source``: another tds offset of an already loaded source."""
    return DataReaderH36M(cfg.clip_len, cfg.sample_stride, cfg.data_stride, cfg.clip_len, cfg.dt_root, cfg.dt_file,
                          read_confidence=True, frame_offset=frame_offset, source=source)
