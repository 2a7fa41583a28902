"""Write a deterministic, H36M-shaped synthetic source pickle (MotionBERT's schema).

    python tools/make_synthetic_h36m.py --out data/motion3d/synthetic/h36m_sh_conf_cam_source_final.pkl
    python tools/make_synthetic_h36m.py --out /tmp/tiny.pkl --size tiny --seed 1

Same seed and options give the same bytes. Sizes (frames per video): tiny 128 (for tests),
small ~300, default ~600 (about 365k train / 144k test frames). See lib/data/synthetic/ for the
schema, the 2.5D convention and the detector-noise model.
"""
from lib.config.cli import ArgumentParser
from lib.data.synthetic import SIZES, write_synthetic_h36m
from lib.errors import entry_point

DEFAULT_OUT = "data/motion3d/synthetic/h36m_sh_conf_cam_source_final.pkl"


def parse_args(argv=None):
    p = ArgumentParser(__doc__)
    p.add_argument("--out", default=DEFAULT_OUT, help="output pickle path (written atomically)")
    p.add_argument("--seed", type=int, default=0, help="random seed (>= 0)")
    p.add_argument("--size", choices=sorted(SIZES), default="default", help="frames per video")
    p.add_argument("--frames_per_video", type=int, default=None, help="override the size's length")
    p.add_argument("--geometric", type=float, default=0.0,
                   help="share of training sequences replaced by geometric ones (config: synthetic_geometric)")
    p.add_argument("--world", action="store_true",
                   help="add train/joint3d_world, what random_cameras: true trains on")
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    if not 0.0 <= args.geometric <= 1.0:
        p.error(f"--geometric must be in [0, 1], got {args.geometric}")
    if args.frames_per_video is not None and args.frames_per_video < 2:
        p.error(f"--frames_per_video must be at least 2, got {args.frames_per_video}")
    return args


@entry_point
def main(argv=None):
    args = parse_args(argv)
    summary = write_synthetic_h36m(args.out, seed=args.seed, size=args.size,
                                   frames_per_video=args.frames_per_video, geometric=args.geometric,
                                   world=args.world)
    frames = ", ".join(f"{split} {n:,} frames" for split, n in summary["frames"].items())
    print(f"wrote {summary['path']}: {frames}; {summary['bytes'] / 2 ** 20:.1f} MiB; "
          f"generated in {summary['generate_s']:.2f} s, written in {summary['write_s']:.2f} s")


if __name__ == "__main__":
    main()
