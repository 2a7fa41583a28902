"""Lift the 2D keypoints of one person in a video to 3D, on the CPU (see docs/inference.md).

    # COCO-17 keypoints (MMPose / ViTPose / YOLO-pose export) with an exported model
    python deployment/infer_wild.py --input video_coco.json --width 1920 --height 1080 \\
        --model checkpoint/pose3d/h36m_global/pose3d.onnx --out out/video_3d.npy --render out/video_3d.mp4

    # AlphaPose (Halpe-26) with track ids, a checkpoint and its config
    python deployment/infer_wild.py --input alphapose-results.json --focus 1 --width 1280 --height 720 \\
        --model checkpoint/pose3d/h36m_global/best_epoch.bin --config configs/pose3d/train_h36m_global.yaml \\
        --version 2 --hyper_cfg hyper_config/method2/manual_joint_label1.yaml --out out/video_3d.npy

Writes ``[T, 17, 3]`` H36M-17 joints, one pose per video frame (normalised units, or pixels
with ``--pixel``), and optionally renders the 3D skeleton beside the 2D input (``--render``) and
writes a BVH animation (``--bvh``).
"""
import os

import numpy as np

from lib.config.cli import base_parser
from lib.data.keypoint_files import check_image_size, load_track
from lib.data.keypoints import FORMATS, guess_format, to_h36m
from lib.data.normalize import normalize_2d
from lib.errors import InputFileError, entry_point
from lib.inference.lift import lift
from lib.inference.session import (add_model_args, add_output_args, check_outputs, make_runner, model_inputs,
                                   write_results)
from lib.io import protected_inputs


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
    parser.add_argument("-o", "--out", default=None, help="output .npy (default: <input>_pose3d.npy)")
    parser.add_argument("--fps", type=float, default=25, help="frame rate of the keypoints (rendering, BVH frame time)")
    add_model_args(parser)
    add_output_args(parser)
    return parser.parse_args(argv)


def image_size(args, stored) -> tuple[float, float]:
    """``(width, height)`` from the command line, else from the file; an error if neither has it."""
    if args.width is not None and args.height is not None:
        return check_image_size(args.width, args.height, "--width/--height", InputError)
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


def run(args) -> str:
    out = args.out or os.path.splitext(args.input)[0] + "_pose3d.npy"
    check_outputs(args, out)                        # before the work, not after it
    pose2d, size = read_pose2d(args)
    runner, maxlen, rootrel = make_runner(args)
    overlap = maxlen // 3 if args.overlap is None else args.overlap
    pose3d = lift(pose2d, runner, maxlen, rootrel, overlap, flip_tta=not args.no_flip)
    write_results(args, out, pose3d, pose2d, size, rootrel, args.fps)
    return out


@entry_point
def main(argv=None) -> int:
    args = parse_args(argv)
    with protected_inputs({"the keypoint file (--input)": args.input, **model_inputs(args)}):
        run(args)
    return 0


if __name__ == "__main__":
    main()
