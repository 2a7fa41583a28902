"""Detector-like 2D noise and confidences (statistics of a real Stacked-Hourglass detector on H36M).

Units of the statistics: x / (width / 2), measured on MotionBERT's Stacked-Hourglass detections
of H36M (the ``joint_2d`` of its source pickle against the ground truth).
"""
from __future__ import annotations

import numpy as np

from lib.data.skeleton import NUM_JOINTS
from lib.data.synthetic.common import _keys

# Detector error statistics, per H36M joint, in units of x / (width / 2).
_DET_MEAN = np.array([
    [0.000813253, 0.000212396], [-0.000148208, 0.0019976], [0.00203882, -0.00151008],
    [0.000943847, 0.00090837], [0.00186711, -0.000703703], [0.00193284, -0.00520417],
    [0.000894206, -0.00187177], [0.00246769, 0.00233392], [0.00214122, -0.00650841],
    [0.00165592, 0.00165511], [0.000836944, 0.00159294], [0.000793935, -0.00462191],
    [0.00149935, 0.000296017], [0.00115918, 0.00162996], [0.00210382, -0.00316605],
    [0.00168226, -0.000330003], [0.00166388, 0.00131752],
])
_DET_STD = np.array([
    [0.00366263, 0.00357261], [0.00713493, 0.00510919], [0.00608442, 0.00500343],
    [0.00895302, 0.00529317], [0.00671658, 0.00532773], [0.00701292, 0.00492123],
    [0.0095058, 0.00562537], [0.00658832, 0.00496767], [0.00549142, 0.00530533],
    [0.00533883, 0.00487664], [0.00341638, 0.00349224], [0.00800662, 0.0060872],
    [0.00516767, 0.00475362], [0.0049904, 0.00508904], [0.00782345, 0.00793427],
    [0.00600909, 0.00572129], [0.0053703, 0.00568407],
])
_DET_WEIGHT = np.array([
    0.998745, 0.966954, 0.889607, 0.893835, 0.97462, 0.876673,
    0.821006, 0.957807, 0.918315, 0.96794, 0.98412, 0.890993,
    0.801556, 0.70277, 0.880896, 0.824629, 0.728748,
])
_DET_OUTLIER = 0.03        # half-width of the uniform outlier error
_DET_KEY_SPACING = 9       # frames between error key frames (243 / 27)
_DET_JITTER = 0.002        # i.i.d. per-frame jitter std
_CONF_A, _CONF_B, _CONF_M, _CONF_S = 0.028, 1.1, -0.004585696384310722, 0.14310568571090698
_CONF_DIS_MAX = np.sqrt(_CONF_A / _CONF_B) - _CONF_A  # minimum of a/(d+a) + b*d


def detector_noise(rng: np.random.Generator, n_frames: int, width: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Detector-like 2D error [n, 17, 2] (pixels) and confidence [n, 17, 1] in [0, 1].

    Key frames every ``_DET_KEY_SPACING`` frames draw per joint either the joint's Gaussian error
    (probability ``weight``) or a uniform outlier; keys are smoothstep-interpolated and i.i.d.
    jitter is added (all in x / (width / 2) units, converted to pixels at the end).
    """
    keys = int(np.ceil(max(n_frames - 1, 1) / _DET_KEY_SPACING)) + 1
    gauss = _DET_MEAN + _DET_STD * rng.standard_normal((keys, NUM_JOINTS, 2))
    outlier = rng.uniform(-_DET_OUTLIER, _DET_OUTLIER, (keys, NUM_JOINTS, 2))
    inlier = rng.random((keys, NUM_JOINTS, 1)) < _DET_WEIGHT[:, None]
    error = _keys(np.where(inlier, gauss, outlier), n_frames)
    error += _DET_JITTER * rng.standard_normal(error.shape)
    dis = np.minimum(np.linalg.norm(error, axis=-1, keepdims=True), _CONF_DIS_MAX)
    conf = _CONF_A / (dis + _CONF_A) + _CONF_B * dis + rng.normal(_CONF_M, _CONF_S, dis.shape)
    return error * (width / 2.0), np.clip(conf, 0.0, 1.0)


# Detector failures the published statistics leave out (assumed rates, per video second): a limb's
# left and right joints swapped for a few frames (legs seen from the side), and joints lost for a
# while (occluded: the detector guesses far off with a low confidence).
SWAP_RATE_HZ, SWAP_FRAMES = 0.06, (3, 20)
MISS_RATE_HZ, MISS_FRAMES, MISS_CONF = 0.15, (2, 30), 0.12
_SWAP_PAIRS = (((2, 3), (5, 6)), ((15, 16), (12, 13)), ((3,), (6,)), ((16,), (13,)))
_MISS_WEIGHT = np.array([0.2, 0.5, 1, 2, 0.5, 1, 2, 0.2, 0.2, 0.5, 0.5, 1, 1.5, 3, 1, 1.5, 3])


def _events(rng: np.random.Generator, n_frames: int, rate_hz: float, frames: tuple) -> list:
    """(start, stop) frame ranges of Poisson events at ``rate_hz`` (50 Hz video)."""
    out = []
    for _ in range(rng.poisson(rate_hz * n_frames / 50.0)):
        start = int(rng.integers(n_frames))
        out.append((start, min(n_frames, start + int(rng.integers(*frames)))))
    return out


def detector_failures(rng: np.random.Generator, detected: np.ndarray, conf: np.ndarray,
                      width: float) -> tuple[np.ndarray, np.ndarray]:
    """Add left/right swaps and lost joints to detections [T, 17, 2] (pixels) and confidences
    [T, 17, 1]; returns new arrays."""
    det, conf = detected.copy(), conf.copy()
    for start, stop in _events(rng, len(det), SWAP_RATE_HZ, SWAP_FRAMES):
        right, left = (list(p) for p in _SWAP_PAIRS[rng.integers(len(_SWAP_PAIRS))])
        det[start:stop, right + left] = det[start:stop, left + right]
        conf[start:stop, right + left] *= rng.uniform(0.5, 0.9)
    for start, stop in _events(rng, len(det), MISS_RATE_HZ, MISS_FRAMES):
        joint = rng.choice(NUM_JOINTS, p=_MISS_WEIGHT / _MISS_WEIGHT.sum())
        det[start:stop, joint] += rng.uniform(-0.08, 0.08, 2) * width / 2
        conf[start:stop, joint] = rng.uniform(0.0, MISS_CONF, (stop - start, 1))
    return det, conf
