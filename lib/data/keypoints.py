"""2D keypoint formats and their conversion to the H36M-17 joints the model reads.

Four formats, all ``[..., K, C]`` arrays (C = 2 for x, y or 3 for x, y, confidence):

* ``coco``  COCO-17 (MMPose, ViTPose, YOLO-pose, AlphaPose's COCO models)::

     0 nose   1 L-eye   2 R-eye   3 L-ear   4 R-ear   5 L-shoulder  6 R-shoulder
     7 L-elbow  8 R-elbow  9 L-wrist  10 R-wrist  11 L-hip  12 R-hip
    13 L-knee  14 R-knee  15 L-ankle  16 R-ankle

* ``halpe`` Halpe-26 (AlphaPose FastPose): COCO-17 indices 0-16, then
  ``17 head  18 neck  19 hip  20 L-big-toe  21 R-big-toe  22 L-small-toe  23 R-small-toe
  24 L-heel  25 R-heel``.

* ``blazepose`` BlazePose-33 (MediaPipe Pose; Pose3D's own video detector, ``lib.inference.detector``)::

     0 nose  1 L-eye-inner  2 L-eye  3 L-eye-outer  4 R-eye-inner  5 R-eye  6 R-eye-outer
     7 L-ear  8 R-ear  9 mouth-L  10 mouth-R  11 L-shoulder  12 R-shoulder  13 L-elbow  14 R-elbow
    15 L-wrist  16 R-wrist  17 L-pinky  18 R-pinky  19 L-index  20 R-index  21 L-thumb  22 R-thumb
    23 L-hip  24 R-hip  25 L-knee  26 R-knee  27 L-ankle  28 R-ankle  29 L-heel  30 R-heel
    31 L-foot-index  32 R-foot-index

  Its COCO-17 joints are a subset (:data:`BLAZEPOSE_TO_COCO`: nose 0, eyes 2 and 5, ears 7 and 8,
  shoulders 11/12, elbows 13/14, wrists 15/16, hips 23/24, knees 25/26, ankles 27/28), and its
  H36M-17 joints are made from them exactly as from COCO-17 (the table below), so a video lifted
  from the detector and its COCO-17 keypoint file lift the same. The confidence is the landmark's
  visibility (probability that the joint is visible, in [0, 1]).

* ``h36m``  H36M-17, the model's order (``lib.data.skeleton``), passed through unchanged.

Every H36M joint is the mean of one or more source joints, applied to every channel alike
(x, y and confidence), as in EHGFormer's and MotionBERT's wild-video inference::

    H36M joint         from COCO-17                     from Halpe-26          from BlazePose-33
     0 pelvis          mean(11 L-hip, 12 R-hip)         19 hip                 mean(23, 24)
     1 right_hip       12                               12                     24
     2 right_knee      14                               14                     26
     3 right_ankle     16                               16                     28
     4 left_hip        11                               11                     23
     5 left_knee       13                               13                     25
     6 left_ankle      15                               15                     27
     7 spine           mean(pelvis, thorax)             mean(18 neck, 19 hip)  mean(23, 24, 11, 12)
                       = mean(11, 12, 5, 6)
     8 thorax          mean(5 L-shoulder, 6 R-shoulder) 18 neck                mean(11, 12)
     9 nose            0                                0                      0
    10 head_top        mean(1 L-eye, 2 R-eye)           17 head                mean(2 L-eye, 5 R-eye)
    11 left_shoulder   5                                5                      11
    12 left_elbow      7                                7                      13
    13 left_wrist      9                                9                      15
    14 right_shoulder  6                                6                      12
    15 right_elbow     8                                8                      14
    16 right_wrist     10                               10                     16
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
# COCO-17 joint k = BlazePose-33 landmark BLAZEPOSE_TO_COCO[k].
BLAZEPOSE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
SOURCES["blazepose"] = tuple(tuple(BLAZEPOSE_TO_COCO[k] for k in joints) for joints in SOURCES["coco"])
NUM_SOURCE_JOINTS = {"coco": 17, "halpe": 26, "blazepose": 33, "h36m": NUM_JOINTS}
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
    """The format of a file with ``num_joints`` joints: 33 -> blazepose, 26 -> halpe, 17 -> coco
    (H36M must be named)."""
    formats = {33: "blazepose", 26: "halpe", 17: "coco"}
    if num_joints not in formats:
        raise InputFileError(f"cannot read keypoints with {num_joints} joints per person: expected 17 "
                         "(COCO-17, or H36M-17 with --format h36m), 26 (Halpe-26) or 33 (BlazePose-33)")
    return formats[num_joints]
