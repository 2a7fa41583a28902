"""Check a BVH written by ``--bvh`` with real readers against the lifted joints it was solved from.

    python deployment/infer_wild.py --input walk.npy --format h36m --width 1000 --height 1000 \\
        --model checkpoint/quickstart/best_epoch.bin --config configs/pose3d/quickstart.yaml \\
        --out out/walk_3d.npy --bvh out/walk.bvh
    python tools/check_bvh.py --bvh out/walk.bvh --pose3d out/walk_3d.npy --static

Readers: Blender's own BVH importer, run headless (``blender -b --python-expr``; Debian package
``blender``), and ``bvhio`` (PyPI) when installed; both give every joint's world position per
frame. Printed for each: the distance of those positions from the lifted joints (scaled and turned
into BVH axes as the export does), next to the lifted sequence's own bone-length variation
(``|length - median length|``), in centimetres. ``--static`` for a root-relative model's file.
"""
from __future__ import annotations

import argparse
import shutil

import numpy as np

from lib.data.skeleton import JOINT_NAMES
from lib.errors import InputFileError, entry_point
from lib.inference.bvh import UP_AXES, blender_joint_positions, fit_report
from lib.io import load_npy


def bvhio_joint_positions(path: str) -> np.ndarray:
    """``[T, 17, 3]`` world positions of the H36M joints as the ``bvhio`` package computes them."""
    import bvhio
    root = bvhio.readAsHierarchy(path)
    joints = {joint.Name: joint for joint, _, _ in root.layout()}
    frames = []
    for frame in range(len(root.Keyframes)):
        root.loadPose(frame)
        frames.append([list(joints[name].PositionWorld) for name in JOINT_NAMES])
    return np.array(frames)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bvh", required=True, help="the BVH file")
    parser.add_argument("--pose3d", required=True, help="the lifted joints it was written from (.npy [T, 17, 3])")
    parser.add_argument("--static", action="store_true", help="the model is root-relative (rootrel)")
    parser.add_argument("--bvh_up", choices=UP_AXES, default="y", help="the file's up axis")
    parser.add_argument("--bvh_height", type=float, default=170.0, help="the body height it was written with")
    parser.add_argument("--blender", default="blender", help="Blender executable")
    return parser.parse_args(argv)


@entry_point
def main(argv=None) -> int:
    args = parse_args(argv)
    pose3d = load_npy(args.pose3d, "lifted joints")
    readers = {}
    if shutil.which(args.blender):
        readers["Blender"] = blender_joint_positions(args.bvh, args.bvh_up, args.blender)[0]
    else:
        print(f"{args.blender} not found: skipping Blender (apt-get install blender)")
    try:
        readers["bvhio"] = bvhio_joint_positions(args.bvh)
    except ImportError:
        print("bvhio not installed: skipping it (pip install bvhio)")
    if not readers:
        raise InputFileError("no BVH reader available: install Blender or bvhio")
    for name, positions in readers.items():
        if positions.shape != pose3d.shape:
            raise InputFileError(f"{name} read {positions.shape[0]} frames from {args.bvh}, the lift has {len(pose3d)}")
        report = fit_report(pose3d, positions, args.static, args.bvh_up, args.bvh_height)
        print(f"{name}: {report['frames']} frames; joint position vs lifted joints: mean "
              f"{report['joint_error_mean_cm']:.2f} cm, p95 {report['joint_error_p95_cm']:.2f}, max "
              f"{report['joint_error_max_cm']:.2f}; the lift's own bone-length variation: mean "
              f"{report['bone_variation_mean_cm']:.2f} cm, p95 {report['bone_variation_p95_cm']:.2f}, max "
              f"{report['bone_variation_max_cm']:.2f}, summed from the root to each joint: mean "
              f"{report['chain_variation_mean_cm']:.2f} cm; joints no further than that: "
              f"{100 * report['within_chain_variation']:.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
