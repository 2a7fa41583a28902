"""Training losses (MotionBERT's and EHGFormer's ``loss.py``) on torch tensors ``[N, T, 17, 3]`` in normalised units.

Every loss returns a scalar tensor averaged as its docstring says. They run on any device, use
no Python loops over frames or joints, and compute in the dtype of their inputs (bf16 under
autocast is fine), except that bone-pair angles are computed in at least float32: ``1 - 1e-7``
rounds to 1 in half precision and ``acos`` would then have an infinite gradient.

:func:`compute_losses` combines the terms with the config weights of :data:`LOSS_WEIGHT_KEYS`:
MotionBERT = pos + 0.5 scale + 20 velocity; EHGFormer = pos + 0.5 tcl + 2 velocity.
"""
from __future__ import annotations

import functools
from typing import Mapping

import torch
import torch.nn.functional as F

from lib.data.skeleton import LIMBS

# Bone k (k = 0..15) runs from PARENT_OF_BONE[k] to joint k + 1 (skeleton.LIMBS is in child order).
PARENT_OF_BONE = tuple(p for p, _ in LIMBS)
assert tuple(c for _, c in LIMBS) == tuple(range(1, len(LIMBS) + 1))

# The 18 bone pairs whose angles the angle losses compare, as indices into the bone list.
ANGLE_PAIRS = ((0, 3), (0, 6), (3, 6), (0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 10),
               (7, 13), (8, 13), (10, 13), (7, 8), (8, 9), (10, 11), (11, 12), (13, 14), (14, 15))
ANGLE_EPS = 1e-7

# Loss term -> config key of its weight.
LOSS_WEIGHT_KEYS = {
    "3d_pos": "lambda_3d_pos", "3d_scale": "lambda_scale", "3d_velocity": "lambda_3d_velocity",
    "3d_tcl": "lambda_tcl", "lv": "lambda_lv", "lg": "lambda_lg", "a": "lambda_a", "av": "lambda_av",
}


@functools.lru_cache(maxsize=None)
def _index(name: str, device: torch.device) -> torch.Tensor:
    table = {"parent": PARENT_OF_BONE, "first": [a for a, _ in ANGLE_PAIRS],
             "second": [b for _, b in ANGLE_PAIRS]}[name]
    return torch.tensor(table, dtype=torch.long, device=device)


def _zero(x: torch.Tensor) -> torch.Tensor:
    return x.new_zeros(())


def _diff(x: torch.Tensor) -> torch.Tensor:
    return x[:, 1:] - x[:, :-1]


def bones(x: torch.Tensor) -> torch.Tensor:
    """Bone vectors child - parent of ``[N, T, 17, 3]`` poses -> ``[N, T, 16, 3]`` (LIMBS order)."""
    return x[..., 1:, :] - x.index_select(-2, _index("parent", x.device))


def limb_lengths(x: torch.Tensor) -> torch.Tensor:
    """Bone lengths ``[N, T, 16]``."""
    return torch.linalg.vector_norm(bones(x), dim=-1)


def limb_angles(x: torch.Tensor) -> torch.Tensor:
    """Angles (radians) of the 18 ANGLE_PAIRS ``[N, T, 18]``; cosine clamped to +-(1 - 1e-7)."""
    b = bones(x)
    if b.dtype in (torch.float16, torch.bfloat16):
        b = b.float()
    cos = F.cosine_similarity(b.index_select(-2, _index("first", b.device)),
                              b.index_select(-2, _index("second", b.device)), dim=-1)
    return torch.acos(cos.clamp(-1 + ANGLE_EPS, 1 - ANGLE_EPS))


def loss_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MPJPE: mean over N, T, J of the Euclidean joint error; no alignment."""
    return torch.linalg.vector_norm(pred - target, dim=-1).mean()


def n_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Scale-aligned MPJPE: per (n, t), s = <target, pred> / <pred, pred> over joints and coords."""
    num = (target * pred).sum(dim=(-2, -1), keepdim=True)
    den = (pred * pred).sum(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(pred.dtype).tiny)
    return loss_mpjpe(num / den * pred, target)


def loss_velocity(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over N, T-1, J of the Euclidean error of first time differences; 0 if T <= 1."""
    if pred.shape[1] <= 1:
        return _zero(pred)
    return loss_mpjpe(_diff(pred), _diff(target))


def loss_tcl(pred: torch.Tensor) -> torch.Tensor:
    """Temporal consistency (pure smoothness): mean over N, T-1, J, 3 of squared first
    differences of the prediction; 0 if T <= 1."""
    if pred.shape[1] <= 1:
        return _zero(pred)
    return _diff(pred).pow(2).mean()


def loss_limb_var(pred: torch.Tensor) -> torch.Tensor:
    """Temporal (unbiased) variance of each of the 16 bone lengths, mean over N and bones;
    0 if T <= 1."""
    if pred.shape[1] <= 1:
        return _zero(pred)
    return limb_lengths(pred).var(dim=1).mean()


def loss_limb_gt(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 (mean absolute difference) between predicted and target bone lengths."""
    return (limb_lengths(pred) - limb_lengths(target)).abs().mean()


def loss_angle(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between predicted and target angles of the 18 bone pairs (radians)."""
    return (limb_angles(pred) - limb_angles(target)).abs().mean()


def loss_angle_velocity(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between first time differences of the 18 bone-pair angles; 0 if T <= 1."""
    if pred.shape[1] <= 1:
        return _zero(pred)
    return (_diff(limb_angles(pred)) - _diff(limb_angles(target))).abs().mean()


LOSS_FUNCTIONS = {
    "3d_pos": loss_mpjpe, "3d_scale": n_mpjpe, "3d_velocity": loss_velocity,
    "3d_tcl": lambda pred, target: loss_tcl(pred),
    "lv": lambda pred, target: loss_limb_var(pred), "lg": loss_limb_gt,
    "a": loss_angle, "av": loss_angle_velocity,
}


def compute_losses(pred: torch.Tensor, target: torch.Tensor, cfg: Mapping):
    """Weighted training loss.

    Weights are read from ``cfg[LOSS_WEIGHT_KEYS[term]]``; a resolved config has every key
    (lib/config/schema.py), and a plain mapping asks only for the terms it names. Only terms with a
    nonzero weight are evaluated, except ``3d_pos``, which is always reported.
    Returns ``(total, terms)``: ``total = sum(weight * term)`` and ``terms`` maps term name to its
    unweighted value (still attached to the graph; detach for logging).
    """
    weights = {name: float(cfg[key]) for name, key in LOSS_WEIGHT_KEYS.items() if key in cfg}
    terms = {name: fn(pred, target) for name, fn in LOSS_FUNCTIONS.items()
             if weights.get(name) or name == "3d_pos"}
    total = sum(weights[name] * value for name, value in terms.items() if name in weights)
    return total, terms
