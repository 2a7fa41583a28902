"""ONNX Runtime vs PyTorch eager inference on the CPU, read against the FLOP bound.

    python tools/bench/bench_onnx.py                      # small and full configs, T = 243, batch 1 and 8
    python tools/bench/bench_onnx.py --iters 3 --batches 1 8 --frames 243

For every config: export the model as deployment does (``lib.inference.export.export``), count its
FLOPs per clip (``FlopCounterMode`` on the explicit attention path, tools/bench/benchmark.py), then per
batch size time PyTorch eager (``inference_mode``), onnxruntime (``lib.inference.lift.OnnxRunner``:
all graph optimisations, all cores; ``--portable`` adds the standard-ops graph) and the fastest of
three 2048^3 fp32 matmuls round-robin, so all share the machine's conditions; medians of
``--iters`` rounds after one warm-up of each runner (at batch 1). The FLOP
bound of a batch is ``batch * FLOPs per clip / matmul peak``. Prints a Markdown table
(docs/benchmarks.md, "Deployment").
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmark import count_flops, matmul_fn, time_call
from lib.model.factory import build_model, count_parameters
from lib.config.schema import load_config
from lib.inference.export import export, sample_input
from lib.inference.lift import OnnxRunner

CONFIGS = {"small": "configs/pose3d/train_h36m_small.yaml", "full": "configs/pose3d/train_h36m.yaml",
           "wild": "configs/pose3d/synthetic_wild.yaml"}
CPU = torch.device("cpu")


def runners(model: torch.nn.Module, folder: str, portable: bool) -> dict:
    """``name -> fn(x)`` for PyTorch eager and onnxruntime on the deployed graph (fused attention)
    and, with ``portable``, on the standard-ops graph (numpy in, numpy out)."""
    @torch.inference_mode()
    def eager(x):
        return model(torch.from_numpy(x)).numpy()
    run = {"eager": eager}
    for name, fused in [("onnxruntime", True)] + [("portable", False)] * portable:
        path = os.path.join(folder, f"{name}.onnx")
        export(model, path, {"maxlen": model.config.maxlen}, fused_attention=fused)
        run[name] = OnnxRunner(path)
    return run


def best_matmul_flops(matmul, flops: int, repeats: int = 3) -> float:
    """FLOP/s of the fastest of ``repeats`` matmuls (the reference peak of one round)."""
    return flops / min(time_call(matmul, CPU) for _ in range(repeats))


def time_batches(run: dict, batches: list[int], frames: int, iters: int) -> dict:
    """Median seconds per (batch, runner) and of the matmul, round-robin, one warm-up per runner."""
    matmul, matmul_flops = matmul_fn()
    warm = sample_input(1, frames)
    for fn in run.values():
        fn(warm)
    seconds = {}
    for batch in batches:
        x = sample_input(batch, frames)
        times = {name: [] for name in [*run, "peak"]}
        for _ in range(iters):
            for name, fn in run.items():
                times[name].append(time_call(lambda: fn(x), CPU))
            times["peak"].append(best_matmul_flops(matmul, matmul_flops))
        seconds[batch] = {name: statistics.median(t) for name, t in times.items()}
    return seconds


def bench_config(name: str, args) -> None:
    """Print the Markdown rows of one config."""
    cfg = load_config(CONFIGS[name], args.hyper_cfg, None, {"version": args.version})
    torch.manual_seed(0)
    model = build_model(cfg, verbose=False).eval()
    with torch.no_grad():
        flops = count_flops(model, torch.from_numpy(sample_input(1, args.frames)), train=False)
    with tempfile.TemporaryDirectory() as folder:
        seconds = time_batches(runners(model, folder, args.portable), args.batches, args.frames, args.iters)
    for batch, s in seconds.items():
        bound = batch * flops / s["peak"]
        portable = f" {s['portable']:.2f} |" if args.portable else ""
        print(f"| {name} ({count_parameters(model) / 1e6:.1f} M, {flops / 1e9:.1f} GFLOP/clip) | {batch} "
              f"| {s['peak'] / 1e9:.0f} | {s['eager']:.2f} | {s['onnxruntime']:.2f} |{portable} "
              f"{s['eager'] / s['onnxruntime']:.2f}x | {bound:.2f} | {s['onnxruntime'] / bound:.2f}x "
              f"| {s['eager'] / bound:.2f}x |", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["small", "full"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--frames", type=int, default=243)
    p.add_argument("--iters", type=int, default=2, help="timed rounds per batch (median)")
    p.add_argument("--version", type=int, choices=(1, 2), default=1)
    p.add_argument("--hyper_cfg", default=None, help="partition YAML (version 2)")
    p.add_argument("--portable", action="store_true", help="also time the standard-ops graph (--portable export)")
    args = p.parse_args(argv)
    os.chdir(ROOT)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, T = {args.frames}, "
          f"version {args.version}, median of {args.iters} rounds")
    portable = " ORT portable s |" * args.portable
    print(f"| config | batch | matmul peak GFLOP/s | eager s | onnxruntime s |{portable} eager / ORT | FLOP bound s "
          f"| ORT / bound | eager / bound |\n|---|---|---|---|---|{'---|' * args.portable}---|---|---|---|")
    for name in args.configs:
        bench_config(name, args)


if __name__ == "__main__":
    main()
