"""Small synthetic experiments behind the numbers in docs/train.md (benchmarks, not tests).

    python tools/bench/experiments.py selection   # optimism of selecting best_epoch.bin on the test set
    python tools/bench/experiments.py recipes     # MotionBERT vs EHGFormer recipe (v1 / v2) at quick-start size
    python tools/bench/experiments.py cross_family  # train without one motion family, score it
    python tools/bench/experiments.py baseline [--config C]  # P1 of always predicting the mean pose
    python tools/bench/experiments.py postures --config C --checkpoint CKPT  # P1 by what the person does

The first three train the quick-start configuration (configs/pose3d/quickstart.yaml, its synthetic data is
made on first use) with an evaluation after every epoch and print a table.

``selection``: one run with ``select_on: val``; the optimism of test-set selection is the test P1
of the epoch the test set would pick minus the test P1 of the epoch the validation split picks.
``recipes``: the same data and model size, version 1 with MotionBERT's loss (MPJPE + 0.5 N-MPJPE
+ 20 velocity) and version 2 (hypergraph, partition 1) with EHGFormer's (MPJPE + 0.5 TCL + 2
velocity), one seed each, selected on the validation split.
``cross_family``: for each motion family of the generator (lib/data/synthetic/motions.py), a
source whose training split lacks that family's actions and whose test split holds only them;
the quick-start model trained on it is scored on the held-out family and set beside the same
model trained on every family (the quick start's own run, same seed and epochs), per family.
``baseline``: no training; a "model" that outputs the mean root-relative training pose for every
frame, scored by the config's own test protocol (flip TTA included), per action. A trained
model's P1 means something only next to this number on the same test split.
``postures``: no training; a checkpoint's per-frame P1 on the config's synthetic test split (the
protocol's frames), grouped by what the person does in that frame, read from the generator's
world-space poses (regenerated, and checked to be the file's): lying, airborne (jumping or
running flight), running (pelvis > 1.8 m/s), walking (0.5-1.8 m/s), crouching or sitting
(pelvis below 60 % of leg length), standing (the rest); beside the mean-pose baseline's P1.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import torch

from lib.config.cli import ArgumentParser
from lib.config.schema import load_config, parse_override
from lib.data.synthetic import make_synthetic_h36m, realism
from lib.data.synthetic.dataset import ACTIONS, TEST_SUBJECTS
from lib.data.synthetic.motions import FAMILIES
from lib.data.codec import PoseCodec
from lib.data.h36m import reader_from_config
from lib.engine.evaluator import Evaluator, describe, format_table
from lib.engine.run import prepare_data
from lib.engine.trainer import Trainer
from lib.errors import DataError, entry_point
from lib.model.factory import load_model
from lib.io import write_pickle
from lib.model.checkpoint import read_checkpoint

QUICKSTART = "configs/pose3d/quickstart.yaml"
HYPER = "hyper_config/method2/manual_joint_label1.yaml"
RECIPES = {
    "MotionBERT loss, version 1": ({"version": 1}, {"lambda_scale": 0.5, "lambda_3d_velocity": 20.0, "lambda_tcl": 0.0}),
    "EHGFormer loss, version 2": ({"version": 2}, {"lambda_scale": 0.0, "lambda_3d_velocity": 2.0, "lambda_tcl": 0.5}),
}


def train(overrides: dict, hyper: str | None, seed: int, epochs: int, extra: dict | None = None,
          keep: bool = False):
    """Per-epoch history of a quick-start run with ``overrides`` and the command line's ``--set``
    values ``extra`` (evaluated every epoch); with ``keep`` the results of the selected epoch."""
    cfg = load_config(QUICKSTART, hyper, None, {"eval_frequency": 1, "epochs": epochs, **overrides, **(extra or {})})
    prepare_data(cfg)
    with tempfile.TemporaryDirectory() as run:
        trainer = Trainer(cfg, os.path.join(run, "ckpt"), seed=seed)
        trainer.setup()
        trainer.fit()
        if keep:
            return read_checkpoint(os.path.join(run, "ckpt", "best_epoch.bin")).run.results
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


def held_out_source(folder: str, family: str, size: str) -> str:
    """A source file whose train split lacks ``family``'s actions and whose test split is only them."""
    others = [a for a in ACTIONS.values() if a not in FAMILIES[family]]
    data = {"train": make_synthetic_h36m(0, size, actions=others)["train"],
            "test": make_synthetic_h36m(0, size, actions=list(FAMILIES[family]))["test"]}
    write_pickle(os.path.join(folder, "src", "h36m_sh_conf_cam_source_final.pkl"), data)
    return folder


def family_p1(results: dict, actions) -> float:
    """Mean protocol P1 over ``actions`` (mm)."""
    return float(np.mean([results["protocol"]["per_action"][a]["p1"] for a in actions]))


def cross_family(args) -> None:
    size = load_config(QUICKSTART).synthetic_data
    base = train({"eval_full_coverage": False}, None, args.seed, args.epochs, args.extra, keep=True)
    print("| held-out family (actions) | trained on all families: P1 (mm) | trained without it: P1 (mm) | ratio |\n"
          "|---|---|---|---|")
    for family, actions in FAMILIES.items():
        with tempfile.TemporaryDirectory() as folder:
            held_out_source(folder, family, size)
            where = {"dt_root": os.path.join(folder, "src"), "data_root": folder, "subset_list": ["clips"],
                     "synthetic_data": None, "eval_full_coverage": False}
            alone = train(where, None, args.seed, args.epochs, args.extra, keep=True)
        inside, outside = family_p1(base, actions), alone["protocol"]["p1"]
        print(f"| {family} ({', '.join(actions)}) | {inside:.1f} | {outside:.1f} | {outside / inside:.2f} |", flush=True)


class MeanPose(torch.nn.Module):
    """Predicts the same pose ``mean`` [17, 3] (normalised, root-relative) for every frame."""

    def __init__(self, mean: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mean.expand(*x.shape[:2], *self.mean.shape).clone()


def baseline(args) -> None:
    cfg = load_config(args.config, None, None, args.extra)
    prepare_data(cfg)
    reader = reader_from_config(cfg)
    results = Evaluator(cfg, reader).run(MeanPose(mean_pose(cfg, reader)))
    results["about"] = {**describe(cfg, None), "recipe": "baseline: the mean training pose for every frame"}
    print(format_table(results))


POSTURES = ("lying", "airborne", "running", "walking", "crouching or sitting", "standing")


def posture_labels(world: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Index into :data:`POSTURES` [F] of each frame of world poses [F, 17, 3] (mm, Z up),
    videos being contiguous runs of ``sources``; the first matching posture wins."""
    labels = np.empty(len(world), dtype=int)
    for start, stop in realism.video_runs(sources):
        x = world[start:stop].astype(np.float64)
        masks = realism.posture_masks(x)
        speed = np.linalg.norm(np.gradient(x[:, 0, :2], axis=0), axis=1) * realism.FPS / 1000.0
        tests = [masks["lying"], masks["airborne"], speed > 1.8, speed > 0.5, masks["crouch_or_sit"],
                 np.ones(len(x), bool)]
        labels[start:stop] = np.argmax(np.stack(tests, 1), axis=1)
    return labels


def mean_pose(cfg, reader) -> np.ndarray:
    """The mean training target [17, 3] (normalised, as the codec encodes it) of a config."""
    return PoseCodec.from_config(cfg).encode_target(reader.read_3d("train")[None])[0].mean(0)


def postures(args) -> None:
    cfg = load_config(args.config, None, None, {"eval_full_coverage": False, **args.extra})
    if not cfg.synthetic_data:
        raise DataError("postures needs a config with synthetic_data (its world poses are regenerated)")
    world = make_synthetic_h36m(0, cfg.synthetic_data, subjects=TEST_SUBJECTS, debug=True)["test"]
    evaluator = Evaluator(cfg)
    if not np.array_equal(world["joint_2d"], evaluator.readers[0].raw["test"]["joint_2d"]):
        raise DataError(f"{cfg.dt_root}/{cfg.dt_file} is not the synthetic '{cfg.synthetic_data}' set of seed 0")
    labels = posture_labels(world["joint3d_world"], np.asarray(world["source"]))
    errors = {"model": evaluator.frame_errors(load_model(cfg, args.checkpoint)),
              "mean pose": evaluator.frame_errors(MeanPose(mean_pose(cfg, evaluator.readers[0])))}
    print(f"{describe(cfg, None)['protocol']}; {args.checkpoint}")
    print("| posture | frames | share | P1 (mm) | P2 (mm) | mean-pose P1 (mm) |\n|---|---|---|---|---|---|")
    (err, covered), (base, _) = errors["model"], errors["mean pose"]
    for k, name in enumerate(POSTURES):
        sel = covered & (labels == k)
        if sel.any():
            print(f"| {name} | {sel.sum()} | {sel.mean() / covered.mean():.1%} | {err[sel, 0].mean():.1f} | "
                  f"{err[sel, 1].mean():.1f} | {base[sel, 0].mean():.1f} |")
    print(f"| all scored frames | {covered.sum()} | 100% | {err[covered, 0].mean():.1f} | "
          f"{err[covered, 1].mean():.1f} | {base[covered, 0].mean():.1f} |")


@entry_point
def main(argv=None) -> None:
    p = ArgumentParser(__doc__)
    p.add_argument("experiment", choices=("selection", "recipes", "cross_family", "baseline", "postures"))
    p.add_argument("--config", default=QUICKSTART, help="baseline, postures: the config whose test split is scored")
    p.add_argument("--checkpoint", default=None, help="postures: the checkpoint to score")
    p.add_argument("--epochs", type=int, default=None, help="default: the quick start's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config overrides of every run, e.g. --set learning_rate=3e-3")
    args = p.parse_args(argv)
    args.extra = dict(parse_override(text) for text in args.overrides)
    args.epochs = args.epochs or int(load_config(QUICKSTART).epochs)
    if args.experiment == "postures" and not args.checkpoint:
        p.error("postures needs --checkpoint")
    {"selection": selection, "recipes": recipes, "cross_family": cross_family,
     "baseline": baseline, "postures": postures}[args.experiment](args)


if __name__ == "__main__":
    main()
