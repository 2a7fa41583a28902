"""Locomotion and ground contact: gait in any direction, paths through the capture volume, turning
steps, and placing a pelvis-relative pose sequence on the floor without foot sliding.

Placement is kinematic odometry: every frame one ankle supports the body (the lower one, with
hysteresis); the pelvis moves so that the supporting ankle stays fixed on the floor, so a foot in
stance never slides and nothing goes below the floor. When another body part is lower than the
feet allow (a knee when kneeling, the pelvis when sitting on the floor, the back when lying) it
rests on the floor at its own thickness (:data:`CONTACT_RADIUS_MM`) and the body does not travel.
During flight (jumps, running) the pelvis follows a ballistic arc and keeps its take-off
horizontal velocity. A slow correction (under
``MAX_CORRECTION_MM_S``) keeps the person on the planned path through the capture volume.
"""
from __future__ import annotations

import numpy as np

from lib.data.synthetic.body import ANKLE_HEIGHT_MM
from lib.data.synthetic.common import _DEG, FPS, _keys, _n_keys, _wobble

GRAVITY_MM_S2 = 9810.0
SUPPORT_HYSTERESIS_MM = 3.0   # the other ankle must be this much lower to take over support
MAX_CORRECTION_MM_S = 60.0    # speed of the path-keeping correction (slower than foot skating)
# Height of each joint centre above the floor when that body part rests on it (mm): pelvis and
# hips sitting, spine/thorax/head lying on the back, knees kneeling, hands on the floor.
CONTACT_RADIUS_MM = np.array([100.0, 90.0, 55.0, ANKLE_HEIGHT_MM, 90.0, 55.0, ANKLE_HEIGHT_MM,
                              110.0, 110.0, 100.0, 90.0, 70.0, 45.0, 45.0, 70.0, 45.0, 45.0])
_BODY_RADIUS_MM = np.where(np.isin(np.arange(17), (3, 6)), -np.inf, CONTACT_RADIUS_MM)
SMOOTH_FRAMES = 5             # the pelvis' steps are averaged over this many frames (no jerk at
                              # support changes; the foot lock absorbs the difference)


def _add_weight_shift(ang, rng, t, amplitude_mm: float, bones) -> None:
    """Sideways weight shift: both legs tilt so the pelvis moves over one foot, then the other."""
    shift = amplitude_mm * _wobble(rng, t, 0.12) / (bones['thigh'] + bones['shin'])
    ang['hip_abd_l'] -= shift
    ang['hip_abd_r'] += shift
    ang['roll'] += 0.5 * shift
    ang['knee_l'] += np.maximum(0, shift) * 2
    ang['knee_r'] += np.maximum(0, -shift) * 2


def _add_gait(ang, phase: np.ndarray, amp: np.ndarray, arm_swing: float = 0.8,
              direction=0.0, run=0.0) -> None:
    """Add a stepping cycle: hip swing per leg, knee lift in swing, opposite arm swing, twist.

    ``phase`` (rad) is the right leg's gait phase, ``amp`` the hip swing amplitude (rad),
    ``direction`` the stepping direction relative to the facing (rad; 0 forward, pi/2 left),
    ``run`` [T] in [0, 1] how much the gait is running: more knee flexion in swing and in
    loading, elbows bent, the trunk leaning forward (:func:`running_flight` adds the flight).
    """
    fwd, side = amp * np.cos(direction), amp * np.sin(direction)
    lift = np.clip(amp / 0.03, 0.0, 1.0) * (22 + 40 * np.clip(amp / 0.35, 0.0, 1.0)) + 35 * run
    for leg, offset, sign in (('r', 0.0, -1.0), ('l', np.pi, 1.0)):
        phi = phase + offset
        ang[f'hip_flex_{leg}'] += fwd * np.sin(phi) + 0.15 * np.abs(fwd)
        ang[f'hip_abd_{leg}'] += sign * side * np.sin(phi)
        swing = np.maximum(0.0, np.cos(phi + 0.1)) ** 3
        loading = np.maximum(0.0, np.cos(phi - 2.2)) ** 4
        ang[f'knee_{leg}'] += (lift * swing + (12 * np.clip(amp / 0.35, 0, 1) + 20 * run) * loading) * _DEG
        ang[f'hip_flex_{leg}'] += 0.5 * lift * swing * _DEG
        other = 'l' if leg == 'r' else 'r'
        arm = -arm_swing * fwd * np.sin(phi)
        ang[f'sh_flex_{other}'] += arm
        ang[f'elbow_{other}'] += (0.6 * np.maximum(0.0, arm) + 10 * _DEG * np.clip(amp / 0.35, 0, 1)
                                  + 65 * _DEG * run)
    ang['spine_flex'] += 8 * _DEG * run
    ang['yaw'] += 0.25 * fwd * np.sin(phase)
    ang['spine_twist'] -= 0.5 * fwd * np.sin(phase)


def _loop_path(rng: np.random.Generator, speed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walk around a randomly sized, rotated ellipse at ``speed`` (mm/frame).

    Returns the root path [T, 2] (mm) and the heading yaw [T] (rad, tangent of the path).
    """
    theta = np.linspace(0, 2 * np.pi, 2049)
    axes = rng.uniform([1100, 750], [1500, 1100])
    tilt, centre = rng.uniform(0, np.pi), rng.uniform(-200, 200, 2)
    rot = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
    curve = (np.stack([np.cos(theta), np.sin(theta)], 1) * axes) @ rot.T + centre
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])
    travelled = rng.uniform(0, arc[-1]) + np.cumsum(speed)
    direction = rng.choice([-1.0, 1.0])
    th = direction * np.interp(np.mod(travelled, arc[-1]), arc, theta)
    path = (np.stack([np.cos(th), np.sin(th)], 1) * axes) @ rot.T + centre
    tangent = direction * (np.stack([-np.sin(th), np.cos(th)], 1) * axes) @ rot.T
    return path, np.unwrap(np.arctan2(tangent[:, 1], tangent[:, 0]))


def _drift_path(rng: np.random.Generator, n: int, step_prob: float) -> np.ndarray:
    """Root path [T, 2] (mm) of a mostly standing person who now and then steps elsewhere."""
    keys = _n_keys(n / FPS, 2.5)
    start = rng.uniform(-600, 600, 2)
    moves = rng.uniform(250, 700, keys - 1)[:, None] * _unit_2d(rng.uniform(0, 2 * np.pi, keys - 1))
    moves *= (rng.random(keys - 1) < step_prob)[:, None]
    points = start + np.concatenate([np.zeros((1, 2)), np.cumsum(moves, axis=0)])
    points = np.clip(points, -1300, 1300)
    return _keys(points, n, hold=0.45)


def _unit_2d(angle: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def _stepping(ang, rng, t, path: np.ndarray, leg_mm: float) -> None:
    """Steps in the direction the path moves (forward, sideways or back, relative to the facing)
    and turning steps while the facing changes; the amplitude follows the path speed."""
    freq = rng.uniform(0.9, 1.1)
    velocity = np.gradient(path, axis=0) * FPS  # mm/s
    speed = np.linalg.norm(velocity, axis=1)
    turn_rate = np.abs(np.gradient(ang['yaw'])) * FPS  # rad/s
    amp = np.arcsin(np.clip(speed / (4 * leg_mm * freq), 0.0, 0.5)) + np.clip(0.12 * turn_rate, 0, 0.15)
    direction = np.arctan2(velocity[:, 1], velocity[:, 0]) - ang['yaw']
    _add_gait(ang, 2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi), amp, arm_swing=0.5,
              direction=np.where(speed > 1.0, direction, 0.0))


def _facing(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Body heading [T] (rad) of a standing person: random base, occasional turns, small drift."""
    turns = rng.uniform(-60, 60, _n_keys(t[-1], 4.0)) * _DEG
    turns[0] = 0.0
    return (rng.uniform(0, 2 * np.pi) + _keys(np.cumsum(turns), len(t), hold=0.5)
            + 8 * _DEG * _wobble(rng, t, 0.1))


def _standing(ang, rng, t, bones, step_prob: float, shift_mm: float) -> np.ndarray:
    """Standing base layer: heading, weight shift and occasional steps; returns the path [T, 2]."""
    ang['yaw'] += _facing(rng, t)
    _add_weight_shift(ang, rng, t, shift_mm, bones)
    path = _drift_path(rng, len(t), step_prob)
    _stepping(ang, rng, t, path, bones['thigh'] + bones['shin'])
    return path


def running_flight(rel: np.ndarray, run: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pelvis lift [T] (mm, > 0 airborne) of the flight phases of running: a ballistic arc of
    ``run`` x 0.07-0.12 s around each change of the supporting foot of poses ``rel`` [T, 17, 3]
    while ``run`` [T] is above 0.3 (walking has none: one foot is always on the ground)."""
    t = np.arange(len(rel)) / FPS
    support = _support(rel[:, [3, 6], 2], np.zeros(len(rel), dtype=bool))
    lift = np.zeros(len(rel))
    for i in np.flatnonzero(np.diff(support)) + 1:
        if run[i] > 0.3:
            duration = run[i] * rng.uniform(0.07, 0.12)
            start = t[i] - duration / 2
            arc = 0.5 * GRAVITY_MM_S2 * (t - start) * (start + duration - t)
            lift = np.maximum(lift, np.where((t > start) & (t < start + duration), arc, 0.0))
    return lift


def _support(ankles_z: np.ndarray, flight: np.ndarray) -> np.ndarray:
    """Index [T] (0 right, 1 left) of the supporting ankle: the lower one, with hysteresis; kept
    unchanged during flight."""
    z = ankles_z.tolist()
    side = int(z[0][1] < z[0][0])
    out = np.empty(len(z), dtype=int)
    for i, (zi, airborne) in enumerate(zip(z, flight.tolist())):
        if not airborne and zi[1 - side] < zi[side] - SUPPORT_HYSTERESIS_MM:
            side = 1 - side
        out[i] = side
    return out


def place_on_floor(rel: np.ndarray, path: np.ndarray, lift: np.ndarray) -> np.ndarray:
    """Pelvis-relative poses [T, 17, 3] -> world poses: the supporting ankle fixed on the floor,
    ``lift`` [T] (mm) the pelvis' extra height in flight (> 0 = airborne), the person kept near
    the planned ``path`` [T, 2] (mm) by a slow correction."""
    flight = lift > 0
    ankles = rel[:, [3, 6]]
    support = _support(ankles[..., 2], flight)
    rows = np.arange(len(rel))
    sup_xy = ankles[rows, support, :2]
    prev_xy = ankles[np.maximum(rows - 1, 0), support, :2]
    base = ANKLE_HEIGHT_MM - ankles[rows, support, 2]
    body = (_BODY_RADIUS_MM - rel[..., 2]).max(axis=1)  # the lowest other body part on the floor
    on_body = body > base
    base = np.maximum(base, body)
    step = -(sup_xy - prev_xy)
    step[0] = 0.0
    step[on_body] = 0.0  # resting on the knees, the seat or the back: no stepping
    step = _carry_in_flight(step, flight)
    step = np.stack([np.convolve(np.pad(c, SMOOTH_FRAMES // 2, mode='edge'),
                                 np.ones(SMOOTH_FRAMES) / SMOOTH_FRAMES, 'valid') for c in step.T], 1)
    root = np.empty((len(rel), 3))
    root[:, :2] = path[0] + np.cumsum(step, axis=0)
    root[:, :2] += _correction(path - root[:, :2], hold=on_body)
    if flight.any() and not flight.all():  # ballistic: no leg motion moves the pelvis in flight
        base[flight] = np.interp(rows[flight], rows[~flight], base[~flight])
    root[:, 2] = base + lift
    return rel + root[:, None]


def _carry_in_flight(step: np.ndarray, flight: np.ndarray) -> np.ndarray:
    """Per-frame root steps [T, 2] where airborne frames repeat the step before take-off."""
    out = step.copy()
    for i in np.flatnonzero(flight):
        out[i] = out[i - 1] if i > 0 else 0.0
    return out


def _correction(error: np.ndarray, hold: np.ndarray) -> np.ndarray:
    """A smooth offset [T, 2] that follows ``error`` (mm) at most ``MAX_CORRECTION_MM_S``, and
    stays put on ``hold`` [T] frames (a body resting on the floor does not slide)."""
    limit = MAX_CORRECTION_MM_S / FPS
    out = np.zeros_like(error)
    for i in range(1, len(error)):
        out[i] = out[i - 1] if hold[i] else out[i - 1] + np.clip(0.02 * (error[i] - out[i - 1]), -limit, limit)
    return out


PLANT_MM = 20.0       # an ankle this close to its resting height is planted (locked in place)
PLANT_SPEED_MM = 10.0  # ... and moving slower than this per frame (0.5 m/s; else it is lifting off)
KNEE_HINT_MM = 60.0   # IK knees bend towards the current knee moved this far forward
RELEASE_FRAMES = 8    # after lift-off the lock's offset fades out over this many frames


def _planted_targets(ankle: np.ndarray) -> np.ndarray:
    """Target positions [T, 3] for one ankle [T, 3] (mm): while planted (near the floor, slow) the
    horizontal position is held where the contact began; after lift-off the offset fades out."""
    speed = np.r_[0.0, np.linalg.norm(np.diff(ankle[:, :2], axis=0), axis=1)]
    planted = (ankle[:, 2] < ANKLE_HEIGHT_MM + PLANT_MM) & (speed < PLANT_SPEED_MM)
    offset = np.zeros((len(ankle), 2))
    anchor = None
    for i in range(len(ankle)):
        if planted[i]:
            if anchor is None:  # contact begins where the (fading) offset puts the foot
                anchor = ankle[i, :2] + (offset[i - 1] if i else 0.0)
            offset[i] = anchor - ankle[i, :2]
        else:
            anchor = None
            offset[i] = offset[i - 1] * (1 - 1.0 / RELEASE_FRAMES) if i else 0.0
    target = ankle.copy()
    target[:, :2] += offset
    return target


def _two_bone_ik(hip: np.ndarray, hint: np.ndarray, target: np.ndarray, thigh: float,
                 shin: float) -> tuple[np.ndarray, np.ndarray]:
    """Knee and ankle [T, 3] reaching ``target`` from ``hip`` with exact bone lengths, the knee
    bending towards the point ``hint`` [T, 3]."""
    reach = target - hip
    d = np.clip(np.linalg.norm(reach, axis=1), abs(thigh - shin) + 1.0, thigh + shin - 1e-3)
    u = reach / np.maximum(np.linalg.norm(reach, axis=1, keepdims=True), 1e-9)
    hint = hint - hip
    v = hint - (hint * u).sum(1, keepdims=True) * u
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
    cos_a = (thigh ** 2 + d ** 2 - shin ** 2) / (2 * thigh * d)
    new_knee = hip + thigh * (cos_a[:, None] * u + np.sqrt(np.clip(1 - cos_a ** 2, 0, 1))[:, None] * v)
    return new_knee, hip + d[:, None] * u


def lock_feet(world: np.ndarray) -> np.ndarray:
    """World poses [T, 17, 3] (mm) whose planted feet do not slide (leg IK, bone lengths kept)."""
    out = world.copy()
    across = world[:, 4] - world[:, 1]
    forward = np.stack([across[:, 1], -across[:, 0], np.zeros(len(world))], 1)
    forward *= KNEE_HINT_MM / np.maximum(np.linalg.norm(forward, axis=1, keepdims=True), 1e-9)
    for hip, knee, ankle in ((1, 2, 3), (4, 5, 6)):
        thigh = float(np.linalg.norm(world[0, knee] - world[0, hip]))
        shin = float(np.linalg.norm(world[0, ankle] - world[0, knee]))
        target = _planted_targets(world[:, ankle])
        out[:, knee], out[:, ankle] = _two_bone_ik(world[:, hip], world[:, knee] + forward, target,
                                                   thigh, shin)
    return out
