"""Attention heatmaps of a trained checkpoint (teacher or distilled student); see docs/vis_attn.md.

    python vis_attn.py --config configs/pose3d/train_h36m.yaml \\
        --hyper_cfg hyper_config/method2/manual_joint_label1.yaml --hyper_relation_bias uniform \\
        --version 2 --evaluate checkpoint/pose3d/h36m/best_epoch.bin

Writes spatial, temporal, hyperedge and relation-bias heatmaps averaged over test clips, plus
index.md / index.html, to vis_data/<run name>/ (the checkpoint's folder name) unless --out_dir.
"""
from lib.config.cli import base_parser, config_inputs, resolve_config
from lib.errors import entry_point
from lib.io import protected_inputs
from lib.vis.attention import run_vis_attn


def build_parser():
    p = base_parser(__doc__)
    p.add_argument("-e", "--evaluate", required=True, metavar="CHECKPOINT",
                   help="checkpoint file to visualise (e.g. checkpoint/pose3d/h36m/best_epoch.bin)")
    p.add_argument("--out_dir", default=None, help="output folder (default vis_data/<checkpoint folder name>)")
    p.add_argument("--clips", default="8",
                   help="test clips to average over: a count spread over the test set ('8'), 'all', "
                        "a list '0,5,9' (one clip: '5,') or a range '10:20' (default 8)")
    p.add_argument("--layers", type=int, nargs="+", default=None, help="layers to plot, 0-based (default all)")
    p.add_argument("--heads", type=int, nargs="+", default=None,
                   help="heads shown in the grids (default all; the mean panel always averages all heads)")
    p.add_argument("--joint", default="mean",
                   help="temporal maps: a joint name (e.g. right_wrist) or index 0-16, or 'mean' over joints")
    return p


@entry_point
def main(argv=None):
    args = build_parser().parse_args(argv)
    with protected_inputs({"the checkpoint (--evaluate)": args.evaluate, **config_inputs(args)}):
        return run_vis_attn(resolve_config(args), args.evaluate, args.out_dir, args.clips, args.layers,
                            args.heads, args.joint)


if __name__ == "__main__":
    main()
