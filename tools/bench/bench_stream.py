"""Streaming lifting (lib/inference/stream.py): per-frame latency and accuracy against offline lifting.

    # latency of one StreamLifter.push (PyTorch and ONNX Runtime), per config; untrained weights
    # unless --checkpoint (the latency does not depend on the weights)
    python tools/bench/bench_stream.py latency --configs configs/pose3d/quickstart.yaml configs/pose3d/synthetic_wild.yaml

    # accuracy as a function of the delay (0, maxlen/4, maxlen/2) on the config's synthetic test split
    python tools/bench/bench_stream.py accuracy --config configs/pose3d/quickstart.yaml --checkpoint CKPT

``latency``: for each config, a StreamLifter (flip TTA on, delay maxlen // 4, one thread per the
runtime's default) is fed ``--frames`` frames of a synthetic person; each push is timed after
``--warmup`` pushes; p50 / p99 / mean in ms and the rate a live feed could run at (1 / mean). The
ONNX model is the deployment export (fused attention) of the same weights. The machine's fp32
matmul rate is printed first (compare runs by it).

``accuracy``: every video of the config's synthetic test split (subjects S9 / S11, H36M cameras,
the detector-like 2D noise of the generator), taken at the config's tds (``sample_stride``) and
lifted two ways with flip TTA: offline (``lib.inference.lift.lift`` of the whole video, overlap
maxlen // 3), and streamed frame by frame through a StreamLifter at each delay. P1 (mm, MPJPE of the
root-relative pose, per frame, all frames of every video; the pixel-scaled prediction times the
frame's 2.5d factor, as the evaluation decodes) against the ground truth, and the streamed pose
against the offline one. ``--checkpoint`` may repeat (e.g. an offline and a causal model).
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import torch

from lib.config.cli import ArgumentParser
from lib.config.schema import load_config
from lib.data.codec import PoseCodec
from lib.data.h36m import reader_from_config, video_bounds
from lib.data.normalize import normalize_2d
from lib.engine.metrics import mpjpe
from lib.engine.run import prepare_data
from lib.errors import entry_point
from lib.inference.export import export, sample_input
from lib.inference.lift import OnnxRunner, TorchRunner, lift
from lib.inference.stream import StreamLifter, percentiles
from lib.model.checkpoint import read_checkpoint
from lib.model.factory import build_model, count_parameters, load_model
from tools.bench.benchmark import matmul_peak_flops

WIDTH, HEIGHT = 1000.0, 1000.0


def synthetic_pixels(frames: int) -> np.ndarray:
    pose = sample_input(1, frames, seed=3)[0]
    return np.concatenate([(pose[..., :2] + [1, HEIGHT / WIDTH]) * WIDTH / 2, pose[..., 2:]], -1)


def time_pushes(runner, cfg, frames: int, warmup: int) -> dict:
    lifter = StreamLifter(runner, cfg.maxlen, bool(cfg.rootrel), WIDTH, HEIGHT)
    times = []
    for k, keypoints in enumerate(synthetic_pixels(frames + warmup)):
        start = time.perf_counter()
        lifter.push(keypoints)
        if k >= warmup:
            times.append(time.perf_counter() - start)
    return percentiles(times)


def latency(args) -> None:
    print(f"machine: fp32 matmul {matmul_peak_flops() / 1e9:.0f} GFLOP/s; torch threads {torch.get_num_threads()}")
    print("| config | parameters | window | backend | p50 (ms) | p99 (ms) | mean (ms) | frames/s |\n|---|---|---|---|---|---|---|---|")
    for path in args.configs:
        cfg = load_config(path)
        model = load_model(cfg, args.checkpoint) if args.checkpoint else build_model(cfg, verbose=False).eval()
        with tempfile.TemporaryDirectory() as folder:
            onnx_path = os.path.join(folder, "model.onnx")
            export(model, onnx_path, {})
            runners = {"PyTorch": TorchRunner(model, model.config.dim_in), "ONNX Runtime": OnnxRunner(onnx_path)}
            for name, runner in runners.items():
                stats = time_pushes(runner, cfg, args.frames, args.warmup)
                print(f"| {os.path.basename(path)} | {count_parameters(model) / 1e6:.2f} M | {cfg.maxlen} | {name} | "
                      f"{stats['p50']:.2f} | {stats['p99']:.2f} | {stats['mean']:.2f} | {1000 / stats['mean']:.0f} |",
                      flush=True)


def test_videos(cfg):
    """(pixels [T, 17, 3], width, height, factor [T], gt_mm [T, 17, 3]) per test video at the config's tds."""
    prepare_data(cfg)
    reader = reader_from_config(cfg)
    meta = reader.test_meta()
    pixels = np.concatenate([reader.strided("test", "joint_2d")[..., :2], reader.read_2d("test")[..., 2:]], -1)
    width, height = reader.resolution("test")
    return [(pixels[a:b], float(width[a]), float(height[a]), meta.factor[a:b], meta.gt_mm[a:b])
            for a, b in video_bounds(meta.sources)]


def to_mm(pred: np.ndarray, width: float, height: float, factor: np.ndarray) -> np.ndarray:
    mm = PoseCodec.decode_mm(pred, width, height, factor)
    return mm - mm[:, :1]


def accuracy(args) -> None:
    cfg = load_config(args.config)
    videos = test_videos(cfg)[:: args.every][: args.max_videos or None]
    frames = sum(len(v[0]) for v in videos)
    delays = [0, cfg.maxlen // 4, cfg.maxlen // 2]
    print(f"{args.config}: {len(videos)} test videos (every {args.every}-th), {frames} frames at tds {cfg.sample_stride}, window {cfg.maxlen}; "
          "P1 in mm, all frames, flip TTA")
    print("| checkpoint | lifting | delay (frames) | P1 vs ground truth | P1 vs offline |\n|---|---|---|---|---|")
    for checkpoint in args.checkpoint:
        saved = read_checkpoint(checkpoint)               # a causal model's config says so (causal: true)
        ckpt_cfg = load_config(args.config, None, None, {"causal": saved.causal})
        runner = TorchRunner(load_model(ckpt_cfg, checkpoint, checkpoint=saved), PoseCodec.from_config(ckpt_cfg).input_channels)
        rootrel = bool(ckpt_cfg.rootrel)
        offline, gt, streamed = [], [], {d: [] for d in delays}
        for pixels, width, height, factor, gt_mm in videos:
            pred = lift(normalize_2d(pixels, width, height), runner, cfg.maxlen, rootrel, cfg.maxlen // 3)
            offline.append(to_mm(pred, width, height, factor))
            gt.append(gt_mm - gt_mm[:, :1])
            for d in delays:
                lifter = StreamLifter(runner, cfg.maxlen, rootrel, width, height, d)
                poses = [p for p in (lifter.push(k) for k in pixels) if p is not None] + lifter.flush()
                streamed[d].append(to_mm(np.stack(poses), width, height, factor))
        offline, gt = np.concatenate(offline), np.concatenate(gt)
        name = f"{checkpoint}{' (causal)' if saved.causal else ''}"
        print(f"| {name} | offline (whole video) | - | {mpjpe(offline, gt).mean():.1f} | 0 |")
        for d in delays:
            s = np.concatenate(streamed[d])
            print(f"| {name} | stream | {d} | {mpjpe(s, gt).mean():.1f} | {mpjpe(s, offline).mean():.1f} |", flush=True)


@entry_point
def main(argv=None) -> None:
    p = ArgumentParser(__doc__)
    p.add_argument("mode", choices=("latency", "accuracy"))
    p.add_argument("--configs", nargs="+", default=["configs/pose3d/quickstart.yaml", "configs/pose3d/synthetic_wild.yaml"])
    p.add_argument("--config", default="configs/pose3d/quickstart.yaml", help="accuracy: the test split's config")
    p.add_argument("--checkpoint", action="append", default=[], help="accuracy (repeatable); latency: optional weights")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--every", type=int, default=1, help="accuracy: every N-th test video (both subjects, all cameras)")
    p.add_argument("--max_videos", type=int, default=0, help="accuracy: the first N test videos (0 = all)")
    args = p.parse_args(argv)
    if args.mode == "latency":
        args.checkpoint = args.checkpoint[0] if args.checkpoint else None
        latency(args)
    else:
        if not args.checkpoint:
            p.error("accuracy needs --checkpoint")
        accuracy(args)


if __name__ == "__main__":
    main()
