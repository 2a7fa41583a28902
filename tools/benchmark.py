"""Benchmark a Pose3D model: parameters, FLOPs, train-step / forward throughput, peak memory.

Every timing is read against this machine's measured fp32 matrix-multiply peak (a large square
matmul timed here), and the comparisons are ratios measured within one run (interleaved
repetitions, medians), so they survive a noisy or shared machine better than absolute numbers.

    python tools/benchmark.py --config configs/pose3d/MB_ft_h36m_global_lite.yaml \\
        --hyper_cfg hyper_config/method2/manual_joint_label1.yaml --clip_len 81 --batch 2
    python tools/benchmark.py --dim_feat 256 --mlp_ratio 4 --clip_len 81 --batch 2 --mode all

Without ``--config`` the model is the default config (MotionBERT full) with the ``--dim_feat``,
``--mlp_ratio``, ``--depth`` overrides. ``--mode all`` also reports the fused/explicit attention
ratio and the version 2 / version 1 cost ratio. Import :func:`measure_train_step`,
:func:`measure_forward`, :func:`count_flops` or :func:`matmul_peak_flops` from other tools.
"""
from __future__ import annotations

import argparse
import copy
import os
import resource
import statistics
import sys
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lib.model.factory import build_model, count_parameters  # noqa: E402
from lib.utils.config import HYPER_DEFAULTS, TRAIN_DEFAULTS, load_config, read_yaml  # noqa: E402
from easydict import EasyDict  # noqa: E402

MATMUL_N = 2048                                                      # peak reference: 2048^3 matmul
DEFAULT_LABEL = [[0, 1, 1, 1, 2, 2, 2, 0, 0, 3, 3, 4, 4, 4, 5, 5, 5]]   # manual_joint_label1


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of one ``fn()`` call (device synchronised)."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def matmul_fn(n: int = MATMUL_N, device: str | torch.device = "cpu") -> tuple[Callable[[], None], int]:
    """A square fp32 ``n^3`` matmul and its FLOP count (the hardware reference)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return (lambda: a @ b), 2 * n ** 3


def matmul_peak_flops(n: int = MATMUL_N, repeats: int = 5, device: str | torch.device = "cpu") -> float:
    """This machine's fp32 matmul FLOP/s: the best of ``repeats`` timings of an ``n^3`` matmul."""
    fn, flops = matmul_fn(n, device)
    fn()
    return flops / min(time_call(fn, torch.device(device)) for _ in range(repeats))


def train_step_fn(model: torch.nn.Module, batch: torch.Tensor, explicit: bool = False,
                  optimizer: torch.optim.Optimizer | None = None) -> Callable[[], None]:
    """One training step: forward (fused, or explicit attention), MSE-style loss, backward, AdamW."""
    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=1e-6)

    def step() -> None:
        out = model.forward_with_extras(batch, return_attention=True)["output"] if explicit else model(batch)
        out.square().mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def forward_fn(model: torch.nn.Module, batch: torch.Tensor, explicit: bool = False) -> Callable[[], None]:
    """One inference forward pass under ``torch.no_grad`` (eval mode)."""
    def forward() -> None:
        with torch.no_grad():
            model.forward_with_extras(batch, return_attention=True) if explicit else model(batch)
    return forward


def count_flops(model: torch.nn.Module, batch: torch.Tensor, train: bool = True) -> int:
    """FLOPs (matmul = 2 MAC) of one forward (+ backward if ``train``), from FlopCounterMode.

    Counted on the explicit attention path: FlopCounterMode has no formula for the CPU fused
    attention kernel and would silently drop the attention matmuls (~6% of a 243-frame clip).
    """
    with FlopCounterMode(display=False) as counter:
        out = model.forward_with_extras(batch, return_attention=True)["output"]
        if train:
            out.square().mean().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: CUDA max allocated, or the process's max resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_times(fns: dict[str, Callable[[], None]], iters: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each function, timed round-robin (one warm-up call each)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            times[name].append(time_call(fn, device))
    return {name: statistics.median(ts) for name, ts in times.items()}


def measure_train_step(model: torch.nn.Module, batch: torch.Tensor, iters: int = 3) -> dict:
    """Train-step seconds, clips/s and achieved FLOP/s of ``model`` on ``batch`` (fused attention)."""
    model.train()
    seconds = median_times({"train": train_step_fn(model, batch)}, iters, batch.device)["train"]
    flops = count_flops(model, batch, train=True)
    return {"seconds": seconds, "clips_per_s": batch.shape[0] / seconds, "flops": flops,
            "flops_per_s": flops / seconds, "peak_memory_mb": peak_memory_mb(batch.device)}


def measure_forward(model: torch.nn.Module, batch: torch.Tensor, iters: int = 3) -> dict:
    """Inference-forward seconds, clips/s and achieved FLOP/s (eval mode, no grad)."""
    model.eval()
    seconds = median_times({"forward": forward_fn(model, batch)}, iters, batch.device)["forward"]
    flops = count_flops(model, batch, train=False)
    return {"seconds": seconds, "clips_per_s": batch.shape[0] / seconds, "flops": flops,
            "flops_per_s": flops / seconds, "peak_memory_mb": peak_memory_mb(batch.device)}


def compare(models: dict[str, torch.nn.Module], batch: torch.Tensor, iters: int, train: bool) -> dict[str, float]:
    """Median seconds of fused/explicit x version variants, interleaved so the ratios share conditions."""
    make = train_step_fn if train else forward_fn
    fns = {"matmul": matmul_fn(device=batch.device)[0]}
    for name, model in models.items():
        model.train(train)
        fns[f"{name} fused"] = make(model, batch)
        fns[f"{name} explicit"] = make(model, batch, explicit=True)
    return median_times(fns, iters, batch.device)


def model_configs(args) -> dict[str, EasyDict]:
    """The benchmarked config per version ('v1', 'v2'), from --config/--hyper_cfg or the CLI sizes."""
    if args.config:
        cfg = load_config(args.config, args.hyper_cfg)
    else:
        cfg = EasyDict({**TRAIN_DEFAULTS, **HYPER_DEFAULTS, "joint_label": DEFAULT_LABEL})
        if args.hyper_cfg:
            cfg.update(read_yaml(args.hyper_cfg))
    for key in ("dim_feat", "dim_rep", "mlp_ratio", "depth"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    cfg.joint_label = cfg.joint_label or DEFAULT_LABEL
    versions = [1, 2] if args.mode == "all" else [args.version or cfg.version]
    return {f"v{v}": EasyDict({**copy.deepcopy(cfg), "version": v}) for v in versions}


def report(args) -> None:
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfgs = model_configs(args)
    models = {name: build_model(cfg, verbose=False).to(device) for name, cfg in cfgs.items()}
    cfg = next(iter(cfgs.values()))
    batch = torch.randn(args.batch, args.clip_len, cfg.num_joints, 2 if cfg.no_conf else 3, device=device)
    print(f"device {device}, {torch.get_num_threads()} threads, fp32 2048^3 matmul peak (best of 5) "
          f"{matmul_peak_flops(device=device) / 1e9:.1f} GFLOP/s")
    print(f"clip_len {args.clip_len}, batch {args.batch}, dim_feat {cfg.dim_feat}, mlp_ratio {cfg.mlp_ratio}, "
          f"depth {cfg.depth}, heads {cfg.num_heads}")
    for name, model in models.items():
        print(f"{name}: {count_parameters(model):,} parameters, forward "
              f"{count_flops(model, batch[:1], train=False) / 1e9:.2f} GFLOPs per clip")
    modes = ["train", "forward"] if args.mode == "all" else [args.mode]
    for mode in modes:
        train = mode == "train"
        secs = compare(models, batch, args.iters, train)
        peak = 2 * MATMUL_N ** 3 / secs.pop("matmul")
        flops = {name: count_flops(m, batch, train=train) for name, m in models.items()}
        print(f"-- {mode} ({'forward+backward+AdamW' if train else 'no_grad forward'}), median of {args.iters}; "
              f"matmul peak timed in the same round-robin: {peak / 1e9:.1f} GFLOP/s")
        for key, s in secs.items():
            achieved = flops[key.split()[0]] / s
            print(f"{key:12s} {s * 1e3:8.1f} ms  {args.batch / s:7.2f} clips/s  "
                  f"{achieved / 1e9:6.1f} GFLOP/s = {achieved / peak:5.1%} of peak")
        for name in models:
            print(f"{name} fused / explicit time: {secs[f'{name} fused'] / secs[f'{name} explicit']:.3f}")
        if len(models) == 2:
            print(f"v2 / v1 time (fused): {secs['v2 fused'] / secs['v1 fused']:.3f}")
    print(f"peak memory: {peak_memory_mb(device):.0f} MB ({'max allocated' if device.type == 'cuda' else 'process max RSS'})")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", help="training config YAML (model keys are used)")
    p.add_argument("--hyper_cfg", help="hyperedge partition YAML for version 2")
    p.add_argument("--version", type=int, choices=[1, 2], help="model version (ignored with --mode all)")
    p.add_argument("--dim_feat", type=int)
    p.add_argument("--dim_rep", type=int)
    p.add_argument("--mlp_ratio", type=float)
    p.add_argument("--depth", type=int)
    p.add_argument("--clip_len", type=int, default=81)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--mode", choices=["train", "forward", "all"], default="all",
                   help="all = train and forward, both versions, fused and explicit")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args(argv)


if __name__ == "__main__":
    report(parse_args())
