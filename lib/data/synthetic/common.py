"""Shared pieces of the synthetic generator: frame rate, seeded RNGs and smooth time signals."""
from __future__ import annotations

import numpy as np

FPS = 50
_DEG = np.pi / 180.0
_RNG_TAG_BONES, _RNG_TAG_MOTION, _RNG_TAG_NOISE, _RNG_TAG_LENGTH, _RNG_TAG_GEOMETRIC = 11, 12, 13, 14, 15


def _rng(seed: int, *ids: int) -> np.random.Generator:
    """A Generator seeded from the global seed plus stable integer ids (never ``hash()``)."""
    return np.random.default_rng([int(seed), *map(int, ids)])


def _wobble(rng: np.random.Generator, t: np.ndarray, hz: float, n: int = 3) -> np.ndarray:
    """Smooth random signal in about [-1, 1]: n sinusoids around ``hz`` with random phases."""
    freq = hz * rng.uniform(0.6, 1.4, n)
    amp = rng.uniform(0.5, 1.0, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    return (amp * np.sin(2 * np.pi * freq * t[:, None] + phase)).sum(1) / amp.sum()


def _pulses(rng: np.random.Generator, t: np.ndarray, period: float, duty: float) -> np.ndarray:
    """Smooth on/off envelope in [0, 1]: 'on' a fraction ``duty`` of each (jittered) period."""
    warp = 0.15 * period * _wobble(rng, t, 0.5 / period)
    phase = 2 * np.pi * (t + warp) / period + rng.uniform(0, 2 * np.pi)
    return 0.5 * (1 + np.tanh(3.0 * (np.sin(phase) - np.cos(np.pi * duty))))


def _keys(values: np.ndarray, n: int, hold: float = 0.0) -> np.ndarray:
    """Interpolate ``values[K, ...]`` at K evenly spaced frames to ``n`` frames.

    Each interval holds the previous key for a fraction ``hold`` of its length, then moves to
    the next key with a smoothstep (C1-continuous, zero velocity at the keys).
    """
    values = np.asarray(values, dtype=np.float64)
    pos = np.arange(n) * (len(values) - 1) / max(n - 1, 1)
    seg = np.minimum(pos.astype(int), len(values) - 2)
    u = np.clip((pos - seg - hold) / (1.0 - hold), 0.0, 1.0)
    u = (u * u * (3 - 2 * u)).reshape((n,) + (1,) * (values.ndim - 1))
    return values[seg] * (1 - u) + values[seg + 1] * u


def _n_keys(duration_s: float, every_s: float) -> int:
    """Number of keys for one key every ``every_s`` seconds (at least 2)."""
    return max(2, int(round(duration_s / every_s)) + 1)
