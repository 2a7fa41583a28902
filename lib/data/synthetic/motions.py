"""Synthetic motion per action: joint-angle layers over a relaxed standing base (one function per
motion family), random episodes (``episodes.py``), joint limits, then placement on the floor with
ground contact (``locomotion.py``). World joints in mm, Z up, floor Z = 0, 50 Hz.
"""
from __future__ import annotations

import numpy as np

from lib.data.synthetic.body import ANGLE_NAMES, forward_kinematics, limit_angles
from lib.data.synthetic.common import _DEG, FPS, _keys, _n_keys, _pulses, _wobble
from lib.data.synthetic.episodes import add_episodes
from lib.data.synthetic.locomotion import (_add_gait, _loop_path, _standing, lock_feet, place_on_floor,
                                           running_flight)


def _rest_angles(rng: np.random.Generator, t: np.ndarray) -> dict[str, np.ndarray]:
    """Relaxed standing with small sway, breathing-like drift and head movement (radians)."""
    ang = {name: np.zeros_like(t) for name in ANGLE_NAMES}
    ang['roll'] += 1.5 * _DEG * _wobble(rng, t, 0.2)
    ang['spine_flex'] += (4 + 3 * _wobble(rng, t, 0.15)) * _DEG
    ang['spine_lat'] += 3 * _DEG * _wobble(rng, t, 0.2)
    ang['spine_twist'] += 5 * _DEG * _wobble(rng, t, 0.2)
    ang['neck_flex'] += (5 + 6 * _wobble(rng, t, 0.25)) * _DEG
    ang['neck_turn'] += 15 * _DEG * _wobble(rng, t, 0.15)
    for side in 'lr':
        ang[f'sh_abd_{side}'] += (10 + 3 * _wobble(rng, t, 0.3)) * _DEG
        ang[f'sh_flex_{side}'] += (5 + 4 * _wobble(rng, t, 0.3)) * _DEG
        ang[f'sh_rot_{side}'] += (10 + 5 * _wobble(rng, t, 0.2)) * _DEG
        ang[f'elbow_{side}'] += (15 + 8 * _wobble(rng, t, 0.3)) * _DEG
        ang[f'hip_abd_{side}'] += (3 + 1 * _wobble(rng, t, 0.1)) * _DEG
        ang[f'hip_rot_{side}'] += 4 * _DEG * _wobble(rng, t, 0.1)
        ang[f'knee_{side}'] += (3 + 2 * _wobble(rng, t, 0.2)) * _DEG
    return ang


def _arm(ang, side: str, weight, flex=0.0, abd=0.0, rot=0.0, elbow=0.0) -> None:
    """Blend an arm pose (degrees, added to the current angles) in by ``weight`` in [0, 1]."""
    for name, value in (('sh_flex', flex), ('sh_abd', abd), ('sh_rot', rot), ('elbow', elbow)):
        ang[f'{name}_{side}'] = ang[f'{name}_{side}'] + weight * value * _DEG


def _hand_to_mouth(ang, side, weight):
    _arm(ang, side, weight, flex=50, abd=10, rot=35, elbow=120)


def _hand_to_ear(ang, side, weight):
    _arm(ang, side, weight, flex=50, abd=0, rot=25, elbow=145)


def _walk(ang, rng, t, bones, action: str):
    """Walking / WalkDog / WalkTogether: gait around a turning loop at a varied pace, with stops
    (standing still a few seconds), restarts and, in some videos, running bouts (jogging at
    1.5-2.5 m/s with flight phases); returns the planned root path [T, 2] (mm) and how much the
    gait is running [T] in [0, 1]."""
    leg = bones['thigh'] + bones['shin']
    base, variation, run_prob = {'Walking': (0.34, 0.08, 0.5), 'WalkDog': (0.28, 0.3, 0.3),
                                 'WalkTogether': (0.27, 0.1, 0.3)}[action]
    go = _keys((rng.random(_n_keys(t[-1], 3.0)) > 0.15).astype(float), len(t), hold=0.5)
    run = _pulses(rng, t, rng.uniform(6, 12), rng.uniform(0.2, 0.5)) * go * float(rng.random() < run_prob)
    freq = rng.uniform(0.75, 1.15) * (1 - run) + rng.uniform(1.3, 1.5) * run  # strides per second
    amp = (base * rng.uniform(0.7, 1.3) * (1 + variation * _wobble(rng, t, 0.1)) * (1 - run)
           + rng.uniform(0.38, 0.48) * run) * go
    speed = 4 * leg * freq * np.sin(amp) / FPS  # mm per frame: stance foot stays put
    path, heading = _loop_path(rng, speed)
    ang['yaw'] += heading
    phase = 2 * np.pi * np.cumsum(freq) / FPS + rng.uniform(0, 2 * np.pi)
    _add_gait(ang, phase, amp, run=run)
    if action == 'WalkDog':  # right hand holds the leash, looking down at the dog
        _arm(ang, 'r', 1.0, flex=25 + 10 * _wobble(rng, t, 0.5), elbow=35, rot=10)
        ang['spine_flex'] += 8 * _DEG
        ang['neck_flex'] += 12 * _DEG
    if action == 'WalkTogether':  # looking at the partner walking alongside
        side = rng.choice([-1.0, 1.0])
        ang['neck_turn'] += side * (25 + 10 * _wobble(rng, t, 0.2)) * _DEG
        ang['spine_twist'] += side * 8 * _DEG
    return path, run


def _sit_envelope(rng, n: int, repeat: bool) -> np.ndarray:
    """Sitting amount in [0, 1]: stand, sit, (stand up again); ``repeat`` alternates often."""
    keys = _n_keys(n / FPS, 3.0 if repeat else 4.0)
    values = np.ones(keys)
    values[0] = 0.0
    if repeat:
        values[::2] = 0.0
    elif keys > 2:
        values[-1] = float(rng.random() < 0.6)
    return _keys(values, n, hold=0.35)


def _sit(ang, rng, t, bones, action: str):
    """Sitting / SittingDown: hips and knees flex, the pelvis lowers, the trunk leans to rise."""
    deep = action == 'SittingDown'
    path = _standing(ang, rng, t, bones, step_prob=0.0, shift_mm=10.0)
    sit = _sit_envelope(rng, len(t), repeat=deep)
    rising = 4 * sit * (1 - sit)  # 1 half-way through standing up or sitting down
    hip, knee = (rng.uniform(100, 115), rng.uniform(115, 130)) if deep else \
        (rng.uniform(85, 95), rng.uniform(85, 100))
    for side in 'lr':
        ang[f'hip_flex_{side}'] += sit * hip * _DEG
        ang[f'knee_{side}'] += sit * knee * _DEG
        ang[f'hip_abd_{side}'] += sit * 6 * _DEG
        _arm(ang, side, sit, flex=15 + 10 * _wobble(rng, t, 0.3), elbow=50 + 20 * _wobble(rng, t, 0.3))
        _arm(ang, side, rising, flex=30 if deep else 10)
    ang['spine_flex'] += (10 * sit + 35 * rising) * _DEG
    return path, None


def _gesture(ang, rng, t, bones, action: str):
    """Directions, Discussion, Greeting: pointing, gesturing, waving arms, some stepping."""
    if action == 'Directions':
        path = _standing(ang, rng, t, bones, step_prob=0.5, shift_mm=40.0)
        for side, sign in (('l', 1.0), ('r', -1.0)):
            point = _pulses(rng, t, rng.uniform(4, 7), 0.35)
            _arm(ang, side, point, flex=rng.uniform(60, 95), abd=rng.uniform(0, 35), elbow=-10)
            ang['neck_turn'] += sign * 20 * _DEG * point
    elif action == 'Discussion':
        path = _standing(ang, rng, t, bones, step_prob=0.35, shift_mm=50.0)
        for side in 'lr':
            _arm(ang, side, 1.0, flex=20 + 15 * _wobble(rng, t, 0.5), abd=10 + 5 * _wobble(rng, t, 0.4),
                 rot=25, elbow=60 + 25 * _wobble(rng, t, 0.7))
        ang['spine_twist'] += 10 * _DEG * _wobble(rng, t, 0.3)
    else:  # Greeting: raise the right hand and wave (elbow oscillating at ~2 Hz)
        path = _standing(ang, rng, t, bones, step_prob=0.5, shift_mm=30.0)
        wave = _pulses(rng, t, rng.uniform(5, 8), 0.4)
        swing = np.sin(2 * np.pi * rng.uniform(1.6, 2.4) * t)
        _arm(ang, 'r', wave, flex=25, abd=95, rot=-85, elbow=55 + 25 * swing)
    return path, None


def _hands(ang, rng, t, bones, action: str):
    """Eating, Phoning, Smoking, Photo: a hand (or both) periodically to the mouth, ear or face."""
    steps = {'Eating': 0.1, 'Phoning': 0.6, 'Smoking': 0.2, 'Photo': 0.4}[action]
    path = _standing(ang, rng, t, bones, step_prob=steps, shift_mm=40.0)
    if action == 'Eating':
        _hand_to_mouth(ang, 'r', _pulses(rng, t, rng.uniform(3, 5), 0.35))
        _arm(ang, 'l', 1.0, flex=20, rot=20, elbow=70)
        ang['neck_flex'] += 8 * _DEG
    elif action == 'Phoning':
        _hand_to_ear(ang, 'r', _pulses(rng, t, rng.uniform(7, 10), 0.75))
        _arm(ang, 'l', 1.0, flex=10 * _wobble(rng, t, 0.3), elbow=20 + 20 * _wobble(rng, t, 0.4))
    elif action == 'Smoking':
        _hand_to_mouth(ang, 'r', _pulses(rng, t, rng.uniform(4, 6), 0.25))
        _arm(ang, 'l', 1.0, flex=15, rot=50, elbow=80)
    else:  # Photo: both hands hold a camera to the face; crouch now and then
        hold = _pulses(rng, t, rng.uniform(4, 7), 0.5)
        crouch = _pulses(rng, t, rng.uniform(6, 10), 0.3) * float(rng.random() < 0.7)
        for side in 'lr':
            _arm(ang, side, hold, flex=50, abd=5, rot=10, elbow=115)
            ang[f'hip_flex_{side}'] += 35 * _DEG * crouch
            ang[f'knee_{side}'] += 60 * _DEG * crouch
        ang['spine_flex'] += 15 * _DEG * crouch
    return path, None


def _idle(ang, rng, t, bones, action: str):
    """Posing (held poses changing slowly), Purchases and Waiting (sway, shifts, small steps)."""
    n = len(t)
    if action == 'Posing':
        path = _standing(ang, rng, t, bones, step_prob=0.25, shift_mm=20.0)
        keys = _n_keys(n / FPS, 3.0)
        for side in 'lr':
            _arm(ang, side, 1.0, *(_keys(rng.uniform(lo, hi, keys), n, hold=0.6) for lo, hi in
                                   ((-10, 110), (0, 110), (-60, 40), (0, 120))))
            ang[f'hip_abd_{side}'] += _keys(rng.uniform(0, 15, keys), n, hold=0.6) * _DEG
        for name, limit in (('spine_lat', 12), ('spine_twist', 20), ('neck_turn', 30)):
            ang[name] += _keys(rng.uniform(-limit, limit, keys), n, hold=0.6) * _DEG
    elif action == 'Purchases':
        path = _standing(ang, rng, t, bones, step_prob=0.6, shift_mm=40.0)
        bend = _pulses(rng, t, rng.uniform(6, 10), 0.2)
        for side in 'lr':
            _arm(ang, side, 1.0, flex=20 + 10 * _wobble(rng, t, 0.3), rot=20,
                 elbow=60 + 20 * _wobble(rng, t, 0.4))
            _arm(ang, side, bend, flex=30)
        ang['spine_flex'] += 35 * _DEG * bend
        ang['neck_flex'] += 15 * _DEG * bend
    else:  # Waiting: hands on the hips now and then, looking around
        path = _standing(ang, rng, t, bones, step_prob=0.3, shift_mm=60.0)
        hips = _pulses(rng, t, rng.uniform(8, 12), 0.5)
        for side in 'lr':
            _arm(ang, side, hips, flex=-5, abd=35, rot=80, elbow=70)
        ang['neck_turn'] += 20 * _DEG * _wobble(rng, t, 0.15)
    return path, None


FAMILIES = {
    'gesture': ('Directions', 'Discussion', 'Greeting'),
    'hands': ('Eating', 'Phoning', 'Smoking', 'Photo'),
    'idle': ('Posing', 'Purchases', 'Waiting'),
    'sit': ('Sitting', 'SittingDown'),
    'walk': ('Walking', 'WalkDog', 'WalkTogether'),
}
FAMILY_OF = {action: family for family, actions in FAMILIES.items() for action in actions}
_FAMILY_LAYERS = {'gesture': _gesture, 'hands': _hands, 'idle': _idle, 'sit': _sit, 'walk': _walk}


def synthesize_motion(action: str, n_frames: int, rng: np.random.Generator,
                      bones: dict[str, float]) -> np.ndarray:
    """World joint positions [n_frames, 17, 3] (mm, Z up, floor Z = 0) of one action at 50 Hz."""
    t = np.arange(n_frames) / FPS
    ang = _rest_angles(rng, t)
    family = FAMILY_OF[action]
    path, run = _FAMILY_LAYERS[family](ang, rng, t, bones, action)
    lift = add_episodes(ang, rng, t, family)
    rel = forward_kinematics(limit_angles(ang), bones)
    if run is not None:
        lift = np.maximum(lift, running_flight(rel, run, rng))
    return lock_feet(place_on_floor(rel, path, lift))
