"""Distil a small (hypergraph) DSTformer student from a trained teacher; see docs/distillation.md.

    python train_distill.py --config configs/pose3d/train_h36m_small_distill.yaml \\
        --checkpoint checkpoint/pose3d/h36m_small_distill \\
        --hyper_cfg hyper_config/method2/manual_joint_label1.yaml --hyper_relation_bias uniform \\
        --distill_cfg distill_config/distillation_config.yaml --version 2

The teacher comes from ``teacher_ckpt`` in the distill file (built from the config saved in its
checkpoint). ``--set distill.KEY=VALUE`` overrides a key of the distill file, ``--set KEY=VALUE``
one of the student config. Resuming, evaluation and multi-GPU work as in train.py.
"""
from lib.config.cli import add_training_args, base_parser, resolve_config
from lib.engine.distill import DistillTrainer
from lib.engine.run import run_evaluation, run_training
from lib.errors import entry_point


@entry_point
def main(argv=None):
    parser = add_training_args(base_parser(__doc__))
    parser.add_argument("--distill_cfg", required=True,
                        help="distillation YAML (distill_config/distillation_config.yaml)")
    args = parser.parse_args(argv)
    cfg = resolve_config(args, distill_cfg=args.distill_cfg)
    if args.evaluate:
        return run_evaluation(cfg, args.evaluate)
    return run_training(cfg, args, trainer_cls=DistillTrainer, script="train_distill.py", argv=argv)


if __name__ == "__main__":
    main()
