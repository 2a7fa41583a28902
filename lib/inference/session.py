"""What the lifting entry points share: the model flags and runner, and writing the results.

``deployment/infer_wild.py`` (a keypoint file) and ``deployment/infer_video.py`` (a video file) parse these flags with :func:`add_model_args` / :func:`add_output_args`, get a
model with :func:`make_runner`, lift with :func:`lib.inference.lift.lift` and write with
:func:`write_results`, so every output (``.npy``, rendering, BVH) is made one way.
"""
from __future__ import annotations

import argparse
import math
import os

import numpy as np

from lib.config.cli import config_inputs, resolve_config
from lib.data.codec import PoseCodec
from lib.errors import InputFileError
from lib.inference.bvh import UP_AXES
from lib.inference.lift import OnnxRunner, TorchRunner, to_pixels
from lib.io import check_output_path, save_npy
from lib.model.factory import load_model


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", required=True, help="exported .onnx, or a checkpoint (needs --config)")
    parser.add_argument("--overlap", type=int, default=None, help="frames shared by windows (default maxlen // 3)")
    parser.add_argument("--no_flip", action="store_true", help="skip flip test-time augmentation")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = all cores)")


def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pixel", action="store_true", help="write pixels instead of normalised units")
    parser.add_argument("--render", default=None, help="also render a video: .mp4 (ffmpeg) or .gif")
    parser.add_argument("--bvh", default=None, help="also write a BVH animation (docs/inference.md, 'BVH')")
    parser.add_argument("--bvh_up", choices=UP_AXES, default="y",
                        help="BVH up axis: y (BVH convention, Blender's importer default) or z")
    parser.add_argument("--bvh_height", type=float, default=170.0,
                        help="BVH units: centimetres of a body this tall (the lift has no metric scale)")


def make_runner(args):
    """``(runner, maxlen, rootrel)`` of an .onnx (metadata or --config) or a checkpoint (--config)."""
    if args.model.endswith(".onnx"):
        runner = OnnxRunner(args.model, args.threads)
        if args.config:
            cfg = resolve_config(args)
            return runner, cfg.maxlen, bool(cfg.rootrel)
        if "maxlen" not in runner.metadata:
            raise InputFileError(f"{args.model} has no Pose3D metadata (maxlen, rootrel): pass the model's --config")
        return runner, int(runner.metadata["maxlen"]), runner.metadata["rootrel"] == "True"
    if not args.config:
        raise InputFileError("a checkpoint needs the model's --config (and --version/--hyper_cfg as in training)")
    cfg = resolve_config(args)
    model = load_model(cfg, args.model)
    return TorchRunner(model, PoseCodec.from_config(cfg).input_channels), cfg.maxlen, bool(cfg.rootrel)


def model_inputs(args) -> dict:
    """The files a lifting command reads besides its input (for :func:`lib.io.protected_inputs`)."""
    return {"the model (--model)": args.model, **config_inputs(args)}


def check_outputs(args, out: str) -> None:
    """Refuse unusable output paths before any work is done: a folder, a file the command reads
    (:func:`lib.io.protected_inputs`), or two outputs on one file."""
    outputs = {"--out": out, "--render": args.render, "--bvh": args.bvh}
    seen = {}
    for flag, path in outputs.items():
        if not path:
            continue
        check_output_path(path, flag)
        real = os.path.realpath(path)
        if real in seen:
            raise InputFileError(f"{flag} {path} is also the {seen[real]} output: give each output its own file")
        seen[real] = flag
    if args.bvh is not None and not 0 < args.bvh_height < math.inf:
        raise InputFileError(f"--bvh_height must be positive centimetres, got {args.bvh_height:g}")
    fps = getattr(args, "fps", None)
    if fps is not None and not 0 < fps < math.inf:
        raise InputFileError(f"--fps must be a positive frame rate, got {fps:g}")


def write_results(args, out: str, pose3d: np.ndarray, pose2d: np.ndarray, size: tuple[float, float],
                  rootrel: bool, fps: float, background=None) -> None:
    """Write the ``.npy`` (normalised units, or pixels with ``--pixel``), then ``--render`` (over the
    video's frames ``background`` when given) and ``--bvh``."""
    width, height = size
    bad = ~np.isfinite(pose3d)
    if bad.any():
        raise InputFileError(f"{args.model}: the model's output holds NaN/inf in {100 * bad.mean():.0f} % of the values "
                             f"(its weights or the input are broken); nothing was written")
    save_npy(out, to_pixels(pose3d, width, height, rootrel) if args.pixel else pose3d)
    units = "pixels" if args.pixel else "normalised units"
    print(f"wrote {out}: {pose3d.shape} ({'root-relative' if rootrel else 'global'}, {units})")
    if args.bvh:
        from lib.inference.bvh import write_bvh
        motion = write_bvh(args.bvh, pose3d, fps, rootrel, args.bvh_up, args.bvh_height)
        print(f"wrote {args.bvh}: {len(motion.root)} frames at {fps:g} fps, {args.bvh_up.upper()}-up, "
              f"centimetres of a {args.bvh_height:g} cm body")
    if args.render:
        from lib.inference.render import render
        print(f"rendered {render(pose3d, pose2d, args.render, height / width, fps, background)}")
