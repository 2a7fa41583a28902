"""2D keypoint formats and their conversion to the H36M-17 joints the model reads.

Three formats, all ``[..., K, C]`` arrays (C = 2 for x, y or 3 for x, y, confidence):

* ``coco``  COCO-17 (MMPose, ViTPose, YOLO-pose, AlphaPose's COCO models)::

     0 nose   1 L-eye   2 R-eye   3 L-ear   4 R-ear   5 L-shoulder  6 R-shoulder
     7 L-elbow  8 R-elbow  9 L-wrist  10 R-wrist  11 L-hip  12 R-hip
    13 L-knee  14 R-knee  15 L-ankle  16 R-ankle

* ``halpe`` Halpe-26 (AlphaPose FastPose): COCO-17 indices 0-16, then
  ``17 head  18 neck  19 hip  20 L-big-toe  21 R-big-toe  22 L-small-toe  23 R-small-toe
  24 L-heel  25 R-heel``.

* ``h36m``  H36M-17, the model's order (``lib.data.skeleton``), passed through unchanged.

Every H36M joint is the mean of one or more source joints, applied to every channel alike
(x, y and confidence), as in EHGFormer's and MotionBERT's wild-video inference::

    H36M joint         from COCO-17                     from Halpe-26
     0 pelvis          mean(11 L-hip, 12 R-hip)         19 hip
     1 right_hip       12                               12
     2 right_knee      14                               14
     3 right_ankle     16                               16
     4 left_hip        11                               11
     5 left_knee       13                               13
     6 left_ankle      15                               15
     7 spine           mean(pelvis, thorax)             mean(18 neck, 19 hip)
                       = mean(11, 12, 5, 6)
     8 thorax          mean(5 L-shoulder, 6 R-shoulder) 18 neck
     9 nose            0                                0
    10 head_top        mean(1 L-eye, 2 R-eye)           17 head
    11 left_shoulder   5                                5
    12 left_elbow      7                                7
    13 left_wrist      9                                9
    14 right_shoulder  6                                6
    15 right_elbow     8                                8
    16 right_wrist     10                               10
"""
from __future__ import annotations

import numpy as np

from lib.data.skeleton import NUM_JOINTS
from lib.errors import InputFileError

# H36M joint j = mean of the source joints SOURCES[fmt][j].
_SHARED = ((5,), (7,), (9,), (6,), (8,), (10,))            # joints 11..16: arms
SOURCES = {
    "coco": ((11, 12), (12,), (14,), (16,), (11,), (13,), (15,),
             (11, 12, 5, 6), (5, 6), (0,), (1, 2)) + _SHARED,
    "halpe": ((19,), (12,), (14,), (16,), (11,), (13,), (15,),
              (18, 19), (18,), (0,), (17,)) + _SHARED,
}
NUM_SOURCE_JOINTS = {"coco": 17, "halpe": 26, "h36m": NUM_JOINTS}
FORMATS = tuple(NUM_SOURCE_JOINTS)


def conversion_matrix(fmt: str) -> np.ndarray:
    """``[17, K]`` averaging matrix ``M`` with ``h36m = M @ source`` (rows sum to 1)."""
    if fmt == "h36m":
        return np.eye(NUM_JOINTS)
    if fmt not in SOURCES:
        raise InputFileError(f"unknown keypoint format {fmt!r}; expected one of {FORMATS}")
    matrix = np.zeros((NUM_JOINTS, NUM_SOURCE_JOINTS[fmt]))
    for joint, sources in enumerate(SOURCES[fmt]):
        matrix[joint, list(sources)] = 1.0 / len(sources)
    return matrix


def to_h36m(keypoints: np.ndarray, fmt: str) -> np.ndarray:
    """Convert ``[..., K, C]`` keypoints of format ``fmt`` to H36M-17 ``[..., 17, C]`` (float32)."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    expected = NUM_SOURCE_JOINTS.get(fmt)
    if expected is None:
        raise InputFileError(f"unknown keypoint format {fmt!r}; expected one of {FORMATS}")
    if keypoints.ndim < 2 or keypoints.shape[-2] != expected:
        raise InputFileError(f"{fmt} keypoints need {expected} joints per frame ([..., {expected}, C]), "
                         f"got shape {keypoints.shape}")
    return np.einsum("jk,...kc->...jc", conversion_matrix(fmt), keypoints).astype(np.float32)


def guess_format(num_joints: int) -> str:
    """The format of a file with ``num_joints`` joints: 26 -> halpe, 17 -> coco (H36M must be named)."""
    formats = {26: "halpe", 17: "coco"}
    if num_joints not in formats:
        raise InputFileError(f"cannot read keypoints with {num_joints} joints per person: expected 17 "
                         "(COCO-17, or H36M-17 with --format h36m) or 26 (Halpe-26)")
    return formats[num_joints]
