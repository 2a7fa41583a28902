"""The Human3.6M 17-joint skeleton (H36M-17), defined once for the whole project.

Joint order (index: name, parent, side)::

     0 pelvis          -1  mid        9 nose         8  mid
     1 right_hip        0  R         10 head_top     9  mid
     2 right_knee       1  R         11 left_shoulder 8 L
     3 right_ankle      2  R         12 left_elbow  11  L
     4 left_hip         0  L         13 left_wrist  12  L
     5 left_knee        4  L         14 right_shoulder 8 R
     6 left_ankle       5  L         15 right_elbow 14  R
     7 spine            0  mid       16 right_wrist 15  R
     8 thorax           7  mid

A horizontal flip negates x (channel 0) and swaps the left and right joints; every other
channel (y, z, confidence) moves with its joint. In normalised image coordinates this mirrors
the pose about the image's vertical centre line.
"""
from __future__ import annotations

import numpy as np
import torch

NUM_JOINTS = 17
ROOT = 0

JOINT_NAMES = (
    "pelvis", "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "spine", "thorax", "nose", "head_top",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist",
)
PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
LEFT = (4, 5, 6, 11, 12, 13)
RIGHT = (1, 2, 3, 14, 15, 16)
# The 16 bones as (parent, child) pairs, in child order.
LIMBS = tuple((p, c) for c, p in enumerate(PARENTS) if p >= 0)

# FLIP_PERM[j] is the joint whose data lands on joint j after a mirror.
FLIP_PERM = list(range(NUM_JOINTS))
for _l, _r in zip(LEFT, RIGHT):
    FLIP_PERM[_l], FLIP_PERM[_r] = _r, _l
FLIP_PERM = tuple(FLIP_PERM)


def adjacency(self_loops: bool = True) -> np.ndarray:
    """Symmetric 17x17 0/1 adjacency of the bones (no edge for the root's missing parent)."""
    adj = np.eye(NUM_JOINTS, dtype=np.float32) if self_loops else np.zeros((NUM_JOINTS,) * 2, np.float32)
    for p, c in LIMBS:
        adj[p, c] = adj[c, p] = 1.0
    return adj


def flip(pose):
    """Mirror poses ``[..., 17, C]`` (numpy array or torch tensor): negate x, swap left/right.

    Returns a new array/tensor; the input is not modified. ``flip(flip(x)) == x``.
    """
    if pose.shape[-2] != NUM_JOINTS:
        raise ValueError(f"flip expects [..., {NUM_JOINTS}, C] poses, got shape {tuple(pose.shape)}")
    perm = list(FLIP_PERM)
    out = pose[..., perm, :]
    if isinstance(pose, torch.Tensor):
        out = out.clone()
    else:
        out = out.copy()
    out[..., 0] = -out[..., 0]
    return out
