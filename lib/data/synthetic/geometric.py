"""Geometric sequences: motion that teaches the geometry of lifting rather than a prior over actions.

Every joint angle follows its own random smooth trajectory over the *whole* range of human joint
limits (keys drawn uniformly between the limits of :data:`body.ANGLE_LIMITS_DEG`, smoothstep between
keys plus a slow wobble, then :func:`body.limit_angles`, the one owner of the limits), the body
takes any global orientation (upright, lying on the back, front or side, on all fours, upside down,
tumbling and rolling; :data:`ORIENTATION_MODES`) and its proportions span real adults more widely
than H36M's subjects (:data:`BODY_SPREAD` x the spread of :func:`body.random_body`). The lowest
body part rests on the floor at its own thickness (``locomotion.CONTACT_RADIUS_MM``) and the pelvis
drifts slowly across the floor. Deterministic for a given Generator.
"""
from __future__ import annotations

import numpy as np

from lib.data.synthetic.body import ANGLE_LIMITS_DEG, ANGLE_NAMES, forward_kinematics, limit_angles
from lib.data.synthetic.common import _DEG, FPS, _keys, _n_keys, _wobble
from lib.data.synthetic.locomotion import CONTACT_RADIUS_MM

BODY_SPREAD = 2.0             # geometric bodies: the std and clip of every proportion x this
KEY_EVERY_S = (0.4, 1.5)      # seconds between angle keys (drawn per sequence)
WOBBLE_SHARE = 0.12           # slow wobble added to the keyed trajectory, as a share of the range
DRIFT_MM_PER_KEY = 300.0      # std of the pelvis' horizontal move between keys
# How the body is oriented in the world (probability, pitch keys deg, roll keys deg, steps): pitch
# and roll keys are drawn around a per-sequence centre (+- the spread); 'tumble' keys walk freely.
ORIENTATION_MODES = {
    'upright': (0.35, (0.0, 20.0), (0.0, 15.0)),
    'floor': (0.35, None, (0.0, 40.0)),     # lying on back or front / on all fours: pitch +-90
    'tumble': (0.30, (0.0, 180.0), (0.0, 180.0)),
}


def _limb_angles(rng: np.random.Generator, t: np.ndarray, every: float) -> dict[str, np.ndarray]:
    """Every non-global angle (rad): random keys over its whole limit range, smooth in time."""
    n, keys = len(t), _n_keys(t[-1], every)
    ang = {}
    for name in ANGLE_NAMES[3:]:
        base = name[:-2] if name[-2:] in ('_l', '_r') else name
        lo, hi = ANGLE_LIMITS_DEG[base]
        value = _keys(rng.uniform(lo, hi, keys), n) + WOBBLE_SHARE * (hi - lo) * _wobble(rng, t, 0.5 / every)
        ang[name] = value * _DEG
    for side in 'lr':  # ``hip_rot`` turns the thigh about the pelvis' vertical: it rotates a hanging
        # leg about its axis but swings a flexed one sideways, so it fades as the hip flexes
        ang[f'hip_rot_{side}'] = ang[f'hip_rot_{side}'] * np.cos(ang[f'hip_flex_{side}']) ** 2
    return ang


def _orientation(rng: np.random.Generator, t: np.ndarray, every: float) -> tuple[str, dict]:
    """(mode, {'yaw', 'pitch', 'roll'} rad [T]): the body's global orientation over time."""
    names = list(ORIENTATION_MODES)
    mode = names[rng.choice(len(names), p=[ORIENTATION_MODES[m][0] for m in names])]
    _, pitch, roll = ORIENTATION_MODES[mode]
    n, keys = len(t), _n_keys(t[-1], every)
    yaw = rng.uniform(-np.pi, np.pi) + np.cumsum(rng.normal(0, 60, keys)) * _DEG
    if mode == 'floor':
        pitch = (rng.choice([-90.0, 90.0]), 30.0)
    if mode == 'tumble':  # free rotation: keys walk (rolling, somersaults, upside down)
        p_keys = rng.uniform(-180, 180) + np.cumsum(rng.normal(0, 70, keys))
        r_keys = rng.uniform(-180, 180) + np.cumsum(rng.normal(0, 70, keys))
    else:
        p_keys = pitch[0] + rng.uniform(-pitch[1], pitch[1], keys)
        r_keys = rng.choice([-1.0, 1.0]) * rng.uniform(0, roll[1]) + rng.uniform(-roll[1], roll[1], keys) / 2
    return mode, {'yaw': _keys(yaw, n), 'pitch': _keys(p_keys, n) * _DEG, 'roll': _keys(r_keys, n) * _DEG}


def geometric_motion(n_frames: int, rng: np.random.Generator, bones: dict[str, float],
                     with_mode: bool = False):
    """World joints [n_frames, 17, 3] (mm, Z up, floor Z = 0, 50 Hz) of one geometric sequence;
    with ``with_mode`` also the orientation mode (a key of :data:`ORIENTATION_MODES`)."""
    t = np.arange(n_frames) / FPS
    every = rng.uniform(*KEY_EVERY_S)
    ang = _limb_angles(rng, t, every)
    mode, glob = _orientation(rng, t, every)
    rel = forward_kinematics(limit_angles({**ang, **glob}), bones)
    keys = _n_keys(t[-1], every)
    world = rest_on_floor(rel, _keys(np.cumsum(rng.normal(0, DRIFT_MM_PER_KEY, (keys, 2)), 0), n_frames))
    return (world, mode) if with_mode else world


def rest_on_floor(rel: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Pelvis-relative joints [T, 17, 3] placed at the horizontal ``path`` [T, 2] (mm), raised
    so that the lowest body part rests on the floor at its own thickness in every frame."""
    height = (CONTACT_RADIUS_MM[None] - rel[..., 2]).max(1)
    return rel + np.concatenate([path, height[:, None]], 1)[:, None]
