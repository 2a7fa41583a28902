"""Lift the person in a video file to 3D: decode, detect 2D keypoints (BlazePose), lift, write (docs/inference.md).

    python deployment/infer_video.py --video clip.mp4 \\
        --model checkpoint/synthetic_wild/pose3d.onnx --out out/

Needs the optional video packages: pip install -e ".[video]". Writes into --out:
<name>_keypoints.json (COCO-17 2D keypoints per frame, MMPose's layout), <name>_pose3d.npy
([T, 17, 3], one pose per video frame), <name>_render.mp4 (the video with its 2D keypoints beside
the 3D skeleton) and <name>.bvh (the animation). --stream lifts frame by frame as from a live
camera (lib/inference/stream.py: frames pushed as fast as they decode, one pose returned --delay
frames later) and prints the frame rate and the per-frame latency p50/p99; it writes the same files.
"""
import os

import numpy as np

from lib.config.cli import base_parser, resolve_config
from lib.data.keypoints import to_h36m
from lib.data.normalize import normalize_2d
from lib.errors import InputFileError, entry_point
from lib.inference.detector import BlazePose, require_video_extra
from lib.inference.lift import lift
from lib.inference.stream import RateConverter, StreamLifter, percentiles, run_live
from lib.inference.session import (add_model_args, add_output_args, check_outputs, make_runner, model_inputs,
                                   write_results)
from lib.inference.video import (detect, frames, model_fps, open_video, resample, to_coco, track,
                                 write_keypoints_json)
from lib.io import check_input_file, check_output_path, protected_inputs

DETECTOR_NAME = "BlazePose full (MediaPipe 0.10.21 model files)"


def parse_args(argv=None):
    parser = base_parser(__doc__, config_required=False)   # an .onnx needs no config
    parser.add_argument("--video", required=True, help="video file (anything FFmpeg decodes)")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument("--model_fps", type=float, default=None,
                        help="frame rate of the model's clips (default: 50 / the config's sample_stride; "
                             "25 for an .onnx without --config)")
    parser.add_argument("--detector_dir", default=None,
                        help="folder with pose_detection.tflite and pose_landmark_full.tflite "
                             "(default: an installed mediapipe 0.10.x, else a cache filled on first use)")
    parser.add_argument("--no_render", action="store_true", help="skip the rendering")
    parser.add_argument("--no_bvh", action="store_true", help="skip the BVH")
    parser.add_argument("--stream", action="store_true",
                        help="lift frame by frame as from a live camera; print frame rate and latency")
    parser.add_argument("--delay", type=int, default=None,
                        help="--stream: frames of look-ahead (default maxlen // 4)")
    add_model_args(parser)
    add_output_args(parser)
    return parser.parse_args(argv)


def output_paths(args) -> dict:
    stem = os.path.splitext(os.path.basename(args.video))[0]
    paths = {"keypoints": os.path.join(args.out, f"{stem}_keypoints.json"),
             "pose3d": os.path.join(args.out, f"{stem}_pose3d.npy")}
    if args.render is None and not args.no_render:
        args.render = os.path.join(args.out, f"{stem}_render.mp4")
    if args.bvh is None and not args.no_bvh:
        args.bvh = os.path.join(args.out, f"{stem}.bvh")
    return paths


def lifting_fps(args) -> float:
    if args.model_fps is not None:
        if not args.model_fps > 0:
            raise InputFileError(f"--model_fps must be positive, got {args.model_fps:g}")
        return args.model_fps
    return model_fps(resolve_config(args).sample_stride if args.config else None)


def run(args) -> dict:
    check_input_file(args.video, "video (--video)")
    paths = output_paths(args)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputFileError(f"--out {args.out} is a file; give a folder")
    check_outputs(args, paths["pose3d"])
    check_output_path(paths["keypoints"], "--out")
    require_video_extra()              # one line naming the extra, after the paths the user typed
    info = open_video(args.video)
    runner, maxlen, rootrel = make_runner(args)
    fps = lifting_fps(args)
    print(f"{args.video}: {info.width} x {info.height} at {info.fps:g} fps; detecting with {DETECTOR_NAME}", flush=True)
    detector = BlazePose(args.detector_dir, args.threads)
    if args.stream:
        landmarks, present, pose3d = lift_live(args, info, detector, runner, maxlen, rootrel, fps)
    else:
        landmarks, present, seconds = detect(frames(args.video), detector)
    write_keypoints_json(paths["keypoints"], landmarks, present, info, DETECTOR_NAME)
    print(f"wrote {paths['keypoints']}: {len(present)} frames, {int(present.sum())} with a person, "
          f"{int((~present).sum())} without (filled for lifting)"
          + ("" if args.stream else f"; {1000 * seconds:.0f} ms per frame"))
    pose2d = normalize_2d(to_h36m(track(landmarks, present), "coco"), info.width, info.height)
    if not args.stream:
        model_input = resample(pose2d, info.fps, fps)
        if len(model_input) != len(pose2d):
            print(f"resampled {len(pose2d)} frames at {info.fps:g} fps to {len(model_input)} at the model's {fps:g} fps")
        overlap = maxlen // 3 if args.overlap is None else args.overlap
        pose3d = lift(model_input, runner, maxlen, rootrel, overlap, flip_tta=not args.no_flip)
    pose3d = resample(pose3d, fps, info.fps, length=len(pose2d))
    background = frames(args.video) if args.render else None
    write_results(args, paths["pose3d"], pose3d, pose2d, (info.width, info.height), rootrel, info.fps,
                  background=background)
    return {**paths, "render": args.render, "bvh": args.bvh}


def lift_live(args, info, detector, runner, maxlen: int, rootrel: bool, fps: float):
    """``--stream``: the video's frames one at a time, as fast as they decode (not paced to the video's
    frame rate), through the detector and a :class:`StreamLifter`; prints the frame rate and latencies.
    Returns the landmarks, the detections and the 3D poses at the model's frame rate."""
    lifter = StreamLifter(runner, maxlen, rootrel, info.width, info.height, args.delay, flip_tta=not args.no_flip)
    print(f"streaming: window {maxlen} frames, delay {lifter.delay} frames ({1000 * lifter.delay / fps:.0f} ms "
          f"at the model's {fps:g} fps), frames pushed as fast as they decode", flush=True)
    live = run_live(frames(args.video), detector, lifter, RateConverter(info.fps, fps), to_coco)
    detect_ms, lift_ms, frame_ms = (percentiles(s) for s in (live.detect_s, live.lift_s, live.frame_s))
    rate = len(live.present) / live.wall_s
    print(f"streamed {len(live.present)} frames in {live.wall_s:.2f} s: {rate:.1f} fps "
          f"({'faster' if rate >= info.fps else 'slower'} than the video's {info.fps:g} fps)")
    print(f"latency per video frame (detector + lifter): p50 {frame_ms['p50']:.1f} ms, p99 {frame_ms['p99']:.1f} ms; "
          f"detector p50 {detect_ms['p50']:.1f} ms, p99 {detect_ms['p99']:.1f} ms; "
          f"lifter per model frame p50 {lift_ms['p50']:.2f} ms, p99 {lift_ms['p99']:.2f} ms ({lift_ms['count']} calls)")
    return live.landmarks, live.present, live.pose3d


@entry_point
def main(argv=None) -> int:
    args = parse_args(argv)
    with protected_inputs({"the video (--video)": args.video, **model_inputs(args)}):
        run(args)
    return 0


if __name__ == "__main__":
    main()
