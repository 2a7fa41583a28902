"""Training losses: known values, invariances, gradients and the weighted combination."""
import math

import pytest
import torch

from lib.model import loss as L

ALL_TERMS = {key: 1.0 for key in L.LOSS_WEIGHT_KEYS.values()}


def poses(seed=0, n=2, t=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, t, 17, 3, generator=g, dtype=torch.float64)


def rotate(x, angle=0.8):
    c, s = math.cos(angle), math.sin(angle)
    r = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=x.dtype)
    return x @ r


def test_all_terms_zero_for_identical_inputs():
    x = poses()
    _, terms = L.compute_losses(x, x.clone(), ALL_TERMS)
    assert set(terms) == set(L.LOSS_WEIGHT_KEYS)
    for name, value in terms.items():
        if name not in ("3d_tcl", "lv"):     # these two only look at the prediction
            assert value.item() == pytest.approx(0.0, abs=1e-6), name


def test_mpjpe_known_value():
    x = poses()
    assert L.loss_mpjpe(x + torch.tensor([3.0, 4.0, 0.0], dtype=x.dtype), x).item() == pytest.approx(5.0)


def test_n_mpjpe_scale_invariant():
    x, y = poses(1), poses(2)
    assert L.n_mpjpe(0.3 * x, x).item() == pytest.approx(0.0, abs=1e-9)
    assert L.n_mpjpe(2.5 * y, x).item() == pytest.approx(L.n_mpjpe(y, x).item())


def test_velocity_zero_for_constant_offset_and_short_clips():
    x = poses()
    assert L.loss_velocity(x + 0.7, x).item() == pytest.approx(0.0, abs=1e-12)
    assert L.loss_velocity(poses(1, t=1), poses(2, t=1)).item() == 0.0
    assert L.loss_velocity(poses(1), x).item() > 0


def test_tcl_zero_for_static_prediction():
    static = poses(t=1).expand(2, 6, 17, 3)
    assert L.loss_tcl(static).item() == 0.0
    x = poses()
    assert L.loss_tcl(x).item() == pytest.approx((x[:, 1:] - x[:, :-1]).pow(2).mean().item())


def test_limb_losses_match_for_rotated_copy():
    x = poses()
    rotated = rotate(x)
    assert L.loss_limb_gt(rotated, x).item() == pytest.approx(0.0, abs=1e-9)
    assert L.loss_angle(rotated, x).item() == pytest.approx(0.0, abs=1e-6)
    assert L.loss_angle_velocity(rotated, x).item() == pytest.approx(0.0, abs=1e-6)
    assert L.loss_mpjpe(rotated, x).item() > 0.1


def test_limb_var_zero_for_rigid_motion():
    x = poses(t=1)
    moving = torch.cat([rotate(x, 0.3 * k) + 0.1 * k for k in range(4)], dim=1)
    assert L.loss_limb_var(moving).item() == pytest.approx(0.0, abs=1e-12)
    assert L.loss_limb_var(poses()).item() > 0


def test_bones_follow_skeleton():
    x = poses()
    b = L.bones(x)
    assert b.shape == (2, 5, 16, 3)
    torch.testing.assert_close(b[..., 9, :], x[..., 10, :] - x[..., 9, :])    # head_top - nose
    torch.testing.assert_close(b[..., 10, :], x[..., 11, :] - x[..., 8, :])   # l_shoulder - thorax


def test_gradients_finite_with_colinear_bones():
    target = poses()
    pred = target.clone()
    pred[..., 2, :] = 2 * pred[..., 1, :] - pred[..., 0, :]         # bone 1 parallel to bone 0
    pred[..., 8, :] = pred[..., 7, :] + 0.5 * (pred[..., 7, :] - pred[..., 0, :])
    pred.requires_grad_(True)
    total, _ = L.compute_losses(pred, target, ALL_TERMS)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(pred.grad).all()


def test_gradients_finite_for_identical_inputs():
    x = poses()
    pred = x.clone().requires_grad_(True)
    total, _ = L.compute_losses(pred, x, ALL_TERMS)
    total.backward()
    assert torch.isfinite(pred.grad).all()


def test_weights_select_and_scale_terms():
    pred, target = poses(1), poses(2)
    cfg = {"lambda_3d_pos": 1.0, "lambda_scale": 0.0, "lambda_3d_velocity": 3.0}
    total, terms = L.compute_losses(pred, target, cfg)
    assert set(terms) == {"3d_pos", "3d_velocity"}
    doubled, _ = L.compute_losses(pred, target, {**cfg, "lambda_3d_velocity": 6.0})
    assert (doubled - total).item() == pytest.approx(3.0 * terms["3d_velocity"].item())
    _, only_pos = L.compute_losses(pred, target, {"lambda_3d_pos": 0.0})
    assert set(only_pos) == {"3d_pos"}


def test_reference_totals():
    pred, target = poses(1, t=7), poses(2, t=7)
    pos = (pred - target).norm(dim=-1).mean()
    scale = ((target * pred).sum(dim=(-2, -1), keepdim=True) / (pred * pred).sum(dim=(-2, -1), keepdim=True))
    nmp = (scale * pred - target).norm(dim=-1).mean()
    vel = ((pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])).norm(dim=-1).mean()
    tcl = (pred[:, 1:] - pred[:, :-1]).pow(2).mean()
    motionbert = {"lambda_3d_pos": 1.0, "lambda_scale": 0.5, "lambda_3d_velocity": 20.0}
    ehgformer = {"lambda_3d_pos": 1.0, "lambda_scale": 0.0, "lambda_tcl": 0.5, "lambda_3d_velocity": 2.0}
    total_mb, _ = L.compute_losses(pred, target, motionbert)
    total_ehg, _ = L.compute_losses(pred, target, ehgformer)
    assert total_mb.item() == pytest.approx((pos + 0.5 * nmp + 20 * vel).item())
    assert total_ehg.item() == pytest.approx((pos + 0.5 * tcl + 2 * vel).item())


def test_bfloat16_inputs():
    pred, target = poses(1).bfloat16().requires_grad_(True), poses(2).bfloat16()
    total, terms = L.compute_losses(pred, target, ALL_TERMS)
    total.backward()
    assert terms["3d_pos"].dtype == torch.bfloat16
    assert torch.isfinite(total.float()) and torch.isfinite(pred.grad.float()).all()
