"""Slice the H36M source pickle into MotionBERT-style clip files (EHGFormer's "Mixste_Style").

    python tools/convert_h36m_mixste_style.py                       # the defaults below
    python tools/convert_h36m_mixste_style.py --dt_root data/motion3d/synthetic --out_dir ...
    python tools/convert_h36m_mixste_style.py --out_dir <folder> --pack    # pickles -> fast store

Writes ``<out_dir>/{train,test}/%08d.pkl`` with ``data_input`` / ``data_label`` float32
``[frames, 17, 3]`` (``--store pkl``, MotionBERT's layout), the fast memory-mapped store
``<out_dir>/clips_{train,test}.npy`` + ``.json`` header (``--store npy``), or both (default).
Train clips start every ``--stride`` (strided) frames; test clips do not overlap. ``--tds``
subsamples every per-frame array first. Re-running is a no-op. ``--pack`` builds the fast store
from the per-clip pickles already in ``--out_dir`` (e.g. a folder made by MotionBERT).
"""
import os
import time

from lib.config.cli import ArgumentParser, positive_int
from lib.data.clip_store import pack_pickle_clips
from lib.data.prepare import convert_source_to_clips
from lib.errors import entry_point
from lib.io import protected_inputs


def parse_args(argv=None):
    p = ArgumentParser(__doc__)
    p.add_argument("--dt_root", default="data/motion3d/H36M-SH", help="folder of the source pickle")
    p.add_argument("--dt_file", default="h36m_sh_conf_cam_source_final.pkl", help="source pickle name")
    p.add_argument("--out_dir", default="data/motion3d/H36M-SH/Mixste_Style_v2", help="clip folder")
    p.add_argument("-f", "--frames", type=positive_int, default=243, help="clip length (strided frames)")
    p.add_argument("-s", "--stride", type=positive_int, default=81, help="train clip stride; test clips do not overlap")
    p.add_argument("--tds", type=positive_int, default=2, help="temporal downsampling of every per-frame array")
    p.add_argument("--store", choices=("pkl", "npy", "both"), default="both",
                   help="per-clip pickles (MotionBERT), the fast memory-mapped store, or both")
    p.add_argument("--pack", action="store_true",
                   help="only build the fast store from the per-clip pickles in --out_dir (no source needed)")
    p.add_argument("--force", action="store_true", help="rewrite even if the clips are up to date")
    return p.parse_args(argv)


@entry_point
def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    if args.pack:
        counts = pack_pickle_clips(args.out_dir)
        print(f"{args.out_dir}: packed {counts['train']} train and {counts['test']} test clips "
              f"into the fast store in {time.time() - t0:.1f} s")
        return
    with protected_inputs({"the source pickle": os.path.join(args.dt_root, args.dt_file)}):
        counts = convert_source_to_clips(args.dt_root, args.dt_file, args.out_dir, args.frames,
                                         args.stride, args.tds, force=args.force, stores=args.store)
    print(f"{args.out_dir}: {counts['train']} train clips, {counts['test']} test clips "
          f"({args.frames} frames, stride {args.stride}, tds {args.tds}, store {args.store}) in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
