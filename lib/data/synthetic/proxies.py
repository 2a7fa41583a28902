"""Motions the training generator never makes, for the other-configuration test set
(``tools/bench/experiments.py transfer``): crawling on all fours and rolling along the floor.

Both are joint-angle layers through the same kinematics and limits as every other motion
(``body.forward_kinematics``, ``body.limit_angles``), resting on the floor (``geometric.rest_on_floor``).
"""
from __future__ import annotations

import numpy as np

from lib.data.synthetic.body import ANGLE_NAMES, forward_kinematics, limit_angles
from lib.data.synthetic.common import _DEG, FPS, _wobble
from lib.data.synthetic.geometric import rest_on_floor


def _zeros(t: np.ndarray) -> dict[str, np.ndarray]:
    return {name: np.zeros_like(t) for name in ANGLE_NAMES}


def crawl_motion(n_frames: int, rng: np.random.Generator, bones: dict[str, float]) -> np.ndarray:
    """Crawling on hands and knees (face down, trunk horizontal) with a diagonal gait at
    0.6-1.0 cycles/s, travelling forward; world joints [n_frames, 17, 3] (mm)."""
    t = np.arange(n_frames) / FPS
    ang = _zeros(t)
    phase = 2 * np.pi * rng.uniform(0.6, 1.0) * t + rng.uniform(0, 2 * np.pi)
    heading = rng.uniform(-np.pi, np.pi) + 0.3 * _wobble(rng, t, 0.1)
    lean = 81.0  # trunk 9 degrees head-up, so that straight arms and vertical thighs both reach the floor
    ang['yaw'], ang['pitch'] = heading, np.full_like(t, lean * _DEG)
    ang['neck_flex'] = np.full_like(t, -35 * _DEG)
    ang['spine_flex'] = (5 + 5 * _wobble(rng, t, 0.3)) * _DEG
    for side, sign in (('l', 1.0), ('r', -1.0)):
        swing = np.sin(phase + (0 if side == 'l' else np.pi))
        ang[f'hip_flex_{side}'] = (lean + 15 * swing) * _DEG
        ang[f'knee_{side}'] = (110 - 10 * swing) * _DEG
        ang[f'sh_flex_{side}'] = (lean - 15 * swing) * _DEG        # the opposite arm moves with the leg
        ang[f'sh_abd_{side}'] = np.full_like(t, 8 * _DEG)
        ang[f'elbow_{side}'] = (8 + 8 * np.maximum(swing, 0)) * _DEG
    rel = forward_kinematics(limit_angles(ang), bones)
    step = rng.uniform(0.2, 0.35) * 1000 / FPS                   # mm per frame
    path = np.cumsum(step * np.stack([np.cos(heading), np.sin(heading)], 1), 0)
    return rest_on_floor(rel, path)


def roll_motion(n_frames: int, rng: np.random.Generator, bones: dict[str, float]) -> np.ndarray:
    """Rolling along the floor about the body's long axis (arms tucked or overhead) at
    0.2-0.5 turns/s; world joints [n_frames, 17, 3] (mm)."""
    t = np.arange(n_frames) / FPS
    ang = _zeros(t)
    turn = rng.choice([-1.0, 1.0]) * 2 * np.pi * rng.uniform(0.2, 0.5) * t
    ang['yaw'] = np.full_like(t, rng.uniform(-np.pi, np.pi))
    ang['roll'] = np.full_like(t, 90 * _DEG)                     # lying on the side ...
    ang['pitch'] = turn + rng.uniform(0, 2 * np.pi)              # ... turning about the long axis
    overhead = rng.random() < 0.5
    for side in 'lr':
        ang[f'sh_flex_{side}'] = np.full_like(t, (165 if overhead else 20) * _DEG)
        ang[f'elbow_{side}'] = np.full_like(t, (10 if overhead else 100) * _DEG)
        ang[f'hip_flex_{side}'] = (5 + 10 * _wobble(rng, t, 0.4)) * _DEG
        ang[f'knee_{side}'] = (5 + 10 * _wobble(rng, t, 0.4)) * _DEG
    rel = forward_kinematics(limit_angles(ang), bones)
    across = np.array([-np.sin(ang['yaw'][0]), np.cos(ang['yaw'][0])])
    radius = 150.0                                               # the body's half-thickness
    path = (radius * -turn)[:, None] * across                    # rolling without slipping
    return rest_on_floor(rel, path)
