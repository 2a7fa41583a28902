"""Read the 2D keypoints of one person in a video from detector output files.

Accepted files (``K`` = 17 for COCO-17 / H36M-17, 26 for Halpe-26; pixels; ``C`` = 3 is
x, y, confidence, ``C`` = 2 means confidence 1):

* ``.npy``: ``[T, K, C]`` array, one pose per frame.
* ``.npz``: EHGFormer's ``kpts [T, K, 2]`` with optional ``kpts_score [T, K, 1]``, or ``keypoints [T, K, C]``.
* ``.json``:
  - AlphaPose: a list of detections ``{"image_id": "12.jpg" | 12, "keypoints": [x, y, s] * K,
    "idx": track_id, ...}``. Frame ids are *ordered*, never used as array indices as they are: the
    (last) number in ``image_id`` orders the frames. When the numbers are frame numbers (all >= 0
    and the largest below ``10 x frames + 1000``; AlphaPose numbers a video's frames from 0) the
    frames between and before them are kept (filled) so the output stays aligned with the video;
    otherwise (timestamps such as ``IMG_20240101123000.jpg``, negative ids) there is one output
    frame per distinct id, in the order of the numbers, and a note says so. Without numbers,
    frames are taken in order of appearance;
  - per-frame lists (MMPose, ViTPose, YOLO-pose exports): a list over frames, each a list of
    people (an empty list for a frame without anyone), or MMPose's ``{"instance_info": [{"instances":
    [...]}, ...]}``; a person is ``[[x, y(, s)], ...]`` or a dict with ``keypoints`` (``[K, 2|3]`` or
    flat ``K * 3``), optional ``keypoint_scores [K]`` and an optional track id ``track_id`` / ``idx``;
  - a plain ``[T, K, C]`` nested list, or a dict with ``keypoints [T, K, C]``.
  A top-level dict may carry the image size as ``width`` and ``height`` (also inside ``meta_info``).

What is refused (one line naming the file): keypoints that are text, ragged lists or not
``[K, 2|3]``; a non-numeric, missing or non-positive ``width``/``height``; an MMPose ``instances``
that is not a list; infinite or implausible coordinates (``|x|, |y| > 1e5`` pixels) and negative
confidences (:mod:`lib.data.values`; confidences above 1 are used with a printed note).

Missing joints: a joint at exactly (0, 0) is how OpenPose and MMPose write "not detected"; it is
treated like NaN (missing), never as a person at the image corner.

One person is selected: with ``focus`` the detections whose track id equals it, otherwise the file
must hold at most one person per frame (several people are an error, never concatenated). Frames
without the person are filled, never dropped: x, y and confidence are interpolated linearly between
the neighbouring detections and held constant before the first and after the last one. A joint
missing in some frames is filled the same way from its own detections; a joint never detected
is placed at the mean of the frame's other joints with confidence 0.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from lib.data.values import PIXEL_LIMIT, check_confidence, check_numbers
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
    check_numbers(keypoints[..., :2], f"{path}: keypoint x, y", PIXEL_LIMIT, KeypointFileError, allow_nan=True)
    note = check_confidence(keypoints[..., 2], f"{path}: keypoint", KeypointFileError)
    if note:
        print(note)
    return Track(fill_gaps(keypoints), ~present, size)


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
    return {t: [(None, _with_confidence(pose, path, f"frame {t}"))] for t, pose in enumerate(array)}


def _frames_from_json(data, path: str) -> tuple[Frames, tuple | None]:
    """Dispatch on the JSON layout (module doc); returns frames and the stored image size."""
    size = None
    if isinstance(data, dict):
        meta = data.get("meta_info")
        size = (_size_from(meta, path) if isinstance(meta, dict) else None) or _size_from(data, path)
        body = data.get("instance_info", data.get("keypoints"))
        if body is None:
            raise KeypointFileError(f"{path}: a JSON object needs 'instance_info' or 'keypoints'")
        data = body
    if not isinstance(data, list) or not data:
        raise KeypointFileError(f"{path}: expected a non-empty list of frames or detections")
    if all(isinstance(d, dict) and "image_id" in d for d in data):
        return _frames_from_detections(data, path), size
    if all(isinstance(d, dict) and "instances" in d for d in data):
        bad = [t for t, d in enumerate(data) if not isinstance(d["instances"], list)]
        if bad:
            raise KeypointFileError(f"{path}: 'instances' of frame {bad[0]} is {data[bad[0]]['instances']!r}, "
                                    "expected a list of people (MMPose's layout)")
        return {t: [_person(p, path) for p in d["instances"]] for t, d in enumerate(data)}, size
    if _is_numeric(data):
        return _frames_from_array(data, path), size
    if all(isinstance(frame, list) for frame in data):
        return {t: [_person(p, path) for p in frame] for t, frame in enumerate(data)}, size
    raise KeypointFileError(f"{path}: unrecognised JSON layout (see docs/inference.md for the accepted ones)")


def _size_from(meta: dict, path: str) -> tuple | None:
    if "width" in meta or "height" in meta:
        return check_image_size(meta.get("width"), meta.get("height"), f"{path}: 'width'/'height'")
    return None


def check_image_size(width, height, whose: str, error: type[InputFileError] = KeypointFileError) -> tuple:
    """``(width, height)`` as positive finite pixels (numbers, not text); else ``error`` naming
    ``whose`` (the file or the flags) and both values."""
    def pixels(value):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            return None
        return float(value) if 0 < float(value) < np.inf else None
    size = pixels(width), pixels(height)
    if None in size:
        raise error(f"{whose}: image size {width!r} x {height!r}; both must be positive, finite numbers of pixels")
    return size


def _is_numeric(data) -> bool:
    try:
        return np.asarray(data, dtype=np.float64).ndim == 3
    except (TypeError, ValueError):
        return False


def _frames_from_detections(detections: list, path: str) -> Frames:
    """AlphaPose detections grouped by frame: ids ordered by their number (module doc)."""
    ids = [d["image_id"] for d in detections]
    numbers = [_frame_number(i) for i in ids]
    if None in numbers:
        order = {i: n for n, i in enumerate(dict.fromkeys(map(str, ids)))}
        numbers = [order[str(i)] for i in ids]
    elif not frame_numbers(numbers):
        rank = {n: r for r, n in enumerate(sorted(set(numbers)))}
        print(f"note: {path}: image ids {min(numbers)} ... {max(numbers)} are not frame numbers (negative or far "
              f"apart): one frame per id, {len(rank)} frames in the order of the ids")
        numbers = [rank[n] for n in numbers]
    frames: Frames = {}
    for i, (number, detection) in enumerate(zip(numbers, detections)):
        frames.setdefault(number, []).append(_person(detection, path, f"detection {i} (image_id {ids[i]!r})"))
    return frames


def frame_numbers(numbers: list[int]) -> bool:
    """Whether image-id numbers are a video's frame numbers (kept as positions, gaps filled)."""
    return min(numbers) >= 0 and max(numbers) < 10 * len(set(numbers)) + 1000


def _frame_number(image_id) -> int | None:
    if isinstance(image_id, (int, np.integer)) and not isinstance(image_id, bool):
        return int(image_id)
    digits = re.findall(r"\d+", os.path.splitext(os.path.basename(str(image_id)))[0])
    return int(digits[-1]) if digits else None


def _person(obj, path: str, which: str = "a person") -> tuple:
    """``(track id or None, keypoints [K, 3])`` of one detection (dict or ``[K, C]`` list)."""
    track = None
    if isinstance(obj, dict):
        if "keypoints" not in obj:
            raise KeypointFileError(f"{path}: {which} has no 'keypoints' (keys: {sorted(obj)})")
        track = obj.get("idx", obj.get("track_id"))
        track = track[0] if isinstance(track, list) and len(track) == 1 else track
        points = _numbers(obj["keypoints"], path, which)
        if points.ndim == 1:
            if points.size % 3:
                raise KeypointFileError(f"{path}: flat 'keypoints' of {which} must hold K * 3 numbers, got {points.size}")
            points = points.reshape(-1, 3)
        if points.ndim == 2 and points.shape[-1] == 2 and "keypoint_scores" in obj:
            scores = _numbers(obj["keypoint_scores"], path, f"{which} ('keypoint_scores')")
            if scores.size != len(points):
                raise KeypointFileError(f"{path}: {which} has {len(points)} keypoints but {scores.size} scores")
            points = np.concatenate([points, scores.reshape(-1, 1)], -1)
        obj = points
    return track, _with_confidence(obj, path, which)


def _numbers(value, path: str, which: str) -> np.ndarray:
    """``value`` as a float array: text (``"12.5"``), ragged lists and other objects are refused."""
    try:
        raw = np.asarray(value)
    except ValueError:                       # numpy >= 1.24: ragged nested lists
        raw = np.asarray(value, dtype=object)
    if raw.dtype.kind in "US":
        raise KeypointFileError(f"{path}: the keypoints of {which} are text ({str(raw.flat[0])[:20]!r}...), "
                                "expected numbers")
    if raw.dtype.kind not in "fiub":
        raise KeypointFileError(f"{path}: the keypoints of {which} are not a regular numeric array (ragged "
                                "lists, text or null values)")
    return raw.astype(np.float64)


def _with_confidence(pose, path: str, which: str = "a person") -> np.ndarray:
    """``[K, 2|3]`` -> ``[K, 3]`` (confidence 1 when absent); a joint at (0, 0) -> NaN (missing)."""
    pose = _numbers(pose, path, which)
    if pose.ndim != 2 or pose.shape[-1] not in (2, 3):
        raise KeypointFileError(f"{path}: the keypoints of {which} must be [K, 2 or 3], got shape {pose.shape}")
    pose = pose if pose.shape[-1] == 3 else np.concatenate([pose, np.ones((len(pose), 1))], -1)
    undetected = (pose[:, 0] == 0) & (pose[:, 1] == 0)
    pose[undetected] = np.nan
    return pose


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
    present = ~np.isnan(keypoints[..., :2]).all(axis=(1, 2))
    if not present.any():
        raise KeypointFileError(f"{path}: every keypoint is missing (NaN or at (0, 0)): nothing was detected")
    return keypoints, present


def fill_gaps(keypoints: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """Fill missing values (NaN; or whole frames where ``present`` is False): each joint is
    interpolated linearly between its own detections and held before the first and after the
    last; a joint never detected is put at the mean of the frame's joints, confidence 0."""
    keypoints = np.array(keypoints, dtype=np.float64)
    if present is not None:
        keypoints[~np.asarray(present)] = np.nan
    frames = np.arange(len(keypoints))
    for j in range(keypoints.shape[1]):
        seen = ~np.isnan(keypoints[:, j, :2]).any(axis=-1)
        if seen.any():
            for c in range(keypoints.shape[2]):
                keypoints[:, j, c] = np.interp(frames, frames[seen], keypoints[seen, j, c])
    never = np.isnan(keypoints[..., :2]).any(axis=(0, 2))
    if never.any():
        with np.errstate(invalid="ignore"):
            centre = np.nanmean(keypoints[:, ~never, :2], axis=1)
        keypoints[:, never, :2] = centre[:, None]
        keypoints[:, never, 2] = 0.0
    return keypoints.astype(np.float32)
