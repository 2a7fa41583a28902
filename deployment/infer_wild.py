"""Lift the 2D keypoints of one person in a video to 3D, on the CPU (see docs/inference.md).

    # COCO-17 keypoints (MMPose / ViTPose / YOLO-pose export) with an exported model
    python deployment/infer_wild.py --input video_coco.json --width 1920 --height 1080 \\
        --model checkpoint/pose3d/h36m_global/pose3d.onnx --out out/video_3d.npy --render out/video_3d.mp4

    # AlphaPose (Halpe-26) with track ids, a checkpoint and its config
    python deployment/infer_wild.py --input alphapose-results.json --focus 1 --width 1280 --height 720 \\
        --model checkpoint/pose3d/h36m_global/best_epoch.bin --config configs/pose3d/train_h36m_global.yaml \\
        --version 2 --hyper_cfg hyper_config/method2/manual_joint_label1.yaml --out out/video_3d.npy

Writes ``[T, 17, 3]`` H36M-17 joints, one pose per video frame (normalised units, or pixels
with ``--pixel``), and optionally renders the 3D skeleton beside the 2D input.
"""
import os

import numpy as np

from lib.config.cli import base_parser, resolve_config
from lib.data.keypoint_files import load_track
from lib.data.keypoints import FORMATS, guess_format, to_h36m
from lib.data.normalize import normalize_2d
from lib.errors import InputFileError, entry_point
from lib.inference.lift import OnnxRunner, TorchRunner, lift, to_pixels
from lib.io import check_output_path, save_npy
from lib.model.factory import load_model


class InputError(InputFileError):
    """Bad command-line input (size, format, model); printed as one line."""


def parse_args(argv=None):
    parser = base_parser(__doc__, config_required=False)   # an .onnx needs no config
    parser.add_argument("-i", "--input", required=True, help="2D keypoints: .json, .npy or .npz (pixels)")
    parser.add_argument("--format", choices=("auto",) + FORMATS, default="auto",
                        help="keypoint format; auto: 26 joints = halpe, 17 = coco (name h36m explicitly)")
    parser.add_argument("--focus", default=None, help="track id of the person to lift (AlphaPose 'idx')")
    parser.add_argument("--width", type=float, default=None, help="image width in pixels")
    parser.add_argument("--height", type=float, default=None, help="image height in pixels")
    parser.add_argument("--num_frames", type=int, default=None,
                        help="video length, when the person is missing from its last frames")
    parser.add_argument("-m", "--model", required=True, help="exported .onnx, or a checkpoint (needs --config)")
    parser.add_argument("-o", "--out", default=None, help="output .npy (default: <input>_pose3d.npy)")
    parser.add_argument("--pixel", action="store_true", help="write pixels instead of normalised units")
    parser.add_argument("--render", default=None, help="also render a video: .mp4 (ffmpeg) or .gif")
    parser.add_argument("--fps", type=float, default=25, help="frame rate of the rendered video")
    parser.add_argument("--overlap", type=int, default=None, help="frames shared by windows (default maxlen // 3)")
    parser.add_argument("--no_flip", action="store_true", help="skip flip test-time augmentation")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = all cores)")
    return parser.parse_args(argv)


def image_size(args, stored) -> tuple[float, float]:
    """``(width, height)`` from the command line, else from the file; an error if neither has it."""
    if args.width is not None and args.height is not None:
        if not (args.width > 0 and args.height > 0):
            raise InputError(f"--width {args.width:g} --height {args.height:g}: the image size must be positive pixels")
        return args.width, args.height
    if stored:
        return stored
    raise InputError("image size unknown: pass --width and --height (pixels of the video the keypoints "
                     "come from); the input file has no 'width'/'height'")


def read_pose2d(args) -> tuple[np.ndarray, tuple]:
    """H36M-17 normalised 2D ``[T, 17, 3]`` and the image size ``(width, height)``."""
    track = load_track(args.input, args.focus, args.num_frames)
    try:
        fmt = guess_format(track.keypoints.shape[1]) if args.format == "auto" else args.format
    except InputFileError as err:
        raise InputError(f"{args.input}: {err}") from None
    width, height = image_size(args, track.size)
    if np.abs(track.keypoints[..., :2]).max() <= 2 < width:
        raise InputError(f"{args.input}: keypoints look normalised already (all |x|, |y| <= 2); expected pixels")
    pose = to_h36m(track.keypoints, fmt)
    print(f"{args.input}: {len(pose)} frames of {fmt} keypoints, image {width:g} x {height:g}, "
          f"{int(track.filled.sum())} frames without a detection filled")
    return normalize_2d(pose, width, height), (width, height)


def make_runner(args):
    """``(runner, maxlen, rootrel)`` of an .onnx (metadata or --config) or a checkpoint (--config)."""
    if args.model.endswith(".onnx"):
        runner = OnnxRunner(args.model, args.threads)
        if args.config:
            cfg = resolve_config(args)
            return runner, cfg.maxlen, bool(cfg.rootrel)
        if "maxlen" not in runner.metadata:
            raise InputError(f"{args.model} has no Pose3D metadata (maxlen, rootrel): pass the model's --config")
        return runner, int(runner.metadata["maxlen"]), runner.metadata["rootrel"] == "True"
    if not args.config:
        raise InputError("a checkpoint needs the model's --config (and --version/--hyper_cfg as in training)")
    cfg = resolve_config(args)
    model = load_model(cfg, args.model)
    return TorchRunner(model, 2 if cfg.no_conf else 3), cfg.maxlen, bool(cfg.rootrel)


def run(args) -> str:
    out = args.out or os.path.splitext(args.input)[0] + "_pose3d.npy"
    check_output_path(out)                          # before the work, not after it
    pose2d, (width, height) = read_pose2d(args)
    runner, maxlen, rootrel = make_runner(args)
    overlap = maxlen // 3 if args.overlap is None else args.overlap
    pose3d = lift(pose2d, runner, maxlen, rootrel, overlap, flip_tta=not args.no_flip)
    save_npy(out, to_pixels(pose3d, width, height, rootrel) if args.pixel else pose3d)
    units = "pixels" if args.pixel else "normalised units"
    print(f"wrote {out}: {pose3d.shape} ({'root-relative' if rootrel else 'global'}, {units})")
    if args.render:
        from lib.inference.render import render
        print(f"rendered {render(pose3d, pose2d, args.render, height / width, args.fps)}")
    return out


@entry_point
def main(argv=None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    main()
