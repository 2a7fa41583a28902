"""Small synthetic experiments behind the numbers in docs/train.md (benchmarks, not tests).

    python tools/bench/experiments.py selection   # optimism of selecting best_epoch.bin on the test set
    python tools/bench/experiments.py recipes     # MotionBERT vs EHGFormer recipe (v1 / v2) at quick-start size

Both train the quick-start configuration (configs/pose3d/quickstart.yaml, its synthetic data is
made on first use) with an evaluation after every epoch and print a table.

``selection``: one run with ``select_on: val``; the optimism of test-set selection is the test P1
of the epoch the test set would pick minus the test P1 of the epoch the validation split picks.
``recipes``: the same data and model size, version 1 with MotionBERT's loss (MPJPE + 0.5 N-MPJPE
+ 20 velocity) and version 2 (hypergraph, partition 1) with EHGFormer's (MPJPE + 0.5 TCL + 2
velocity), one seed each, selected on the validation split.
"""
from __future__ import annotations

import os
import tempfile

from lib.config.cli import ArgumentParser
from lib.config.schema import load_config, parse_override
from lib.engine.run import prepare_data
from lib.engine.trainer import Trainer
from lib.errors import entry_point

QUICKSTART = "configs/pose3d/quickstart.yaml"
HYPER = "hyper_config/method2/manual_joint_label1.yaml"
RECIPES = {
    "MotionBERT loss, version 1": ({"version": 1}, {"lambda_scale": 0.5, "lambda_3d_velocity": 20.0, "lambda_tcl": 0.0}),
    "EHGFormer loss, version 2": ({"version": 2}, {"lambda_scale": 0.0, "lambda_3d_velocity": 2.0, "lambda_tcl": 0.5}),
}


def train(overrides: dict, hyper: str | None, seed: int, epochs: int, extra: dict | None = None) -> list[dict]:
    """Per-epoch history of a quick-start run with ``overrides`` and the command line's ``--set``
    values ``extra`` (evaluated every epoch)."""
    cfg = load_config(QUICKSTART, hyper, None, {"eval_frequency": 1, "epochs": epochs, **overrides, **(extra or {})})
    prepare_data(cfg)
    with tempfile.TemporaryDirectory() as run:
        trainer = Trainer(cfg, os.path.join(run, "ckpt"), seed=seed)
        trainer.setup()
        trainer.fit()
        return trainer.history


def selection(args) -> None:
    history = train({"select_on": "val"}, None, args.seed, args.epochs, args.extra)
    print("| epoch | validation P1 (px) | test P1 (mm) | test P2 (mm) |\n|---|---|---|---|")
    for h in history:
        print(f"| {h['epoch'] + 1} | {h['val_p1']:.2f} | {h['p1']:.2f} | {h['p2']:.2f} |")
    by_val = min(history, key=lambda h: h["val_p1"])
    by_test = min(history, key=lambda h: h["p1"])
    print(f"best on validation: epoch {by_val['epoch'] + 1}, test P1 {by_val['p1']:.2f} mm; "
          f"best on test: epoch {by_test['epoch'] + 1}, test P1 {by_test['p1']:.2f} mm; "
          f"optimism of test-set selection: {by_val['p1'] - by_test['p1']:.2f} mm")


def recipes(args) -> None:
    print("| recipe | version | best epoch (validation) | test P1 (mm) | test P2 (mm) |\n|---|---|---|---|---|")
    for name, (model, loss) in RECIPES.items():
        history = train({**model, **loss}, HYPER if model["version"] == 2 else None, args.seed, args.epochs, args.extra)
        best = min(history, key=lambda h: h["val_p1"])
        print(f"| {name} | v{model['version']} | {best['epoch'] + 1} | {best['p1']:.2f} | {best['p2']:.2f} |", flush=True)


@entry_point
def main(argv=None) -> None:
    p = ArgumentParser(__doc__)
    p.add_argument("experiment", choices=("selection", "recipes"))
    p.add_argument("--epochs", type=int, default=None, help="default: the quick start's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config overrides of every run, e.g. --set learning_rate=3e-3")
    args = p.parse_args(argv)
    args.extra = dict(parse_override(text) for text in args.overrides)
    args.epochs = args.epochs or int(load_config(QUICKSTART).epochs)
    {"selection": selection, "recipes": recipes}[args.experiment](args)


if __name__ == "__main__":
    main()
