"""MotionBERT's image-space normalisation of H36M keypoints, vectorised over frames.

Both axes are scaled by 2/w (isotropic), so x spans [-1, 1] and y spans [-h/w, h/w]:

    x_n = 2x/w - 1,    y_n = 2y/w - h/w,    z_n = 2z/w        (z: scale only)

``w`` and ``h`` are per-frame camera resolutions in pixels (arrays broadcastable to the frame
axis). ``denormalize`` is the exact inverse. Extra channels (e.g. confidence) pass through.
"""
from __future__ import annotations

import numpy as np


def _per_frame(v, ndim: int) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v.reshape(v.shape + (1,) * (ndim - v.ndim)) if v.ndim else v


def normalize_2d(pose: np.ndarray, w, h) -> np.ndarray:
    """Pixel-space 2D ``[F, J, C>=2]`` -> normalised x, y (float32); other channels untouched."""
    return _apply(pose, w, h, forward=True, depth=False)


def normalize_3d(pose: np.ndarray, w, h) -> np.ndarray:
    """Pixel-scaled 3D ``[F, J, 3]`` (x, y, z) -> normalised units, z scaled by 2/w."""
    return _apply(pose, w, h, forward=True, depth=True)


def denormalize_3d(pose: np.ndarray, w, h) -> np.ndarray:
    """Inverse of :func:`normalize_3d`: normalised ``[F, J, 3]`` -> pixel-scaled 3D."""
    return _apply(pose, w, h, forward=False, depth=True)


def _apply(pose: np.ndarray, w, h, forward: bool, depth: bool) -> np.ndarray:
    pose = np.asarray(pose)
    out = pose.astype(np.float64, copy=True)
    w = _per_frame(w, pose.ndim - 1)
    h = _per_frame(h, pose.ndim - 1)
    if forward:
        out[..., 0] = out[..., 0] * 2 / w - 1
        out[..., 1] = out[..., 1] * 2 / w - h / w
        if depth:
            out[..., 2] = out[..., 2] * 2 / w
    else:
        out[..., 0] = (out[..., 0] + 1) * w / 2
        out[..., 1] = (out[..., 1] + h / w) * w / 2
        if depth:
            out[..., 2] = out[..., 2] * w / 2
    return out.astype(np.float32)
