"""Training precision: ``fp32``, ``bf16`` autocast, or ``auto`` (decided per run by measuring).

Only the training step's forward and backward run under bf16 autocast; the weights, the AdamW
state, the loss (``compute_losses`` is fed ``pred.float()``), the metrics and every evaluation
stay fp32. The config key ``precision`` (lib/config/schema.py) asks for one of the three;
``bf16: true`` (the ``--bf16`` flag) means ``bf16``.

``auto`` times the run's own step (model, batch shape, threads) in both precisions before the
first update: per precision, one warm-up call then :data:`AUTO_ROUNDS` forward + backward calls
(the optimizer step is fp32 either way, so it does not change the comparison). The precisions are
timed one after the other, not interleaved: a run uses one precision, and an fp32 call right
after a bf16 one pays for fresh memory (the allocator returned the bf16 call's smaller blocks to
the system and maps new pages for fp32's larger ones), which made interleaved fp32 timings up to
1.5x too slow at the synthetic_wild size. bf16 is chosen only when its fastest call is at least
:data:`AUTO_MARGIN` faster than fp32's fastest (the minimum: other processes on a shared machine
only ever add time; a ratio within :data:`AUTO_CLOSE` of that bar is measured a second time and
the fastest calls of both measurements decide), so a machine or a shape where bf16 does not pay
does not get slower. The measurement leaves no trace on the run: gradients are cleared and the
RNG state is restored. Decisions are cached per shape within the process,
and a resumed ``auto`` run keeps the decision saved in its folder (``precision.json``,
:func:`resumed_precision`): a resume computes what the uninterrupted run would have, whatever a
new measurement would say.
On CUDA, ``auto`` is bf16 where the device supports it (no timing). Under DDP the ranks average
their timings, so all of them choose the same precision.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from lib.engine import distributed as dist
from lib.io import load_json

AUTO_ROUNDS = 3          # timed calls per precision (after one warm-up each)
AUTO_MARGIN = 0.10       # bf16 must be at least this much faster than fp32 to be chosen
AUTO_CLOSE = 0.05        # a bf16/fp32 ratio this close to the bar is measured once more

_CACHE: dict[tuple, "PrecisionChoice"] = {}


@dataclass
class PrecisionChoice:
    """The precision a run's steps use, what was asked for, and why (timings in seconds)."""
    precision: str                      # 'fp32' or 'bf16'
    requested: str                      # 'fp32', 'bf16' or 'auto'
    reason: str
    seconds: dict = field(default_factory=dict)

    def autocast(self, device_type: str):
        """The context a training step's forward (and so its backward) runs in."""
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return f"precision {self.precision} (requested {self.requested}): {self.reason}"


def requested_precision(cfg) -> str:
    """``precision`` of the config; ``bf16: true`` (the ``--bf16`` flag) means bf16."""
    return "bf16" if cfg.bf16 else cfg.precision


def measure_call(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one ``fn()`` call (CUDA synchronised)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def time_precisions(step: Callable[[bool], None], device: torch.device, rounds: int = AUTO_ROUNDS) -> dict:
    """Fastest seconds of ``step(bf16)`` for bf16 True, then False: per precision one warm-up,
    then ``rounds`` calls (blocked, see the module docstring); the torch RNG state is restored afterwards."""
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    try:
        times = {"bf16": [], "fp32": []}
        for name, calls in times.items():
            step(name == "bf16")
            calls.extend(measure_call(lambda n=name: step(n == "bf16"), device) for _ in range(rounds))
    finally:
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    return {name: min(ts) for name, ts in times.items()}


def choose_precision(requested: str, device: torch.device, step: Callable[[bool], None] | None = None,
                     key: tuple = ()) -> PrecisionChoice:
    """The precision for ``requested``; ``auto`` on CPU times ``step(bf16: bool)`` (one forward +
    backward of the run's model on its batch, gradients cleared) unless ``key`` (the shape) is cached."""
    if requested != "auto":
        return PrecisionChoice(requested, requested, "configured")
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return PrecisionChoice("bf16" if ok else "fp32", "auto",
                               f"CUDA device {'supports' if ok else 'does not support'} bf16")
    if device.type != "cpu" or step is None:
        return PrecisionChoice("fp32", "auto", f"no bf16 measurement on {device.type}")
    cache_key = (device.type, torch.get_num_threads(), *key)
    if cache_key in _CACHE:
        cached = _CACHE[cache_key]
        return PrecisionChoice(cached.precision, "auto", cached.reason + " (cached for this shape)", cached.seconds)
    seconds = time_precisions(step, device)
    if abs(seconds["bf16"] / seconds["fp32"] - (1 - AUTO_MARGIN)) < AUTO_CLOSE:    # near the bar: measure again
        again = time_precisions(step, device)
        seconds = {name: min(seconds[name], again[name]) for name in seconds}
    mean = dist.all_reduce_mean(torch.tensor([seconds["fp32"], seconds["bf16"]], dtype=torch.float64))
    seconds = {"fp32": float(mean[0]), "bf16": float(mean[1])}
    faster = seconds["bf16"] < (1 - AUTO_MARGIN) * seconds["fp32"]
    reason = (f"measured forward+backward {seconds['fp32'] * 1e3:.1f} ms fp32 vs {seconds['bf16'] * 1e3:.1f} ms "
              f"bf16 (bf16/fp32 {seconds['bf16'] / seconds['fp32']:.2f}; bf16 needs < {1 - AUTO_MARGIN:.2f})")
    choice = PrecisionChoice("bf16" if faster else "fp32", "auto", reason, seconds)
    _CACHE[cache_key] = choice
    return choice


def resumed_precision(requested: str, saved_path: str) -> PrecisionChoice | None:
    """The precision a resumed run keeps: for ``auto``, the decision saved when the run started
    (``saved_path``, the run's ``precision.json``) if it also asked for ``auto``; None (decide at
    the first step) for a configured precision, a changed request or no saved decision."""
    if requested != "auto" or not os.path.isfile(saved_path):
        return None
    saved = load_json(saved_path)
    if saved.get("requested") != "auto" or saved.get("precision") not in ("fp32", "bf16"):
        return None
    return PrecisionChoice(saved["precision"], "auto", f"{saved.get('reason', '')} (decided when the run started; "
                           "kept on resume)", saved.get("seconds", {}))
