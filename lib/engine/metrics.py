"""Evaluation metrics for 3D human pose (numpy, computed in float64).

Poses are arrays ``[..., J, 3]``; sequences are ``[..., T, J, 3]`` with time on axis -3. Every
per-frame metric returns one value per pose (the leading ``...`` shape), in the units of its
inputs (millimetres in evaluation). No function modifies its inputs.

Pose metrics (VideoPose3D definitions, per frame instead of one global mean):

* :func:`mpjpe`  -- P1: mean over joints of the Euclidean distance, no alignment.
* :func:`p_mpjpe` -- P2: MPJPE after the optimal similarity transform (scale, rotation,
  translation; reflections excluded) of the prediction onto the ground truth.
* :func:`n_mpjpe` -- MPJPE after the optimal uniform scale only.
* :func:`mpjve`, :func:`acceleration_error` -- errors of first / second time differences.

Aggregation for the MotionBERT protocol (its ``train.py`` evaluation; docs/protocols.md; see :func:`evaluate_frames`): clips whose
first frame belongs to a blocked sequence are skipped, per-frame errors of overlapping clips are
averaged per global frame, frames are pooled per action, and the score is the unweighted mean
of the per-action means. Coverage is tracked with an explicit count, so a frame whose error is
exactly 0 still counts (MotionBERT's evaluation treats a summed error of 0 as "not covered").
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from lib.data.h36m import sequence_id

# S9 Greeting-2, SittingDown-2 and Waiting-1: known ground-truth problems (MotionBERT's block list).
BLOCK_LIST = ("s_09_act_05_subact_02", "s_09_act_10_subact_02", "s_09_act_13_subact_01")


def _as_f64(*arrays):
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


def mpjpe(pred, gt) -> np.ndarray:
    """P1. Per-pose mean over joints of ``||pred - gt||``; no alignment; ``[..., J, 3] -> [...]``.

    Root handling is the caller's: pass root-relative poses for the usual protocol.
    """
    pred, gt = _as_f64(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1)


def p_mpjpe(pred, gt) -> np.ndarray:
    """P2. Per-pose MPJPE after aligning ``pred`` to ``gt`` by the optimal similarity transform.

    Orthogonal Procrustes on the centred, Frobenius-normalised point sets via a batched SVD;
    if the optimal rotation has det < 0, the last singular vector and value are negated so a
    reflection is never used. Invariant to translation, rotation and uniform scale of ``pred``.
    ``[..., J, 3] -> [...]``, in input units.
    """
    pred, gt = _as_f64(pred, gt)
    mu_gt, mu_pred = gt.mean(axis=-2, keepdims=True), pred.mean(axis=-2, keepdims=True)
    gt_c, pred_c = gt - mu_gt, pred - mu_pred
    norm_gt = np.maximum(np.linalg.norm(gt_c, axis=(-2, -1))[..., None, None], 1e-300)
    norm_pred = np.maximum(np.linalg.norm(pred_c, axis=(-2, -1))[..., None, None], 1e-300)

    h = np.swapaxes(gt_c / norm_gt, -1, -2) @ (pred_c / norm_pred)       # [..., 3, 3]
    u, s, vt = np.linalg.svd(h)
    v, ut = np.swapaxes(vt, -1, -2), np.swapaxes(u, -1, -2)
    sign = np.where(np.linalg.det(v @ ut) < 0, -1.0, 1.0)
    v[..., :, -1] *= sign[..., None]
    s[..., -1] *= sign
    rot = v @ ut                                                          # pred_c @ rot ~ gt_c

    scale = s.sum(axis=-1)[..., None, None] * norm_gt / norm_pred
    aligned = scale * pred_c @ rot + mu_gt
    return mpjpe(aligned, gt)


def n_mpjpe(pred, gt) -> np.ndarray:
    """Per-pose MPJPE after the optimal uniform scale ``s = <gt, pred> / <pred, pred>``.

    Sums run over joints and coordinates; no rotation or translation. ``[..., J, 3] -> [...]``.
    """
    pred, gt = _as_f64(pred, gt)
    num = (gt * pred).sum(axis=(-2, -1), keepdims=True)
    den = np.maximum((pred * pred).sum(axis=(-2, -1), keepdims=True), 1e-300)
    return mpjpe(num / den * pred, gt)


def mpjve(pred, gt) -> np.ndarray:
    """Velocity error: MPJPE of first time differences (time = axis -3, ``[..., T, J, 3]``).

    No alignment. Returns ``[..., T-1]`` in input units per frame.
    """
    pred, gt = _as_f64(pred, gt)
    return mpjpe(np.diff(pred, axis=-3), np.diff(gt, axis=-3))


def acceleration_error(pred, gt) -> np.ndarray:
    """Acceleration error: MPJPE of second time differences (time = axis -3, ``[..., T, J, 3]``).

    No alignment. Returns ``[..., T-2]`` in input units per frame squared.
    """
    pred, gt = _as_f64(pred, gt)
    return mpjpe(np.diff(pred, n=2, axis=-3), np.diff(gt, n=2, axis=-3))


def root_relative(pose, root: int = 0):
    """Subtract joint ``root`` from every joint of ``[..., J, C]`` poses (returns a new array)."""
    return pose - pose[..., root:root + 1, :]


# ----------------------------------------------------------------------------------------------
# Aggregation (MotionBERT protocol: block list, per-frame average, per-action mean)

def accumulate_clip_errors(frame_errors_by_clip, clip_frame_indices, num_frames: int):
    """Scatter per-clip frame errors into global frame slots.

    ``frame_errors_by_clip``: ``[num_clips, T, ...]`` (e.g. ``[C, T]`` or ``[C, T, 2]`` for P1/P2);
    ``clip_frame_indices``: ``[num_clips, T]`` global frame indices (repeats allowed).
    Returns ``(sums [num_frames, ...] float64, counts [num_frames] int64)``; a frame is covered
    iff its count is > 0, whatever its error. Frame error = ``sums / counts`` (overlap average).
    """
    errors = np.asarray(frame_errors_by_clip, dtype=np.float64)
    index = np.asarray(clip_frame_indices, dtype=np.int64).reshape(-1)
    tail = errors.shape[2:]
    sums = np.zeros((num_frames,) + tail, dtype=np.float64)
    np.add.at(sums, index, errors.reshape((-1,) + tail))
    counts = np.bincount(index, minlength=num_frames).astype(np.int64)
    return sums, counts


def per_action_means(frame_err, covered_mask, actions) -> dict:
    """Mean frame error per action over the covered frames, pooled over subjects and cameras.

    ``frame_err``: ``[F]``; ``covered_mask``: ``[F]`` bool; ``actions``: ``[F]`` labels.
    Returns ``{action: mean}`` (sorted by action) for the actions with at least one covered frame.
    """
    names, sums, counts = _group_by_action(frame_err, covered_mask, actions)
    return {name: float(total / n) for name, total, n in zip(names, sums, counts)}


def protocol_summary(per_action: Mapping) -> float:
    """Final score: unweighted mean of the per-action means (15 actions on H36M); NaN if empty."""
    values = list(per_action.values())
    return float(np.mean(values)) if values else float("nan")


def _group_by_action(frame_err, covered_mask, actions):
    covered = np.asarray(covered_mask, dtype=bool)
    labels = np.asarray(actions)[covered]
    names, inverse = np.unique(labels, return_inverse=True)
    sums = np.bincount(inverse, weights=np.asarray(frame_err, np.float64)[covered], minlength=len(names))
    counts = np.bincount(inverse, minlength=len(names))
    return [n.item() for n in names], sums, counts


def clip_is_blocked(clip_frame_indices, sources: Sequence[str], blocked=BLOCK_LIST) -> np.ndarray:
    """``[num_clips]`` bool: True where the clip's first frame belongs to a blocked sequence."""
    blocked = set(blocked)
    first = np.asarray(clip_frame_indices)[:, 0]
    return np.array([sequence_id(str(sources[i])) in blocked for i in first], dtype=bool)


def frame_is_blocked(sources: Sequence[str], blocked=BLOCK_LIST) -> np.ndarray:
    """``[F]`` bool: True where a frame's ``source`` belongs to a blocked sequence."""
    blocked = set(blocked)
    unique, inverse = np.unique(np.asarray(sources, dtype=str), return_inverse=True)
    return np.array([sequence_id(u) in blocked for u in unique], dtype=bool)[inverse.reshape(-1)]


def evaluate_frames(pred_mm, gt_mm, clip_indices, actions, sources, blocked=BLOCK_LIST,
                    root: int = 0, chunk: int = 256) -> dict:
    """Score per-clip predictions with the MotionBERT protocol (see docs/protocols.md).

    ``pred_mm``, ``gt_mm``: ``[num_clips, T, J, 3]`` already in mm (prediction x per-frame lambda);
    ``clip_indices``: ``[num_clips, T]`` global test-frame indices; ``actions``, ``sources``:
    per global frame (length = number of test frames). Clips whose first frame's sequence is in
    ``blocked`` are skipped. Both poses are made root-relative (joint ``root``), then per-frame
    P1 (:func:`mpjpe`) and P2 (:func:`p_mpjpe`) are averaged over overlapping clips, pooled per
    action, and P1/P2 = unweighted mean over the actions present.

    The same call gives the literature number (non-overlapping clips that drop video tails) and
    the full-coverage number (clips that together cover every frame): compare
    ``frames_scored`` with ``frames_total`` (frames outside blocked sequences) to see which.
    Returns ``{'p1', 'p2', 'per_action': {action: {'p1', 'p2', 'frames'}}, 'frames_scored',
    'frames_total'}``.
    """
    frame_err, covered = frame_errors(pred_mm, gt_mm, clip_indices, sources, blocked, root, chunk)
    names, p1_sums, n = _group_by_action(frame_err[:, 0], covered, actions)
    _, p2_sums, _ = _group_by_action(frame_err[:, 1], covered, actions)
    per_action = {name: {"p1": float(a / k), "p2": float(b / k), "frames": int(k)}
                  for name, a, b, k in zip(names, p1_sums, p2_sums, n)}
    return {
        "p1": protocol_summary({k: v["p1"] for k, v in per_action.items()}),
        "p2": protocol_summary({k: v["p2"] for k, v in per_action.items()}),
        "per_action": per_action,
        "frames_scored": int(covered.sum()),
        "frames_total": int((~frame_is_blocked(sources, blocked)).sum()),
    }


def frame_errors(pred_mm, gt_mm, clip_indices, sources, blocked=BLOCK_LIST, root: int = 0,
                 chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per test frame ``(errors [F, 2] (P1, P2 in mm), covered [F] bool)`` of per-clip
    predictions (arguments as in :func:`evaluate_frames`): root-relative errors, averaged over
    the clips that cover a frame; clips of ``blocked`` sequences are skipped."""
    pred_mm, gt_mm, clip_indices = np.asarray(pred_mm), np.asarray(gt_mm), np.asarray(clip_indices)
    keep = np.flatnonzero(~clip_is_blocked(clip_indices, sources, blocked))
    errors = np.zeros((len(keep), clip_indices.shape[1], 2))
    for start in range(0, len(keep), chunk):          # bounded memory for the batched SVD
        sel = keep[start:start + chunk]
        errors[start:start + chunk] = _p1_p2(pred_mm[sel], gt_mm[sel], root)
    sums, counts = accumulate_clip_errors(errors, clip_indices[keep], len(sources))
    return sums / np.maximum(counts, 1)[:, None], counts > 0


def _p1_p2(pred, gt, root: int) -> np.ndarray:
    pred, gt = root_relative(_as_f64(pred)[0], root), root_relative(_as_f64(gt)[0], root)
    return np.stack([mpjpe(pred, gt), p_mpjpe(pred, gt)], axis=-1)
