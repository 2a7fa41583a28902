"""Read the 2D keypoints of one person in a video from detector output files.

Accepted files (``K`` = 17 for COCO-17 / H36M-17, 26 for Halpe-26; pixels; ``C`` = 3 is
x, y, confidence, ``C`` = 2 means confidence 1):

* ``.npy``: ``[T, K, C]`` array, one pose per frame.
* ``.npz``: EHGFormer's ``kpts [T, K, 2]`` with optional ``kpts_score [T, K, 1]``, or ``keypoints [T, K, C]``.
* ``.json``:
  - AlphaPose: a list of detections ``{"image_id": "12.jpg" | 12, "keypoints": [x, y, s] * K,
    "idx": track_id, ...}``; the number in ``image_id`` is the frame index (AlphaPose numbers a
    video's frames from 0); without numbers, frames are taken in order of appearance;
  - per-frame lists (MMPose, ViTPose, YOLO-pose exports): a list over frames, each a list of
    people (an empty list for a frame without anyone), or MMPose's ``{"instance_info": [{"instances":
    [...]}, ...]}``; a person is ``[[x, y(, s)], ...]`` or a dict with ``keypoints`` (``[K, 2|3]`` or
    flat ``K * 3``), optional ``keypoint_scores [K]`` and an optional track id ``track_id`` / ``idx``;
  - a plain ``[T, K, C]`` nested list, or a dict with ``keypoints [T, K, C]``.
  A top-level dict may carry the image size as ``width`` and ``height`` (also inside ``meta_info``).

One person is selected: with ``focus`` the detections whose track id equals it, otherwise the file
must hold at most one person per frame (several people are an error, never concatenated). Frames
without the person are filled, never dropped: x, y and confidence are interpolated linearly between
the neighbouring detections and held constant before the first and after the last one.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from lib.errors import InputFileError
from lib.io import check_input_file, load_json, load_npy, load_npz

Frames = dict  # frame index -> list of (track id or None, keypoints [K, 3])


class KeypointFileError(InputFileError):
    """A keypoint file cannot be read as one person's 2D keypoints; the message says why."""


@dataclass
class Track:
    """One person's keypoints ``[T, K, 3]`` (pixels, confidence), ``filled [T]`` marks frames
    without a detection (interpolated or held), ``size`` = (width, height) from the file or None."""
    keypoints: np.ndarray
    filled: np.ndarray
    size: tuple | None


def load_track(path: str, focus=None, num_frames: int | None = None) -> Track:
    """The track of one person in ``path`` (see module doc); ``num_frames`` extends it to the
    video's length when the person is missing from the last frames."""
    check_input_file(path, "keypoint file", KeypointFileError)
    ext = os.path.splitext(path)[1].lower()
    if ext in (".npy", ".npz"):
        frames, size = _frames_from_array(_read_numpy(path, ext), path), None
    elif ext == ".json":
        frames, size = _frames_from_json(_read_json(path), path)
    else:
        raise KeypointFileError(f"{path}: unsupported file type {ext!r} (use .json, .npy or .npz)")
    keypoints, present = _select(frames, focus, path, num_frames)
    return Track(fill_gaps(keypoints, present), ~present, size)


def _read_json(path: str):
    return load_json(path, "keypoint file", KeypointFileError)


def _read_numpy(path: str, ext: str) -> np.ndarray:
    if ext == ".npy":
        return load_npy(path, "keypoint file", KeypointFileError)
    return load_npz(path, lambda data: _keypoints_from_npz(data, path), "keypoint file", KeypointFileError)


def _keypoints_from_npz(data, path: str) -> np.ndarray:
    if "kpts" in data:
        scores = data["kpts_score"] if "kpts_score" in data else np.ones(data["kpts"].shape[:-1] + (1,))
        return np.concatenate([data["kpts"], scores.reshape(data["kpts"].shape[:-1] + (1,))], -1)
    if "keypoints" in data:
        return data["keypoints"]
    raise KeypointFileError(f"{path}: expected arrays 'kpts' (+ 'kpts_score') or 'keypoints' in the .npz")


def _frames_from_array(array, path: str) -> Frames:
    """Frames of a ``[T, K, C]`` array, one person each."""
    try:
        array = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        raise KeypointFileError(f"{path}: keypoints are not a numeric [T, K, C] array") from None
    if array.ndim != 3 or array.shape[-1] not in (2, 3) or len(array) == 0:
        raise KeypointFileError(f"{path}: expected keypoints [T, K, 2 or 3], got shape {array.shape}")
    return {t: [(None, _with_confidence(pose, path))] for t, pose in enumerate(array)}


def _frames_from_json(data, path: str) -> tuple[Frames, tuple | None]:
    """Dispatch on the JSON layout (module doc); returns frames and the stored image size."""
    size = None
    if isinstance(data, dict):
        size = _size_from(data.get("meta_info") or {}) or _size_from(data)
        body = data.get("instance_info", data.get("keypoints"))
        if body is None:
            raise KeypointFileError(f"{path}: a JSON object needs 'instance_info' or 'keypoints'")
        data = body
    if not isinstance(data, list) or not data:
        raise KeypointFileError(f"{path}: expected a non-empty list of frames or detections")
    if all(isinstance(d, dict) and "image_id" in d for d in data):
        return _frames_from_detections(data, path), size
    if all(isinstance(d, dict) and "instances" in d for d in data):
        return {t: [_person(p, path) for p in d["instances"]] for t, d in enumerate(data)}, size
    if _is_numeric(data):
        return _frames_from_array(data, path), size
    if all(isinstance(frame, list) for frame in data):
        return {t: [_person(p, path) for p in frame] for t, frame in enumerate(data)}, size
    raise KeypointFileError(f"{path}: unrecognised JSON layout (see docs/inference.md for the accepted ones)")


def _size_from(meta: dict) -> tuple | None:
    if "width" in meta and "height" in meta:
        return float(meta["width"]), float(meta["height"])
    return None


def _is_numeric(data) -> bool:
    try:
        return np.asarray(data, dtype=np.float64).ndim == 3
    except (TypeError, ValueError):
        return False


def _frames_from_detections(detections: list, path: str) -> Frames:
    """AlphaPose detections grouped by frame (the number in ``image_id``, else order of appearance)."""
    ids = [d["image_id"] for d in detections]
    numbers = [_frame_number(i) for i in ids]
    if None in numbers:
        order = {i: n for n, i in enumerate(dict.fromkeys(map(str, ids)))}
        numbers = [order[str(i)] for i in ids]
    frames: Frames = {}
    for number, detection in zip(numbers, detections):
        frames.setdefault(number, []).append(_person(detection, path))
    return frames


def _frame_number(image_id) -> int | None:
    if isinstance(image_id, int):
        return image_id
    digits = re.findall(r"\d+", os.path.splitext(os.path.basename(str(image_id)))[0])
    return int(digits[-1]) if digits else None


def _person(obj, path: str) -> tuple:
    """``(track id or None, keypoints [K, 3])`` of one detection (dict or ``[K, C]`` list)."""
    track = None
    if isinstance(obj, dict):
        if "keypoints" not in obj:
            raise KeypointFileError(f"{path}: a detection has no 'keypoints' (keys: {sorted(obj)})")
        track = obj.get("idx", obj.get("track_id"))
        track = track[0] if isinstance(track, list) and len(track) == 1 else track
        points = np.asarray(obj["keypoints"], dtype=np.float64)
        if points.ndim == 1:
            if points.size % 3:
                raise KeypointFileError(f"{path}: flat 'keypoints' must hold K * 3 numbers, got {points.size}")
            points = points.reshape(-1, 3)
        if points.ndim == 2 and points.shape[-1] == 2 and "keypoint_scores" in obj:
            points = np.concatenate([points, np.asarray(obj["keypoint_scores"], np.float64).reshape(-1, 1)], -1)
        obj = points
    return track, _with_confidence(obj, path)


def _with_confidence(pose, path: str) -> np.ndarray:
    """``[K, 2|3]`` -> ``[K, 3]`` (confidence 1 when absent)."""
    try:
        pose = np.asarray(pose, dtype=np.float64)
    except (TypeError, ValueError):
        raise KeypointFileError(f"{path}: a person's keypoints are not numeric") from None
    if pose.ndim != 2 or pose.shape[-1] not in (2, 3):
        raise KeypointFileError(f"{path}: a person's keypoints must be [K, 2 or 3], got shape {pose.shape}")
    return pose if pose.shape[-1] == 3 else np.concatenate([pose, np.ones((len(pose), 1))], -1)


def _select(frames: Frames, focus, path: str, num_frames: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``[T, K, 3]`` (NaN where missing) and ``present [T]`` of the selected person."""
    chosen = {t: [p for i, p in people if focus is None or str(i) == str(focus)] for t, people in frames.items()}
    crowded = [(t, len(people)) for t, people in sorted(chosen.items()) if len(people) > 1]
    if crowded:
        t, n = crowded[0]
        hint = (f"track id {focus!r} appears more than once in a frame" if focus is not None else
                f"pass --focus ID to pick one (track ids in the file: {_track_ids(frames)}; run a tracker, "
                "e.g. AlphaPose --pose_track, if there are none)")
        raise KeypointFileError(f"{path}: frame {t} has {n} people, {len(crowded)} such frames; {hint}")
    found = {t: people[0] for t, people in chosen.items() if people}
    if not found:
        what = f"track id {focus!r} (ids in the file: {_track_ids(frames)})" if focus is not None else "any person"
        raise KeypointFileError(f"{path}: no detection of {what}")
    return _stack(found, path, num_frames)


def _track_ids(frames: Frames) -> list:
    return sorted({str(i) for people in frames.values() for i, _ in people if i is not None})


def _stack(found: dict, path: str, num_frames: int | None) -> tuple[np.ndarray, np.ndarray]:
    joints = {pose.shape[0] for pose in found.values()}
    if len(joints) > 1:
        raise KeypointFileError(f"{path}: people have different joint counts {sorted(joints)}")
    length = max(max(found) + 1, num_frames or 0)
    keypoints = np.full((length, joints.pop(), 3), np.nan)
    for t, pose in found.items():
        keypoints[t] = pose
    present = ~np.isnan(keypoints).any(axis=(1, 2))
    return keypoints, present


def fill_gaps(keypoints: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Fill frames where ``present`` is False: linear interpolation between detections, hold at the ends."""
    frames = np.arange(len(keypoints))
    flat = keypoints.reshape(len(keypoints), -1)
    filled = np.stack([np.interp(frames, frames[present], col[present]) for col in flat.T], axis=1)
    return filled.reshape(keypoints.shape).astype(np.float32)
