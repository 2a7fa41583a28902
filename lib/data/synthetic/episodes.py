"""Motion episodes laid over an action: reaching, bending, crouching, jumping, turning on the spot,
lifting a leg (kick / step up), looking around, and getting down to the floor (half-kneeling,
sitting on the floor, lying on the back) and up again, at random times, durations and speeds.

Each episode kind occurs as a Poisson process with a per-family rate (per minute,
:data:`EPISODE_RATES`); an episode blends in over a rise time, holds and blends out (smoothstep),
so transitions between postures are part of every video. Angles in degrees unless named ``_rad``.
"""
from __future__ import annotations

import numpy as np

from lib.data.synthetic.common import _DEG, _wobble
from lib.data.synthetic.locomotion import GRAVITY_MM_S2, _add_gait

_STANDING = {'reach': 3.0, 'bend': 1.5, 'crouch': 1.2, 'jump': 1.2, 'turn': 2.0, 'leg_lift': 1.2,
             'look': 2.0}
EPISODE_RATES = {
    'gesture': _STANDING, 'idle': {**_STANDING, 'bend': 2.0, 'crouch': 1.5, 'jump': 1.5, 'floor': 0.6},
    'hands': {**_STANDING, 'reach': 1.5, 'jump': 0.6, 'leg_lift': 0.6},
    'sit': {'reach': 2.0, 'look': 2.0, 'floor': 4.0}, 'walk': {'reach': 1.0, 'look': 2.0},
}


def _bump(t: np.ndarray, start: float, rise: float, hold: float) -> np.ndarray:
    """Envelope [T] in [0, 1]: smoothstep up over ``rise`` s from ``start``, hold, smoothstep down."""
    def step(u):
        u = np.clip(u, 0.0, 1.0)
        return u * u * (3 - 2 * u)
    return step((t - start) / rise) * step((start + 2 * rise + hold - t) / rise)


def _add(ang, name: str, weight, degrees: float) -> None:
    ang[name] = ang[name] + weight * degrees * _DEG


def _reach(ang, rng, t, w) -> None:
    side, sign = (('l', 1.0), ('r', -1.0))[rng.integers(2)]
    for name, lo, hi in (('sh_flex', 20, 170), ('sh_abd', -10, 110), ('sh_rot', -40, 60),
                         ('elbow', 0, 70)):
        _add(ang, f'{name}_{side}', w, rng.uniform(lo, hi) - np.degrees(ang[f'{name}_{side}'].mean()))
    _add(ang, 'spine_twist', w, sign * rng.uniform(0, 25))
    _add(ang, 'spine_lat', w, -sign * rng.uniform(0, 15))
    _add(ang, 'neck_turn', w, sign * rng.uniform(0, 40))


def _bend(ang, rng, t, w) -> None:
    _add(ang, 'spine_flex', w, rng.uniform(30, 80))
    _add(ang, 'neck_flex', w, rng.uniform(-20, 20))
    hip, knee, arm = rng.uniform(20, 70), rng.uniform(0, 40), rng.uniform(20, 80)
    for side in 'lr':
        _add(ang, f'hip_flex_{side}', w, hip)
        _add(ang, f'knee_{side}', w, knee)
        _add(ang, f'sh_flex_{side}', w, arm)


def _crouch(ang, rng, t, w) -> None:
    hip, knee = rng.uniform(80, 115), rng.uniform(95, 130)
    abd, arm, elbow = rng.uniform(5, 25), rng.uniform(20, 80), rng.uniform(20, 90)
    _add(ang, 'spine_flex', w, rng.uniform(10, 40))
    for side in 'lr':
        for name, value in (('hip_flex', hip), ('knee', knee), ('hip_abd', abd), ('sh_flex', arm),
                            ('elbow', elbow)):
            _add(ang, f'{name}_{side}', w, value)


def _leg_lift(ang, rng, t, w) -> None:
    side = 'lr'[rng.integers(2)]
    for name, lo, hi in (('hip_flex', 30, 90), ('knee', 10, 110), ('hip_abd', 0, 30)):
        _add(ang, f'{name}_{side}', w, rng.uniform(lo, hi))
    _add(ang, 'spine_flex', w, rng.uniform(-10, 10))


def _look(ang, rng, t, w) -> None:
    _add(ang, 'neck_turn', w, rng.uniform(-70, 70))
    _add(ang, 'neck_flex', w, rng.uniform(-30, 40))


def _turn(ang, rng, t, start: float, duration: float) -> None:
    """Turn on the spot by 60-180 degrees with turning steps."""
    u = np.clip((t - start) / duration, 0.0, 1.0)
    angle = rng.choice([-1.0, 1.0]) * rng.uniform(60, 180) * _DEG
    ang['yaw'] = ang['yaw'] + angle * u * u * (3 - 2 * u)
    active = ((u > 0) & (u < 1)).astype(float)
    _add_gait(ang, 2 * np.pi * rng.uniform(0.9, 1.3) * t, 0.12 * active, arm_swing=0.3,
              direction=rng.uniform(-np.pi, np.pi))


def _jump(ang, rng, t, start: float) -> np.ndarray:
    """A vertical jump: crouch, take-off at ``start``, ballistic flight, landing crouch; returns
    the pelvis lift [T] (mm, > 0 in flight)."""
    v = rng.uniform(1000, 2200)  # take-off speed, mm/s: 5 to 25 cm high
    flight = 2 * v / GRAVITY_MM_S2
    lift = 0.5 * GRAVITY_MM_S2 * (t - start) * (start + flight - t)
    lift = np.where((t > start) & (t < start + flight), lift, 0.0)
    crouch = (np.exp(-((t - start + 0.18) / 0.16) ** 2) + np.exp(-((t - start - flight - 0.15) / 0.16) ** 2))
    tuck, depth = np.sin(np.pi * np.clip((t - start) / flight, 0, 1)), rng.uniform(0.6, 1.0)
    arms = rng.uniform(40, 110)
    for side in 'lr':
        _add(ang, f'hip_flex_{side}', crouch * depth, 55)
        _add(ang, f'knee_{side}', crouch * depth + 0.3 * tuck, 80)
        _add(ang, f'sh_flex_{side}', tuck - 0.5 * crouch, arms)
    _add(ang, 'spine_flex', crouch * depth, 25)
    return lift


def _smooth_knots(t: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """[T] through (``times``, ``values``) knots, a smoothstep between each pair (C1, zero
    velocity at every knot); the first / last value before / after them."""
    seg = np.clip(np.searchsorted(times, t, side='right') - 1, 0, len(times) - 2)
    u = np.clip((t - times[seg]) / np.maximum(times[seg + 1] - times[seg], 1e-9), 0.0, 1.0)
    u = u * u * (3 - 2 * u)
    return values[seg] * (1 - u) + values[seg + 1] * u


def _floor_level(rng, start: float) -> tuple[np.ndarray, np.ndarray]:
    """Knots (times s, levels) of one trip to the floor and back: 0 standing, 1 half-kneeling,
    2 sitting on the floor, 3 lying on the back. Getting up passes the same postures in reverse."""
    depth = int(rng.choice([1, 2, 3], p=[0.2, 0.3, 0.5]))
    times, levels = [start], [0.0]

    def move(level: int, hold: float) -> None:  # a transition of 0.8-1.8 s, then a hold
        arrive = times[-1] + rng.uniform(0.8, 1.8)
        times.extend([arrive, arrive + hold])
        levels.extend([float(level)] * 2)

    for level in range(1, depth + 1):  # down, resting longest at the lowest posture
        move(level, rng.uniform(2.0, 6.0) if level == depth else rng.uniform(0.0, 1.0))
    for level in range(depth - 1, -1, -1):  # and up again
        move(level, rng.uniform(0.0, 0.8))
    return np.asarray(times), np.asarray(levels)


_FLOOR_KEYS = ('pitch', 'spine_flex', 'neck_flex', 'hip_flex_l', 'hip_flex_r', 'knee_l', 'knee_r',
               'hip_abd_l', 'hip_abd_r')


def _floor_states(rng) -> np.ndarray:
    """Target angles (degrees) [3, len(_FLOOR_KEYS)] of the half-kneel, floor sitting and lying
    postures of one episode (the leading leg of the half-kneel is random)."""
    lead, rear = ('l', 'r') if rng.random() < 0.5 else ('r', 'l')
    kneel = {'pitch': rng.uniform(-5, 5), 'spine_flex': rng.uniform(5, 25),
             'neck_flex': rng.uniform(0, 25), f'hip_flex_{lead}': rng.uniform(75, 95),
             f'knee_{lead}': rng.uniform(80, 100), f'hip_flex_{rear}': rng.uniform(-5, 15),
             f'knee_{rear}': rng.uniform(95, 115), f'hip_abd_{lead}': rng.uniform(0, 10),
             f'hip_abd_{rear}': rng.uniform(0, 10)}
    sit = {'pitch': rng.uniform(-25, -10), 'spine_flex': rng.uniform(10, 35),
           'neck_flex': rng.uniform(0, 25)}
    lie = {'pitch': rng.uniform(-92, -86), 'spine_flex': rng.uniform(-5, 10),
           'neck_flex': rng.uniform(5, 35)}
    for side in 'lr':  # thigh raised by a, knee flexed by about 2a: the heel just off the floor
        a = rng.uniform(0, 45)
        sit |= {f'hip_flex_{side}': 90 + a + sit['pitch'], f'knee_{side}': max(2 * a - rng.uniform(0, 6), 0),
                f'hip_abd_{side}': rng.uniform(5, 25)}
        a = rng.uniform(0, 25)
        lie |= {f'hip_flex_{side}': 90 + a + lie['pitch'], f'knee_{side}': max(2 * a - rng.uniform(0, 6), 0),
                f'hip_abd_{side}': rng.uniform(0, 15)}
    return np.array([[state[k] for k in _FLOOR_KEYS] for state in (kneel, sit, lie)])


def _floor(ang, rng, t, start: float) -> None:
    """Get down to the floor (half-kneel, sit, lie on the back) and back up: the floor postures
    replace the legs, trunk and pelvis tilt of the motion underneath; the facing is held while
    down. ``locomotion.place_on_floor`` rests the lowest body part on the floor."""
    level = _smooth_knots(t, *_floor_level(rng, start))
    states = _floor_states(rng)
    w = np.clip(level, 0.0, 1.0)
    for i, name in enumerate(_FLOOR_KEYS):
        target = np.interp(np.maximum(level, 1.0), [1.0, 2.0, 3.0], states[:, i]) * _DEG
        ang[name] = (1 - w) * ang[name] + w * target
    down = np.flatnonzero(level >= 1.0)
    if len(down):  # no turning on the floor: the facing when the knee touched down is kept
        ang['yaw'] = (1 - w) * ang['yaw'] + w * ang['yaw'][down[0]]
    lying = np.clip(level - 2.0, 0.0, 1.0)  # arms rest beside the body, then move a little
    for side in 'lr':
        for name, lo, hi in (('sh_abd', 10, 70), ('sh_flex', -10, 30), ('elbow', 0, 50)):
            value = (rng.uniform(lo, hi) + 10 * _wobble(rng, t, 0.2)) * _DEG
            ang[f'{name}_{side}'] = (1 - lying) * ang[f'{name}_{side}'] + lying * value


_POSTURES = {'reach': _reach, 'bend': _bend, 'crouch': _crouch, 'leg_lift': _leg_lift, 'look': _look}


def add_episodes(ang, rng: np.random.Generator, t: np.ndarray, family: str) -> np.ndarray:
    """Add this family's random episodes to ``ang`` (rad, in place); return the pelvis lift [T]
    (mm) of jumps (0 when on the ground)."""
    lift = np.zeros_like(t)
    duration = t[-1] + 1.0 / 50
    for kind, rate in EPISODE_RATES[family].items():
        for _ in range(rng.poisson(rate * duration / 60.0)):
            start = rng.uniform(-0.5, duration)
            if kind == 'jump':
                lift = np.maximum(lift, _jump(ang, rng, t, start))
            elif kind == 'floor':
                _floor(ang, rng, t, rng.uniform(-10.0, duration))
            elif kind == 'turn':
                _turn(ang, rng, t, start, rng.uniform(0.8, 2.0))
            else:
                w = _bump(t, start, rng.uniform(0.2, 0.8), rng.uniform(0.2, 2.5))
                _POSTURES[kind](ang, rng, t, w)
    return lift
