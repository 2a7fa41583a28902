"""Realism report of the synthetic H36M generator; needs no real data.

    python tools/synthetic_report.py                      # all subjects and actions, 300-frame videos
    python tools/synthetic_report.py --frames_per_video 600 --json /tmp/realism.json

Generates the data in memory (camera 1 of every subject, action and subaction, with the world-space
debug arrays) and prints one table: hard checks (bone-length constancy, floor penetration,
joint-limit violations; all should be 0), foot skating (horizontal ankle speed while the foot is
in contact), per-joint speed/acceleration percentiles, pose-space coverage (k-means on
root-relative, heading-aligned, scale-normalised poses) and detector figures. The definitions and
units are in ``lib/data/synthetic/realism.py``.
"""
import numpy as np

from lib.config.cli import ArgumentParser
from lib.data.skeleton import JOINT_NAMES
from lib.data.synthetic import make_synthetic_h36m
from lib.data.synthetic import realism
from lib.errors import entry_point
from lib.io import write_json


def build_report(seed: int = 0, frames_per_video: int = 300, k: int = 32, **select) -> dict:
    """All realism figures of one generated data set (camera 1 unless ``cameras`` is given)."""
    select.setdefault('cameras', [1])
    data = make_synthetic_h36m(seed, frames_per_video=frames_per_video, debug=True, **select)
    worlds, detections = [], {'joint_2d': [], 'gt': [], 'conf': []}
    for split in data.values():
        for start, stop in realism.video_runs(split['source']):
            worlds.append(split['joint3d_world'][start:stop].astype(np.float64))
        detections['joint_2d'].append(split['joint_2d'])
        detections['gt'].append(split['joint3d_image'][..., :2])
        detections['conf'].append(split['confidence'])
    det = {key: np.concatenate(v) for key, v in detections.items()}
    kin = realism.kinematics(worlds)
    return {
        'checks': realism.aggregate([realism.video_checks(x) for x in worlds]),
        'coverage': realism.coverage(worlds, k=k, seed=seed),
        'detector': realism.detector_figures(det['joint_2d'], det['gt'], det['conf']),
        'speed_m_s': {name: kin['speed'][j].tolist() for j, name in enumerate(JOINT_NAMES)},
        'accel_m_s2': {name: kin['accel'][j].tolist() for j, name in enumerate(JOINT_NAMES)},
    }


def format_report(report: dict) -> str:
    """The report as aligned text tables."""
    lines = []
    for section in ('checks', 'coverage', 'detector'):
        lines.append(f"[{section}]")
        lines += [f"  {key:<32s} {value:>12.4g}" for key, value in report[section].items()]
    lines.append("[per-joint speed m/s (p50 p95 p99) | acceleration m/s^2 (p50 p95 p99)]")
    for name in JOINT_NAMES:
        s, a = report['speed_m_s'][name], report['accel_m_s2'][name]
        lines.append(f"  {name:<15s} {s[0]:6.2f} {s[1]:6.2f} {s[2]:6.2f} | {a[0]:7.2f} {a[1]:7.2f} {a[2]:7.2f}")
    return "\n".join(lines)


@entry_point
def main(argv=None):
    p = ArgumentParser(__doc__)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames_per_video", type=int, default=300)
    p.add_argument("--clusters", type=int, default=32, help="k of the k-means coverage figure")
    p.add_argument("--json", default=None, help="also write the report as JSON to this path")
    args = p.parse_args(argv)
    report = build_report(args.seed, args.frames_per_video, args.clusters)
    print(format_report(report))
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
