"""The codec: clips -> model input and training target, predictions -> poses in pixels and mm.

One object owns the tensor contract between the data and the model (README "Tensor contract"),
in the spirit of mmpose's codecs, so the trainer, the evaluator, the heatmaps and the video
lifting encode and decode the same way. Every method takes numpy arrays or torch tensors.

=====================  ==================================================================
input ``pose2d``       ``[..., T, 17, 3]``: x_n = 2x/w - 1, y_n = 2y/w - h/w, confidence
label                  ``[..., T, 17, 3]``: normalised ``joint3d_image`` (z_n = 2z/w), not
                       root-relative (what the clip stores hold)
model input            ``pose2d``; with ``gt_2d`` its x, y come from the label and the
                       confidence is 1; with ``no_conf`` the confidence channel is dropped
training target        static (``rootrel``): every frame root-relative; global: only z is
                       made relative to the root depth of the clip's first frame (MotionBERT)
prediction             flip test-time augmentation (mean of the prediction and the mirrored
                       prediction of the mirrored input); static: root set to 0; ``gt_2d``:
                       x, y replaced by the input's (docs/protocols.md)
pixels                 global: inverse of the input normalisation (image coordinates, z in
                       the same pixel scale); static: root-relative, scaled by w / 2
millimetres            the evaluation's decoding: inverse normalisation x the per-frame
                       2.5d factor lambda (docs/protocols.md; metrics are root-relative, so the
                       image offset of a static prediction cancels)
=====================  ==================================================================
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib.data.normalize import denormalize_3d
from lib.data.skeleton import flip


@dataclass(frozen=True)
class PoseCodec:
    """Encoding/decoding options of a config: ``rootrel``, ``no_conf`` and ``gt_2d``."""
    rootrel: bool = True
    no_conf: bool = False
    gt_2d: bool = False

    @classmethod
    def from_config(cls, cfg) -> "PoseCodec":
        return cls(bool(cfg["rootrel"]), bool(cfg["no_conf"]), bool(cfg["gt_2d"]))

    @property
    def input_channels(self) -> int:
        return 2 if self.no_conf else 3

    # -- encoding ---------------------------------------------------------------------------------
    def with_gt_2d(self, pose2d, label):
        """``pose2d`` with x, y from ``label`` and confidence 1 when ``gt_2d`` (a copy), else itself."""
        if not self.gt_2d:
            return pose2d
        if label is None:
            raise ValueError("gt_2d input needs the clip's 3D label")
        out = pose2d.clone() if hasattr(pose2d, "clone") else np.array(pose2d, copy=True)
        out[..., :2] = label[..., :2]
        out[..., 2] = 1.0
        return out

    def model_channels(self, x):
        """Drop the confidence channel for ``no_conf`` models."""
        return x[..., :2] if self.no_conf else x

    def encode_input(self, pose2d, label=None):
        """Model input of a clip: ``gt_2d`` replacement, then the channels the model takes."""
        return self.model_channels(self.with_gt_2d(pose2d, label))

    def encode_target(self, label):
        """Training target from a normalised label ``[N, T, 17, 3]`` (static / global)."""
        if self.rootrel:
            return label - label[:, :, :1, :]
        target = label.clone() if hasattr(label, "clone") else np.array(label, copy=True)
        target[..., 2] = target[..., 2] - label[:, :1, :1, 2]
        return target

    # -- prediction and decoding -----------------------------------------------------------------
    def predict(self, run, pose2d, label=None, flip_tta: bool = True):
        """Normalised prediction ``[N, T, 17, 3]`` of ``run`` (a model or runner: model input ->
        output) for clips ``pose2d``, with flip TTA and the root / gt_2d handling above."""
        x = self.encode_input(pose2d, label)
        pred = run(x)
        if flip_tta:
            pred = (pred + flip(run(flip(x)))) / 2
        if self.rootrel:
            pred[..., 0, :] = 0
        if self.gt_2d:
            pred[..., :2] = x[..., :2]
        return pred

    def decode_pixels(self, pred: np.ndarray, width, height) -> np.ndarray:
        """Normalised 3D -> pixels (see module docstring); ``width``/``height`` broadcast per frame."""
        if self.rootrel:
            return (np.asarray(pred) * (np.asarray(width, np.float64)[..., None, None] / 2)).astype(np.float32)
        return denormalize_3d(pred, width, height)

    @staticmethod
    def decode_mm(pred: np.ndarray, width, height, factor) -> np.ndarray:
        """Normalised 3D -> millimetres as the evaluation scores them: inverse normalisation with
        the clip's resolution, times the per-frame 2.5d factor (``factor`` broadcast per frame)."""
        return denormalize_3d(pred, width, height) * np.asarray(factor)[..., None, None]
