"""Streaming lifting: one frame of 2D keypoints in, the 3D pose of the frame ``delay`` frames back out.

For a webcam or a live detector (docs/inference.md, "Streaming"). :class:`StreamLifter` keeps a
ring buffer of the last ``maxlen`` frames and runs the model once per pushed frame on that fixed
window (bounded latency: one model call of one fixed shape per frame, flip TTA doubling it). The
pose it returns is the one at window position ``maxlen - 1 - delay``: the frame ``delay`` frames
back, seen with ``delay`` frames of look-ahead and ``maxlen - 1 - delay`` frames of history.

Everything else is offline lifting's (:mod:`lib.inference.lift`), so a window gives exactly the
offline lift of the same ``maxlen`` frames at that position:

- normalisation: :func:`lib.data.normalize.normalize_2d` of each pushed frame (pixels + image size,
  the training contract);
- prediction: :func:`lib.inference.lift.predict` (the codec, flip TTA, the static root at 0);
- padding: before the buffer is full its start holds copies of the first frame (the window keeps
  its length, so the latency does not change); :meth:`StreamLifter.flush` ends a stream by pushing
  copies of the last frame, as offline lifting pads a short clip with its last frame;
- global models: each window's depth is relative to its own first frame; every new window's z is
  shifted to agree with the previous window over the ``maxlen - 1`` frames they share
  (:func:`lib.inference.lift.depth_shift`, the offline stitching rule) and the first window puts
  frame 0's root depth at 0 (as :func:`lib.inference.lift.finish_root`), so the stream keeps one
  depth trajectory.

:class:`RateConverter` resamples a live feed to the model's frame rate as it arrives (the same
frames as :func:`lib.inference.video.resample` of the whole series), and :func:`run_live` drives a
detector and a lifter frame by frame, timing each step (``infer_video.py --stream``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from lib.data.codec import PoseCodec
from lib.data.keypoints import to_h36m
from lib.data.normalize import normalize_2d
from lib.data.skeleton import NUM_JOINTS
from lib.data.values import PIXEL_LIMIT, check_numbers
from lib.errors import ConfigError, InputFileError
from lib.inference.lift import depth_shift, predict


class StreamLifter:
    """Push the H36M-17 keypoints of one frame (pixels), get the 3D pose of the frame ``delay`` back.

    Args:
        runner: an :class:`~lib.inference.lift.OnnxRunner` or :class:`~lib.inference.lift.TorchRunner`
            (``lib.inference.session.make_runner``); a graph with a fixed clip length must take ``maxlen``.
        maxlen: the window (the model's clip length).
        rootrel: static model (root at the origin) or global (root trajectory).
        width, height: image size in pixels (the normalisation's).
        delay: frames of look-ahead, ``0 <= delay < maxlen`` (default ``maxlen // 4``).
        flip_tta: average with the mirrored prediction (twice the model time).

    :meth:`push` returns ``None`` for the first ``delay`` frames, then one pose per frame
    ``[17, 3]`` in normalised units (:mod:`lib.inference.lift`); :meth:`flush` returns the last
    ``delay`` poses. Example::

        lifter = StreamLifter(runner, 27, rootrel=True, width=1280, height=720, delay=6)
        for keypoints in camera:                 # [17, 3] x, y (pixels), confidence
            pose = lifter.push(keypoints)        # the pose of the frame 6 frames ago, or None
        rest = lifter.flush()                    # the last 6 poses
    """

    def __init__(self, runner, maxlen: int, rootrel: bool, width: float, height: float,
                 delay: int | None = None, flip_tta: bool = True):
        delay = maxlen // 4 if delay is None else delay
        if not 0 <= delay < maxlen:
            raise ConfigError(f"delay must be in [0, maxlen={maxlen}) frames, got {delay}")
        if runner.fixed_len not in (None, maxlen):
            raise InputFileError(f"the model takes clips of exactly {runner.fixed_len} frames; streaming needs "
                                 f"the window maxlen={maxlen} (pass the model's --config or re-export it)")
        self.runner, self.maxlen, self.rootrel, self.delay, self.flip_tta = runner, maxlen, rootrel, delay, flip_tta
        self.size = (float(width), float(height))
        self.codec = PoseCodec(rootrel)
        self.buffer = np.zeros((maxlen, NUM_JOINTS, 3), np.float32)   # ring: frame t at t % maxlen
        self.received = 0          # frames pushed
        self.emitted = 0           # poses returned
        self.model_calls = 0
        self.time = -1             # window time of the newest frame (flush pads past the last one)
        self.previous_root_z = None   # global: the aligned root depth of the last window [maxlen]
        self.finished = False

    @property
    def position(self) -> int:
        """Where in the window the returned frame sits."""
        return self.maxlen - 1 - self.delay

    def push(self, keypoints: np.ndarray) -> np.ndarray | None:
        """Add frame ``received`` (``[17, 3]`` pixels + confidence, or ``[17, 2]``: confidence 1);
        return the pose of frame ``received - delay`` once it exists."""
        if self.finished:
            raise InputFileError("this stream was flushed; start a new StreamLifter")
        keypoints = np.asarray(keypoints, np.float32)
        if keypoints.shape not in ((NUM_JOINTS, 2), (NUM_JOINTS, 3)):
            raise InputFileError(f"a stream frame is H36M-17 keypoints [17, 3] (x, y, confidence), got {keypoints.shape}")
        if keypoints.shape[1] == 2:
            keypoints = np.concatenate([keypoints, np.ones((NUM_JOINTS, 1), np.float32)], 1)
        check_numbers(keypoints, "a stream frame", PIXEL_LIMIT, InputFileError, hint="give the last good frame instead")
        self.received += 1
        return self._advance(normalize_2d(keypoints[None], *self.size)[0])

    def flush(self) -> list[np.ndarray]:
        """The poses of the last ``delay`` frames (copies of the last frame pad the windows); ends the stream."""
        poses = []
        if self.received:
            last = self.buffer[(self.received - 1) % self.maxlen].copy()
            while self.emitted < self.received:
                pose = self._advance(last)
                if pose is not None:            # a stream shorter than the delay pads before its first pose
                    poses.append(pose)
        self.finished = True
        return poses

    def window(self) -> np.ndarray:
        """The current window ``[maxlen, 17, 3]`` (normalised), oldest frame first."""
        start = (self.time + 1) % self.maxlen
        return np.concatenate([self.buffer[start:], self.buffer[:start]])

    def _advance(self, frame: np.ndarray) -> np.ndarray | None:
        """Put ``frame`` at window time ``time`` (first frame: the whole buffer, the start padding)
        and, once a pose is due, run the model on the window."""
        self.time += 1
        if self.time == 0:
            self.buffer[:] = frame
        self.buffer[self.time % self.maxlen] = frame
        if self.time < self.delay:
            return None
        pred = predict(self.runner, self.window()[None], self.flip_tta, 1, self.codec)[0]
        self.model_calls += 1
        if not self.rootrel:
            if self.previous_root_z is None:        # frame 0 at window position maxlen - 1 - time
                shift = -pred[self.maxlen - 1 - self.time, 0, 2]
            else:                                   # consecutive windows share maxlen - 1 frames
                shift = depth_shift(self.previous_root_z[1:], pred[:-1, 0, 2])
            pred[..., 2] += shift
            self.previous_root_z = pred[:, 0, 2].copy()
        self.emitted += 1
        return pred[self.position].astype(np.float32)


class RateConverter:
    """Resample a live series from ``source_fps`` to ``target_fps`` as it arrives: each pushed frame
    yields the target frames whose times fall up to it (linear interpolation between the last two
    frames), so a whole series gives :func:`lib.inference.video.resample`'s frames."""

    def __init__(self, source_fps: float, target_fps: float):
        if not (source_fps > 0 and target_fps > 0):
            raise ConfigError(f"frame rates must be positive, got {source_fps:g} and {target_fps:g}")
        self.source_fps, self.target_fps = source_fps, target_fps
        self.count = 0             # source frames seen
        self.next_out = 0          # index of the next target frame
        self.last = None

    def push(self, frame: np.ndarray) -> list[np.ndarray]:
        frame = np.asarray(frame)
        now, out = self.count / self.source_fps, []
        while self.next_out / self.target_fps <= now + 1e-6 / self.target_fps:
            when = self.next_out / self.target_fps
            if self.last is None or self.count == 0:
                out.append(frame.copy())
            else:
                weight = min(max((when - (self.count - 1) / self.source_fps) * self.source_fps, 0.0), 1.0)
                out.append(((1 - weight) * self.last + weight * frame).astype(frame.dtype))
            self.next_out += 1
        self.last, self.count = frame, self.count + 1
        return out


def percentiles(seconds: list[float]) -> dict:
    """``{'p50': ms, 'p99': ms, 'mean': ms, 'count': n}`` of a list of durations in seconds."""
    ms = np.asarray(seconds, np.float64) * 1000
    if not len(ms):
        return {"p50": float("nan"), "p99": float("nan"), "mean": float("nan"), "count": 0}
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
            "mean": float(ms.mean()), "count": int(len(ms))}


@dataclass
class LiveResult:
    """What :func:`run_live` saw and produced."""
    landmarks: np.ndarray              # [T, 33, 3] detector output per video frame (zeros: nobody)
    present: np.ndarray                # [T] a person was detected
    pose3d: np.ndarray                 # [T_model, 17, 3] normalised, at the model's frame rate
    detect_s: list = field(default_factory=list)     # per video frame
    lift_s: list = field(default_factory=list)       # per model call (one per model-rate frame)
    frame_s: list = field(default_factory=list)      # per video frame: detection + its lifting
    wall_s: float = 0.0                               # the whole stream, flush included


def run_live(frame_source: Iterable[np.ndarray], detector: Callable, lifter: StreamLifter,
             converter: RateConverter, to_coco: Callable) -> LiveResult:
    """Feed video frames one at a time, as fast as they come (no pacing): detect, map to H36M-17,
    resample to the model's rate, push. A frame without a person repeats the last detection (a live
    feed cannot interpolate towards the future); frames before the first detection get the first one."""
    landmarks, present, poses = [], [], []
    result = LiveResult(np.zeros(0), np.zeros(0, bool), np.zeros(0))
    held, waiting = None, 0
    start = time.perf_counter()
    for frame in frame_source:
        t0 = time.perf_counter()
        points = detector(frame)
        t1 = time.perf_counter()
        result.detect_s.append(t1 - t0)
        present.append(points is not None)
        landmarks.append(points if points is not None else np.zeros((33, 3), np.float32))
        if points is not None:
            held = to_h36m(to_coco(points), "coco")
        if held is None:
            waiting += 1
            result.frame_s.append(t1 - t0)
            continue
        for _ in range(waiting + 1):
            for model_frame in converter.push(held):
                t2 = time.perf_counter()
                pose = lifter.push(model_frame)
                result.lift_s.append(time.perf_counter() - t2)
                if pose is not None:
                    poses.append(pose)
        waiting = 0
        result.frame_s.append(time.perf_counter() - t0)
    if held is None:
        raise InputFileError("no person was detected in any frame of the video" if landmarks
                             else "the video has no frames")
    poses.extend(lifter.flush())
    result.wall_s = time.perf_counter() - start
    result.landmarks, result.present, result.pose3d = np.stack(landmarks), np.array(present), np.stack(poses)
    return result
