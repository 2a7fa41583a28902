"""Lift the normalised 2D keypoints of a whole video to 3D with a clip model (at most maxlen frames).

Coordinates (the training contract, MotionBERT's H36M normalisation): ``x_n = 2x/w - 1``, ``y_n = 2y/w - h/w``
(pixels divided by half the image *width*, origin at the image centre), confidence unchanged;
the 3D output uses the same units with ``z_n = 2z/w``.

Windowing: a video of ``T <= maxlen`` frames is one clip (edge-padded to the graph's length when
the model only accepts one length). A longer video is cut into windows of ``maxlen`` frames that
overlap by ``overlap`` frames (the last window ends on the last frame), and every frame's
prediction is the mean over the windows that cover it, so no frame is dropped.

Root handling: a static (``rootrel``) model predicts root-relative poses; its root is set to 0.
A global (``rootrel`` False) model predicts the root's image-plane x, y and its depth relative to
the first frame *of its window* (MotionBERT's global target). To keep one depth trajectory over the video (not
reset per window, as MotionBERT's ``infer_wild.py`` does), each window's z is shifted by the mean difference of the root
depth over the frames it shares with the windows before it; finally z is offset so that the root
depth of frame 0 is 0.
"""
from __future__ import annotations

import numpy as np
import torch

from lib.data.codec import PoseCodec
from lib.errors import ConfigError, InputFileError
from lib.io import check_input_file


class OnnxRunner:
    """Runs an exported ``.onnx`` (input ``[N, T, 17, C]`` -> output ``[N, T, 17, 3]``) on the CPU."""

    def __init__(self, path: str, threads: int = 0):
        import onnxruntime as ort
        check_input_file(path, "ONNX model")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own classes for a bad file
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputFileError(f"{path}: not a loadable ONNX model ({first}); export one with "
                                 "deployment/deployment_pose3d.py") from None
        meta = self.session.get_inputs()[0]
        self.input_name, self.channels = meta.name, meta.shape[-1]
        self.fixed_len = meta.shape[1] if isinstance(meta.shape[1], int) else None
        self.metadata = self.session.get_modelmeta().custom_metadata_map

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x[..., :self.channels])})[0]


class TorchRunner:
    """Runs a PyTorch model in eval mode without gradients (any clip length up to its maxlen)."""

    fixed_len = None

    def __init__(self, model: torch.nn.Module, channels: int = 3):
        self.model, self.channels = model.eval(), channels

    @torch.inference_mode()
    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(np.ascontiguousarray(x[..., :self.channels]))).numpy()


def window_starts(num_frames: int, maxlen: int, overlap: int) -> list[int]:
    """First frames of windows of ``maxlen`` covering ``num_frames`` (``> maxlen``), consecutive
    windows sharing ``overlap`` frames, the last one aligned to the end."""
    if not 0 <= overlap < maxlen:
        raise ConfigError(f"overlap must be in [0, maxlen={maxlen}), got {overlap}")
    starts = list(range(0, num_frames - maxlen, maxlen - overlap))
    return starts + [num_frames - maxlen]


def predict(runner, clips: np.ndarray, flip_tta: bool = True, batch_size: int = 8,
            codec: PoseCodec = PoseCodec(rootrel=False)) -> np.ndarray:
    """Model output ``[N, T, 17, 3]`` for ``clips [N, T, 17, 3]`` in batches, decoded by ``codec``
    (flip TTA: averaged with the mirrored prediction of the mirrored input; the runner picks
    the channels its model takes)."""
    out = [codec.predict(runner, clips[start:start + batch_size].astype(np.float32), flip_tta=flip_tta)
           for start in range(0, len(clips), batch_size)]
    return np.concatenate(out)


def lift(pose2d: np.ndarray, runner, maxlen: int, rootrel: bool, overlap: int,
         flip_tta: bool = True, batch_size: int = 8) -> np.ndarray:
    """Normalised 3D ``[T, 17, 3]`` for normalised 2D ``[T, 17, 3]`` of any length (module doc)."""
    num_frames = len(pose2d)
    if num_frames <= maxlen:
        length = runner.fixed_len or num_frames
        clip = np.concatenate([pose2d, np.repeat(pose2d[-1:], length - num_frames, axis=0)])
        pred = predict(runner, clip[None], flip_tta, batch_size, PoseCodec(rootrel))[0, :num_frames]
    else:
        if not rootrel and overlap < 1:
            raise ConfigError("a global model needs overlap >= 1 to align the depth of consecutive windows")
        starts = window_starts(num_frames, maxlen, overlap)
        clips = np.stack([pose2d[s:s + maxlen] for s in starts])
        preds = predict(runner, clips, flip_tta, batch_size, PoseCodec(rootrel))
        pred = stitch(preds, starts, num_frames, align_depth=not rootrel)
    return finish_root(pred, rootrel)


def stitch(preds: np.ndarray, starts: list[int], num_frames: int, align_depth: bool) -> np.ndarray:
    """Average overlapping window predictions ``[W, L, 17, 3]`` into ``[num_frames, 17, 3]``;
    ``align_depth`` first shifts each window's z to agree on the root depth of shared frames."""
    total = np.zeros((num_frames,) + preds.shape[2:], np.float64)
    count = np.zeros(num_frames)
    for start, pred in zip(starts, preds.astype(np.float64)):
        frames = slice(start, start + len(pred))
        shared = count[frames] > 0
        if align_depth and shared.any():
            pred[..., 2] += depth_shift(total[frames][shared, 0, 2] / count[frames][shared], pred[shared, 0, 2])
        total[frames] += pred
        count[frames] += 1
    return (total / count[:, None, None]).astype(np.float32)


def depth_shift(reference_root_z: np.ndarray, window_root_z: np.ndarray) -> float:
    """The z shift that makes a global window's root depth agree on average with ``reference_root_z``
    over the frames they share (both ``[S]``): how consecutive windows keep one depth trajectory."""
    return float((reference_root_z - window_root_z).mean())


def finish_root(pred: np.ndarray, rootrel: bool) -> np.ndarray:
    """Static model: root at the origin. Global model: root depth 0 at frame 0."""
    pred = pred.copy()
    if rootrel:
        pred[:, 0, :] = 0
    else:
        pred[..., 2] -= pred[0, 0, 2]
    return pred


def to_pixels(pose3d: np.ndarray, width: float, height: float, rootrel: bool) -> np.ndarray:
    """Normalised 3D -> pixels (z in the same pixel scale), see :meth:`PoseCodec.decode_pixels`:
    a global model's x, y land on the image; a static model's root-relative pose is scaled by w/2."""
    return PoseCodec(rootrel).decode_pixels(pose3d, width, height)
