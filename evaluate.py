"""Evaluate a checkpoint on the H36M(-format) test split; see docs/train.md.

    python evaluate.py --config configs/pose3d/train_h36m.yaml --checkpoint checkpoint/pose3d/h36m \\
        --hyper_cfg hyper_config/method2/manual_joint_label1.yaml --hyper_relation_bias uniform \\
        --version 2 --evaluate checkpoint/pose3d/h36m/best_epoch.bin

Prints the per-action P1/P2 table of the MotionBERT protocol and of the full-coverage
evaluation, and saves it as JSON next to the checkpoint (``<name>_eval.json``).
"""
from lib.config.cli import add_training_args, base_parser, config_inputs, resolve_config
from lib.engine.run import run_evaluation
from lib.errors import entry_point
from lib.io import protected_inputs


@entry_point
def main(argv=None):
    parser = add_training_args(base_parser(__doc__))
    args = parser.parse_args(argv)
    if not args.evaluate:
        parser.error("--evaluate CHECKPOINT_FILE is required")
    with protected_inputs(config_inputs(args)):
        return run_evaluation(resolve_config(args), args.evaluate)


if __name__ == "__main__":
    main()
