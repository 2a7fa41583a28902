"""From a video file to the model's 2D input: decoding, detection, frame-rate resampling, the keypoint file.

Decoding: FFmpeg through ``imageio-ffmpeg`` (a wheel that ships an FFmpeg binary; the same binary
lets matplotlib write the MP4 rendering); the frame rate and size are FFmpeg's for the stream. Detection: :class:`lib.inference.detector.BlazePose`
on every frame. The 33 landmarks become COCO-17 (:data:`lib.data.keypoints.BLAZEPOSE_TO_COCO`)
for the keypoint file and H36M-17 for the model, the same way a COCO-17 keypoint file is read, so
``infer_wild.py`` on the written file lifts the same poses.

Frame rate: a model sees clips at the frame rate of its training clips (H36M's 50 fps divided by
the config's ``sample_stride``: 25 fps at tds 2, 50 fps at tds 1). A video at another rate is
resampled to it (:func:`resample`: linear interpolation of x, y and confidence at the model's frame
times) before lifting, and the 3D poses are resampled back, so the outputs have one pose per
video frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from lib.data.keypoint_files import fill_gaps
from lib.data.keypoints import BLAZEPOSE_TO_COCO
from lib.errors import InputFileError
from lib.io import check_input_file, write_json

COCO_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
              "left_knee", "right_knee", "left_ankle", "right_ankle")
H36M_FPS = 50.0


@dataclass
class VideoInfo:
    path: str
    fps: float
    width: int
    height: int


def open_video(path: str) -> VideoInfo:
    """Frame rate and size of the first video stream of ``path`` (as FFmpeg reports them)."""
    import imageio_ffmpeg
    check_input_file(path, "video")
    reader = imageio_ffmpeg.read_frames(path)
    try:
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputFileError(f"{path}: not a readable video ({first})") from None
    finally:
        reader.close()
    fps, (width, height) = meta.get("fps") or 0.0, meta.get("size") or (0, 0)
    if not fps > 0 or not width > 0:
        raise InputFileError(f"{path}: the video stream has no frame rate or size")
    return VideoInfo(path, float(fps), int(width), int(height))


def frames(path: str) -> Iterator[np.ndarray]:
    """The RGB frames ``[H, W, 3]`` uint8 of the video, in order (FFmpeg through imageio-ffmpeg)."""
    import imageio_ffmpeg
    reader = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
    try:
        width, height = next(reader)["size"]
        for data in reader:
            yield np.frombuffer(data, np.uint8).reshape(height, width, 3)
    finally:
        reader.close()


def detect(frame_source: Iterator[np.ndarray], detector: Callable, progress: bool = True
           ) -> tuple[np.ndarray, np.ndarray, float]:
    """``(landmarks [T, 33, 3], present [T], seconds per frame)``; frames without a person are zeros."""
    found, present, start = [], [], time.perf_counter()
    for t, frame in enumerate(frame_source):
        points = detector(frame)
        present.append(points is not None)
        found.append(points if points is not None else np.zeros((33, 3), np.float32))
        if progress and (t + 1) % 100 == 0:
            print(f"  detected {t + 1} frames ({sum(present)} with a person)", flush=True)
    if not found:
        raise InputFileError("the video has no frames")
    elapsed = (time.perf_counter() - start) / len(found)
    return np.stack(found), np.array(present), elapsed


def to_coco(landmarks: np.ndarray) -> np.ndarray:
    """BlazePose-33 ``[..., 33, C]`` -> COCO-17 ``[..., 17, C]``."""
    return landmarks[..., BLAZEPOSE_TO_COCO, :]


def track(landmarks: np.ndarray, present: np.ndarray) -> np.ndarray:
    """COCO-17 ``[T, 17, 3]`` with the frames without a person filled (as for keypoint files)."""
    if not present.any():
        raise InputFileError("no person was detected in any frame of the video")
    return fill_gaps(to_coco(landmarks), present)


def resample(series: np.ndarray, source_fps: float, target_fps: float, length: int | None = None) -> np.ndarray:
    """``series [T, ...]`` sampled at ``source_fps`` -> at ``target_fps`` (linear; ends held), covering
    the same time span (or ``length`` frames)."""
    if abs(source_fps - target_fps) < 1e-6 and length in (None, len(series)):
        return series
    source_t = np.arange(len(series)) / source_fps
    if length is None:
        length = int(np.floor(source_t[-1] * target_fps + 1e-6)) + 1
    target_t = np.arange(length) / target_fps
    flat = series.reshape(len(series), -1)
    out = np.stack([np.interp(target_t, source_t, col) for col in flat.T], axis=1)
    return out.reshape((length,) + series.shape[1:]).astype(series.dtype)


def model_fps(sample_stride: int | None, fallback: float = 25.0) -> float:
    """The frame rate a model's clips were cut at: H36M's 50 fps over the config's ``sample_stride``."""
    return H36M_FPS / sample_stride if sample_stride else fallback


def write_keypoints_json(path: str, landmarks: np.ndarray, present: np.ndarray, info: VideoInfo,
                         detector: str) -> None:
    """MMPose's video result layout with COCO-17 keypoints (pixels), one ``instance_info`` entry per
    frame (no instances where nobody was detected) and the image size in ``meta_info``."""
    coco = to_coco(landmarks)
    frames_info = []
    for t, (pose, here) in enumerate(zip(coco, present)):
        instances = []
        if here:
            low, high = pose[:, :2].min(0), pose[:, :2].max(0)
            instances.append({"keypoints": np.round(pose[:, :2], 2).tolist(),
                              "keypoint_scores": np.round(pose[:, 2], 4).tolist(),
                              "bbox": [np.round(np.concatenate([low, high]), 2).tolist()],
                              "bbox_score": round(float(pose[:, 2].mean()), 4), "track_id": 0})
        frames_info.append({"frame_id": t, "instances": instances})
    meta = {"dataset_name": "coco", "keypoint_names": list(COCO_NAMES), "width": info.width,
            "height": info.height, "fps": info.fps, "video": info.path, "detector": detector}
    write_json(path, {"meta_info": meta, "instance_info": frames_info})
