"""Numbers that enter Pose3D from a file are finite and plausible, or refused where they enter.

One check (:func:`check_numbers`) used where outside numbers come in: the source pickle's arrays
(:func:`lib.data.h36m.check_split`), keypoint files (:mod:`lib.data.keypoint_files`) and
checkpoint tensors when a checkpoint is read (:func:`lib.model.checkpoint.read_checkpoint`).
A value that is NaN, infinite or beyond the plausible limit of its kind fails there with one
line naming the file, the array, how many values and the first one's position -- not later, in
the middle of an epoch or inside the Procrustes SVD of the evaluation.

Confidences (:func:`check_confidence`): a negative value is an error; a value above 1 is a
printed note (some detectors, e.g. OpenPose's body_25 or heatmap maxima, exceed 1) and is used
as it is.

Limits (a value beyond them is garbage, not a pose):

* pixels (2D keypoints, ``joint3d_image``): ``|v| <= 1e5`` -- no camera is 100,000 pixels wide;
* millimetres (``joints_2.5d_image``): ``|v| <= 1e6`` (a kilometre);
* network weights and buffers: ``|v| <= 1e6`` (a trained layer's weights are of order 1).
"""
from __future__ import annotations

import numpy as np

from lib.errors import DataError, Pose3DError

PIXEL_LIMIT = 1e5
MM_LIMIT = 1e6
WEIGHT_LIMIT = 1e6


def check_numbers(values, what: str, limit: float | None = None, error: type[Pose3DError] = DataError,
                  hint: str = "", allow_nan: bool = False) -> None:
    """Raise ``error`` if ``values`` (array-like, numpy or torch) hold NaN/inf (NaN allowed with
    ``allow_nan``: missing values) or a magnitude above ``limit``. No float copy of a large array:
    min and max first, the positions only when something is wrong."""
    array = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
    if array.size == 0 or array.dtype.kind not in "fiu":
        return
    lo, hi = (np.nanmin(array), np.nanmax(array)) if allow_nan else (array.min(), array.max())
    if np.isfinite(lo) and np.isfinite(hi) and (limit is None or max(-lo, hi) <= limit):
        return
    bad = ~np.isfinite(array) if not allow_nan else np.isinf(array)
    kind = "infinite" if allow_nan else "NaN/inf"
    if not bad.any():
        bad, kind = np.abs(np.nan_to_num(array)) > limit, f"implausible (|value| > {limit:g})"
    first = np.argwhere(bad)[0]
    where = "index " + ",".join(str(int(i)) for i in first) if array.ndim else "its value"
    sample = array[tuple(first)] if array.ndim else array
    suffix = f"; {hint}" if hint else ""
    raise error(f"{what} holds {int(bad.sum())} {kind} values (first {float(sample):g} at {where}){suffix}")


def check_confidence(conf, what: str, error: type[Pose3DError] = DataError, hint: str = "") -> str | None:
    """Negative confidences (NaN ignored: missing) are an error; returns a note when some exceed 1."""
    array = np.asarray(conf)
    if array.size == 0 or np.isnan(array).all():
        return None
    lo, hi = np.nanmin(array), np.nanmax(array)
    suffix = f"; {hint}" if hint else ""
    if lo < 0:
        raise error(f"{what} holds {int((array < 0).sum())} negative confidences (lowest {lo:g}); a detector's "
                    f"confidence is in [0, 1]{suffix}")
    if hi > 1:
        return (f"note: {what}: {int((array > 1).sum())} confidences above 1 (highest {hi:g}); used as they are "
                "(some detectors exceed 1)")
    return None
