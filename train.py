"""Train a (hypergraph) DSTformer on H36M-format data; see docs/train.md.

    python train.py --config configs/pose3d/quickstart.yaml --checkpoint checkpoint/quickstart
    python train.py --config configs/pose3d/train_h36m.yaml --checkpoint checkpoint/pose3d/h36m \\
        --hyper_cfg hyper_config/method2/manual_joint_label1.yaml --hyper_relation_bias uniform --version 2

A run resumes automatically from ``<checkpoint>/latest_epoch.bin``; ``-r FILE`` resumes from
another file. ``--evaluate FILE`` only evaluates (same as evaluate.py).
Multi-GPU / multi-node: ``torchrun --nproc_per_node N train.py ...``.
"""
from lib.config.cli import add_training_args, base_parser, resolve_config
from lib.engine.run import run_evaluation, run_training
from lib.errors import entry_point


@entry_point
def main(argv=None):
    args = add_training_args(base_parser(__doc__)).parse_args(argv)
    cfg = resolve_config(args)
    if args.evaluate:
        return run_evaluation(cfg, args.evaluate)
    return run_training(cfg, args, script="train.py", argv=argv)


if __name__ == "__main__":
    main()
