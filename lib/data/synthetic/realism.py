"""Realism checks of world-space motion that need no real data (used by tools/synthetic_report.py).

Every function takes world joint positions ``[T, 17, 3]`` in mm (Z up, floor at Z = 0, 50 Hz) of
one video, or a list of such videos, and returns plain floats. Angles are in degrees, speeds in
m/s, accelerations in m/s^2, lengths in mm.

Joint limits are read from positions alone (the generator's angles are not needed), in the trunk
frame: lateral axis from the right to the left hip, up from the pelvis to the thorax, forward =
lateral x up. The limits are those of healthy adults (AAOS ranges, generous by ~10 degrees); hip
flexion is the thigh against the trunk, so it includes the lumbar spine (160 degrees in a deep squat).
"""
from __future__ import annotations

import numpy as np

from lib.data.skeleton import LIMBS

FPS = 50
CONTACT_MM = 25.0        # an ankle within this height of its lowest standing height is in contact
SKATE_M_S = 0.10         # horizontal ankle speed above which a foot in contact slides
FLOOR_MM = 40.0          # no joint centre comes closer to the floor than this
LIMITS_DEG = {           # name: (min, max)
    'knee_flexion': (-10.0, 160.0), 'elbow_flexion': (0.0, 165.0), 'hip_flexion': (-35.0, 160.0),
    'hip_abduction': (-35.0, 60.0), 'neck_bend': (0.0, 75.0), 'trunk_twist': (-65.0, 65.0),
    'spine_bend': (0.0, 70.0),
}
HARD_CHECKS = ('bone_length_range_mm', 'floor_penetration_frac', 'joint_limit_violation_frac')


def video_runs(sources) -> list[tuple[int, int]]:
    """(start, stop) rows of each video of a split, videos being contiguous runs of ``sources``."""
    src = np.asarray(sources)
    starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]]) if len(src) else np.array([], int)
    return list(zip(starts.tolist(), np.r_[starts[1:], len(src)].astype(int).tolist()))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unsigned angle (deg) between vectors [..., 3]."""
    return np.degrees(np.arccos(np.clip((_unit(a) * _unit(b)).sum(-1), -1.0, 1.0)))


def trunk_frame(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(forward, left, up) unit vectors [T, 3] of the trunk of poses [T, 17, 3]."""
    left = _unit(x[:, 4] - x[:, 1])
    up = x[:, 8] - x[:, 0]
    up = _unit(up - (up * left).sum(-1, keepdims=True) * left)
    return np.cross(left, up), left, up


def joint_angles(x: np.ndarray) -> dict[str, np.ndarray]:
    """Anatomical angles (deg) [T, 2] per side (left, right) or [T] of poses [T, 17, 3] (mm)."""
    fwd, left, up = trunk_frame(x)
    out = {k: [] for k in ('knee_flexion', 'elbow_flexion', 'hip_flexion', 'hip_abduction')}
    for sign, (hip, knee, ankle, sho, elb, wri) in ((1.0, (4, 5, 6, 11, 12, 13)),
                                                     (-1.0, (1, 2, 3, 14, 15, 16))):
        thigh, shin = x[:, knee] - x[:, hip], x[:, ankle] - x[:, knee]
        flex = _angle(thigh, shin) * np.sign((np.cross(thigh, shin) * left).sum(-1) + 1e-9)
        out['knee_flexion'].append(flex)
        out['elbow_flexion'].append(_angle(x[:, elb] - x[:, sho], x[:, wri] - x[:, elb]))
        t = _unit(thigh)
        out['hip_flexion'].append(np.degrees(np.arctan2((t * fwd).sum(-1), -(t * up).sum(-1))))
        out['hip_abduction'].append(np.degrees(np.arcsin(np.clip(sign * (t * left).sum(-1), -1, 1))))
    out = {k: np.stack(v, -1) for k, v in out.items()}
    out['neck_bend'] = _angle(x[:, 8] - x[:, 7], x[:, 10] - x[:, 8])
    out['spine_bend'] = _angle(x[:, 7] - x[:, 0], x[:, 8] - x[:, 7])
    shoulders = x[:, 11] - x[:, 14]
    shoulders -= (shoulders * up).sum(-1, keepdims=True) * up
    out['trunk_twist'] = np.degrees(np.arctan2((np.cross(left, _unit(shoulders)) * up).sum(-1),
                                               (left * _unit(shoulders)).sum(-1)))
    return out


def limit_violations(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per name, a bool [T] that is True where any instance of that angle leaves its limits."""
    out = {}
    for name, value in joint_angles(x).items():
        lo, hi = LIMITS_DEG[name]
        bad = (value < lo) | (value > hi)
        out[name] = bad.any(-1) if bad.ndim == 2 else bad
    return out


def bone_lengths(x: np.ndarray) -> np.ndarray:
    """Bone lengths [T, 16] (mm) in the order of ``skeleton.LIMBS``."""
    return np.stack([np.linalg.norm(x[:, c] - x[:, p], axis=-1) for p, c in LIMBS], 1)


def foot_contact(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(contact [T, 2] bool, horizontal ankle speed [T, 2] m/s) for the (right, left) ankles."""
    ankles = x[:, [3, 6]]
    floor = np.percentile(ankles[..., 2], 2, axis=0)
    contact = ankles[..., 2] < floor + CONTACT_MM
    speed = np.zeros(contact.shape)
    speed[1:-1] = np.linalg.norm(ankles[2:, :, :2] - ankles[:-2, :, :2], axis=-1) * FPS / 2000.0
    speed[0], speed[-1] = speed[1], speed[-2]
    return contact, speed


def video_checks(x: np.ndarray) -> dict[str, float]:
    """The hard checks and skating figures of one video [T, 17, 3] (mm)."""
    bones = bone_lengths(x)
    contact, speed = foot_contact(x)
    stance = speed[contact]
    violations = limit_violations(x)
    any_violation = np.any(np.stack(list(violations.values())), axis=0)
    return {
        'frames': len(x),
        'bone_length_range_mm': float(np.ptp(bones, axis=0).max()),
        'floor_penetration_frac': float(np.mean(x[..., 2].min(-1) < FLOOR_MM)),
        'min_joint_height_mm': float(x[..., 2].min()),
        'joint_limit_violation_frac': float(np.mean(any_violation)),
        **{f'limit_{k}_frac': float(np.mean(v)) for k, v in violations.items()},
        'stance_frames': int(stance.size),
        'stance_speed_sum_m_s': float(stance.sum()),
        'skating_frames': int(np.sum(stance > SKATE_M_S)),
    }


def aggregate(videos: list[dict]) -> dict[str, float]:
    """Worst case (hard checks, ranges), frame-weighted means (fractions) over videos."""
    frames = np.array([v['frames'] for v in videos], float)
    out = {'videos': len(videos), 'frames': int(frames.sum())}
    for key in videos[0]:
        if key == 'frames':
            continue
        values = np.array([v[key] for v in videos], float)
        if key.endswith('_frac'):
            out[key] = float((values * frames).sum() / frames.sum())
        elif key.endswith('_mm') and key.startswith('min'):
            out[key] = float(values.min())
        elif key.endswith('_mm'):
            out[key] = float(values.max())
        else:
            out[key] = float(values.sum())
    stance = max(out.pop('stance_frames'), 1.0)
    out['stance_speed_mean_m_s'] = out.pop('stance_speed_sum_m_s') / stance
    out['foot_skating_frac'] = out.pop('skating_frames') / stance
    return out


def kinematics(videos: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-joint speed and acceleration percentiles (50, 95, 99): {'speed': [17, 3] m/s,
    'accel': [17, 3] m/s^2} over all frames of all videos (central differences)."""
    speeds, accels = [], []
    for x in videos:
        speeds.append(np.linalg.norm(x[2:] - x[:-2], axis=-1) * FPS / 2000.0)
        accels.append(np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1) * FPS ** 2 / 1000.0)
    q = (50, 95, 99)
    return {'speed': np.percentile(np.concatenate(speeds), q, axis=0).T,
            'accel': np.percentile(np.concatenate(accels), q, axis=0).T}


def canonical_poses(x: np.ndarray) -> np.ndarray:
    """Root-relative poses [T, 51] turned to face +x (about Z) and divided by the skeleton's
    total bone length (unit-free), so that clustering sees posture only."""
    fwd, _, _ = trunk_frame(x)
    yaw = np.arctan2(fwd[:, 1], fwd[:, 0])
    c, s = np.cos(-yaw), np.sin(-yaw)
    rel = x - x[:, :1]
    turned = np.stack([c[:, None] * rel[..., 0] - s[:, None] * rel[..., 1],
                       s[:, None] * rel[..., 0] + c[:, None] * rel[..., 1], rel[..., 2]], -1)
    return (turned / bone_lengths(x).sum(1)[:, None, None]).reshape(len(x), -1)


def kmeans(points: np.ndarray, k: int, iters: int = 25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding: (centres [k, D], labels [N])."""
    rng = np.random.default_rng(seed)
    centres = [points[rng.integers(len(points))]]
    dist = ((points - centres[0]) ** 2).sum(1)
    for _ in range(k - 1):
        centres.append(points[rng.choice(len(points), p=dist / dist.sum())])
        dist = np.minimum(dist, ((points - centres[-1]) ** 2).sum(1))
    centres = np.array(centres)
    for _ in range(iters):
        d = (points ** 2).sum(1)[:, None] - 2 * points @ centres.T + (centres ** 2).sum(1)[None]
        labels = d.argmin(1)
        for j in range(k):
            if np.any(labels == j):
                centres[j] = points[labels == j].mean(0)
    return centres, labels


def coverage(videos: list[np.ndarray], k: int = 32, max_poses: int = 20000, seed: int = 0) -> dict:
    """Diversity of canonical poses: effective k-means cluster count (exp entropy of cluster
    sizes, at most k), share of variance the k clusters leave unexplained, PCA components for 90 %
    of the variance, mean per-coordinate std (x 1000, i.e. per mille of the total bone length),
    and the share of frames in a few postures real data has (crouch, arms up, airborne, lying)."""
    poses = np.concatenate([canonical_poses(x) for x in videos])
    rng = np.random.default_rng(seed)
    sample = poses[rng.choice(len(poses), min(max_poses, len(poses)), replace=False)]
    centres, labels = kmeans(sample, k, seed=seed)
    share = np.bincount(labels, minlength=k) / len(labels)
    total = ((sample - sample.mean(0)) ** 2).sum()
    within = ((sample - centres[labels]) ** 2).sum()
    eig = np.sort(np.linalg.eigvalsh(np.cov(sample.T)))[::-1]
    return {
        'kmeans_effective_clusters': float(np.exp(-(share[share > 0] * np.log(share[share > 0])).sum())),
        'kmeans_unexplained_var': float(within / total),
        'pca_dims_90pct': int(np.searchsorted(np.cumsum(eig) / eig.sum(), 0.9) + 1),
        'pose_std_permille': float(1000 * sample.std(0).mean()),
        **posture_shares(videos),
    }


def posture_masks(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame of one video [T, 17, 3] (mm), a bool [T] per posture: pelvis below 60 % of the
    subject's standing pelvis height (crouch/sit), a wrist above the head top (arms up), no foot
    in contact (airborne), trunk within 45 degrees of horizontal (lying / bending far), and lying:
    trunk within 30 degrees of horizontal with the pelvis below 250 mm."""
    legs = bone_lengths(x)[:, [1, 2]].sum(1) + 90.0
    contact, _ = foot_contact(x)
    trunk = _angle(x[:, 8] - x[:, 0], np.array([0.0, 0.0, 1.0]))
    return {'crouch_or_sit': x[:, 0, 2] < 0.6 * legs, 'arms_up': x[:, [13, 16], 2].max(1) > x[:, 10, 2],
            'airborne': ~contact.any(-1), 'trunk_horizontal': trunk > 45,
            'lying': (np.abs(trunk - 90) < 30) & (x[:, 0, 2] < 250)}


def posture_shares(videos: list[np.ndarray]) -> dict[str, float]:
    """Share of frames in each posture of :func:`posture_masks` (``<name>_frac``)."""
    counts, n = {}, 0
    for x in videos:
        for name, mask in posture_masks(x).items():
            counts[name] = counts.get(name, 0) + int(mask.sum())
        n += len(x)
    return {f'{name}_frac': count / n for name, count in counts.items()}


def detector_figures(joint_2d: np.ndarray, gt_2d: np.ndarray, conf: np.ndarray) -> dict[str, float]:
    """2D error and confidence figures (pixels): median and p95 error, outlier share (> 15 px),
    confidence mean and correlation with the error, low-confidence share (< 0.1), and left/right
    swaps (a limb joint nearer the opposite side's ground truth than its own)."""
    from lib.data.skeleton import FLIP_PERM
    error = np.linalg.norm(joint_2d - gt_2d, axis=-1)
    swapped = np.linalg.norm(joint_2d - gt_2d[:, list(FLIP_PERM)], axis=-1)
    side = np.array(FLIP_PERM) != np.arange(17)
    c = conf[..., 0]
    return {
        'error_median_px': float(np.median(error)), 'error_p95_px': float(np.percentile(error, 95)),
        'outlier_frac': float(np.mean(error > 15)), 'conf_mean': float(c.mean()),
        'conf_error_corr': float(np.corrcoef(error.ravel(), c.ravel())[0, 1]),
        'low_conf_frac': float(np.mean(c < 0.1)),
        'swap_frac': float(np.mean((swapped < 0.5 * error)[:, side] & (error[:, side] > 20))),
    }
