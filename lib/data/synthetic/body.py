"""Synthetic bodies: bone lengths per subject, joint angles and forward kinematics (mm, radians)."""
from __future__ import annotations

import numpy as np

from lib.data.skeleton import NUM_JOINTS
from lib.data.synthetic.common import _DEG, _RNG_TAG_BONES, _rng

# Mean H36M-like bone lengths in mm (child joint -> length of the bone to its parent).
BONE_MM = {
    'hip': 130.0, 'thigh': 450.0, 'shin': 440.0, 'spine': 230.0, 'thorax': 250.0,
    'neck': 110.0, 'head': 115.0, 'shoulder': 150.0, 'upper_arm': 280.0, 'forearm': 250.0,
}
ANKLE_HEIGHT_MM = 90.0  # ankle joint above the floor when the foot is flat


# Groups of bones that scale together (real adults differ in stature, in limb / trunk ratios and
# in hip and shoulder width), with the std of each group's factor and its clip (+-).
BONE_GROUPS = {
    'legs': (('thigh', 'shin'), 0.035, 0.08), 'trunk': (('spine', 'thorax'), 0.04, 0.09),
    'arms': (('upper_arm', 'forearm'), 0.035, 0.08), 'head': (('neck', 'head'), 0.04, 0.09),
    'hip_width': (('hip',), 0.09, 0.2), 'shoulder_width': (('shoulder',), 0.08, 0.18),
}
STATURE_STD, STATURE_CLIP = 0.055, 0.12   # about 1.50 to 1.92 m around H36M's ~1.71 m

# Joint-angle limits (degrees) of healthy adults (AAOS ranges); ``forward_kinematics`` inputs are
# squashed smoothly into them by :func:`limit_angles`. ``spine_*`` are the whole lumbar + thoracic
# range (half at each of the two spine joints).
ANGLE_LIMITS_DEG = {
    'spine_flex': (-30, 95), 'spine_lat': (-35, 35), 'spine_twist': (-45, 45),
    'neck_flex': (-50, 65), 'neck_turn': (-75, 75),
    'hip_flex': (-25, 125), 'hip_abd': (-25, 45), 'hip_rot': (-35, 40), 'knee': (0, 150),
    'sh_flex': (-50, 175), 'sh_abd': (-30, 170), 'sh_rot': (-80, 90), 'elbow': (0, 150),
}
LIMIT_MARGIN_DEG = 12.0  # angles within this of a limit are compressed (smooth, C1)
HAMSTRING_DEG = (80.0, 0.8)  # joint limit: hip flexion <= 80 + 0.8 * knee flexion (straight leg)
# Joint limit of the thigh against the trunk: hip flexion + TRUNK_SHARE x spine flexion (the part
# of the spine's bend that tilts the pelvis-to-thorax line) stays in this range (degrees).
TRUNK_THIGH_DEG, TRUNK_SHARE = (-28.0, 150.0), 0.75


def random_body(rng: np.random.Generator, spread: float = 1.0) -> dict[str, float]:
    """Bone lengths (mm) of a random adult: stature x per-group proportion x per-bone jitter;
    ``spread`` multiplies the std and clip of every proportion and sqrt(spread) those of the
    stature (the geometric sequences use a wider range: :data:`geometric.BODY_SPREAD`)."""
    tall = np.sqrt(spread)
    stature = 1.0 + np.clip(rng.normal(0, STATURE_STD * tall), -STATURE_CLIP * tall, STATURE_CLIP * tall)
    bones = {k: v * stature for k, v in BONE_MM.items()}
    for names, std, clip in BONE_GROUPS.values():
        factor = 1.0 + np.clip(rng.normal(0, std * spread), -clip * spread, clip * spread)
        for name in names:
            bones[name] *= factor
    jitter = 1.0 + np.clip(rng.normal(0, 0.015, len(bones)), -0.04, 0.04)
    return {k: float(v * j) for (k, v), j in zip(bones.items(), jitter)}


def subject_bones(seed: int, subject: int) -> dict[str, float]:
    """Bone lengths (mm) of one synthetic subject (a :func:`random_body` seeded by the subject)."""
    return random_body(_rng(seed, _RNG_TAG_BONES, subject))


def standing_height(bones: dict[str, float]) -> float:
    """Approximate standing height (mm): ankle height + legs + trunk + neck + head."""
    return ANKLE_HEIGHT_MM + sum(bones[k] for k in ('thigh', 'shin', 'spine', 'thorax', 'neck', 'head'))


def _soft_clip(x: np.ndarray, lo: float, hi: float, margin: float) -> np.ndarray:
    """``x`` squashed into (lo, hi): unchanged inside [lo + margin, hi - margin], tanh outside."""
    top, bottom = hi - margin, lo + margin
    out = np.array(x, dtype=np.float64)
    out = np.where(out > top, top + margin * np.tanh((out - top) / margin), out)
    return np.where(out < bottom, bottom - margin * np.tanh((bottom - out) / margin), out)


def limit_angles(angles: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Angles (rad) moved smoothly inside :data:`ANGLE_LIMITS_DEG`, with the straight-leg limit
    and the thigh-against-trunk limit (:data:`TRUNK_THIGH_DEG`) on hip flexion; ``yaw``, ``pitch`` and ``roll`` (the pelvis in the world) are unlimited."""
    out = dict(angles)
    m = LIMIT_MARGIN_DEG * _DEG
    for name, value in angles.items():
        base = name[:-2] if name[-2:] in ('_l', '_r') else name
        if base in ANGLE_LIMITS_DEG:
            lo, hi = ANGLE_LIMITS_DEG[base]
            out[name] = _soft_clip(value, lo * _DEG, hi * _DEG, m)
    trunk = TRUNK_SHARE * out['spine_flex'] if 'spine_flex' in out else 0.0
    for side in 'lr':
        top = (HAMSTRING_DEG[0] + HAMSTRING_DEG[1] * np.degrees(out[f'knee_{side}'])) * _DEG
        over = np.maximum(out[f'hip_flex_{side}'] - (top - m), 0.0)
        out[f'hip_flex_{side}'] = out[f'hip_flex_{side}'] - over + m * np.tanh(over / m)
        lo, hi = TRUNK_THIGH_DEG
        out[f'hip_flex_{side}'] = _soft_clip(out[f'hip_flex_{side}'] + trunk, lo * _DEG, hi * _DEG, m) - trunk
    return out


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices [T, 3, 3] about a coordinate axis (0 = x, 1 = y, 2 = z) by ``angle``."""
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out = np.zeros(np.shape(angle) + (3, 3))
    out[..., axis, axis] = 1.0
    out[..., i, i], out[..., i, j], out[..., j, i], out[..., j, j] = c, -s, s, c
    return out


def _apply(rot: np.ndarray, vec) -> np.ndarray:
    """Rotate a fixed vector [3] (or per-frame [T, 3]) by rotations [T, 3, 3]."""
    return np.einsum('tij,...j->ti', rot, np.asarray(vec, dtype=np.float64))


def _unit(*v: float) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


ANGLE_NAMES = (
    'yaw', 'pitch', 'roll', 'spine_flex', 'spine_lat', 'spine_twist', 'neck_flex', 'neck_turn',
    *(f'{name}_{side}' for side in 'lr' for name in (
        'hip_flex', 'hip_abd', 'hip_rot', 'knee', 'sh_flex', 'sh_abd', 'sh_rot', 'elbow')),
)


def forward_kinematics(angles: dict[str, np.ndarray], bones: dict[str, float]) -> np.ndarray:
    """Joint positions [T, 17, 3] (mm) relative to the pelvis, world-oriented (Z up).

    Body frame: x forward, y left, z up, turned by ``yaw`` about world Z, tilted forward by
    ``pitch`` (-90 degrees: lying on the back) and sideways by ``roll``. Angles in radians:
    flexion moves a limb forward, abduction moves it sideways away from the body, ``*_rot`` is
    internal rotation about the limb axis, ``knee``/``elbow`` are flexion of the joint.
    """
    n = len(angles['yaw'])
    pose = np.zeros((n, NUM_JOINTS, 3))
    pelvis = _rot(2, angles['yaw']) @ _rot(1, angles['pitch']) @ _rot(0, angles['roll'])
    half = (_rot(2, angles['spine_twist'] / 2) @ _rot(1, angles['spine_flex'] / 2)
            @ _rot(0, angles['spine_lat'] / 2))
    r_spine = pelvis @ half
    r_thorax = r_spine @ half
    pose[:, 7] = _apply(r_spine, [0, 0, bones['spine']])
    pose[:, 8] = pose[:, 7] + _apply(r_thorax, [0, 0, bones['thorax']])
    r_head = r_thorax @ _rot(2, angles['neck_turn']) @ _rot(1, angles['neck_flex'])
    pose[:, 9] = pose[:, 8] + _apply(r_head, bones['neck'] * _unit(0.45, 0, 0.9))
    pose[:, 10] = pose[:, 9] + _apply(r_head, bones['head'] * _unit(-0.2, 0, 1))
    for side, sign, (hip, knee, ankle, sho, elb, wri) in (
            ('l', 1.0, (4, 5, 6, 11, 12, 13)), ('r', -1.0, (1, 2, 3, 14, 15, 16))):
        a = {k[:-2]: v for k, v in angles.items() if k.endswith('_' + side)}
        pose[:, hip] = _apply(pelvis, [0, sign * bones['hip'], 0])
        r_thigh = (pelvis @ _rot(2, -sign * a['hip_rot']) @ _rot(0, sign * a['hip_abd'])
                   @ _rot(1, -a['hip_flex']))
        r_shin = r_thigh @ _rot(1, a['knee'])
        pose[:, knee] = pose[:, hip] + _apply(r_thigh, [0, 0, -bones['thigh']])
        pose[:, ankle] = pose[:, knee] + _apply(r_shin, [0, 0, -bones['shin']])
        pose[:, sho] = pose[:, 8] + _apply(r_thorax, bones['shoulder'] * _unit(-0.05, sign, -0.2))
        r_upper = (r_thorax @ _rot(0, sign * a['sh_abd']) @ _rot(1, -a['sh_flex'])
                   @ _rot(2, -sign * a['sh_rot']))
        r_fore = r_upper @ _rot(1, -a['elbow'])
        pose[:, elb] = pose[:, sho] + _apply(r_upper, [0, 0, -bones['upper_arm']])
        pose[:, wri] = pose[:, elb] + _apply(r_fore, [0, 0, -bones['forearm']])
    return pose
