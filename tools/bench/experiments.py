"""Small synthetic experiments behind the numbers in docs/train.md (benchmarks, not tests).

    python tools/bench/experiments.py selection   # optimism of selecting best_epoch.bin on the test set
    python tools/bench/experiments.py recipes     # MotionBERT vs EHGFormer recipe (v1 / v2) at quick-start size
    python tools/bench/experiments.py cross_family  # train without one motion family, score it
    python tools/bench/experiments.py baseline [--config C]  # P1 of always predicting the mean pose
    python tools/bench/experiments.py postures --config C --checkpoint CKPT  # P1 by what the person does
    python tools/bench/experiments.py transfer --config C --checkpoint CKPT  # another generator configuration
    python tools/bench/experiments.py draw --config C --checkpoint CKPT      # docs/img/lifted_postures.png
    python tools/bench/experiments.py camera_cost   # per-step cost of random cameras vs the clip store

The first three train the quick-start configuration (configs/pose3d/quickstart.yaml, its synthetic
data is made on first use; ``cross_family`` also ``--config``) with an evaluation after every epoch
(``cross_family --checkpoint``: the config's own schedule, as the given run had) and print a table.

``selection``: one run with ``select_on: val``; the optimism of test-set selection is the test P1
of the epoch the test set would pick minus the test P1 of the epoch the validation split picks.
``recipes``: the same data and model size, version 1 with MotionBERT's loss (MPJPE + 0.5 N-MPJPE
+ 20 velocity) and version 2 (hypergraph, partition 1) with EHGFormer's (MPJPE + 0.5 TCL + 2
velocity), one seed each, selected on the validation split.
``cross_family``: for each motion family of the generator (lib/data/synthetic/motions.py), a
source whose training split lacks that family's actions and whose test split holds only them;
the quick-start model (or ``--config``'s) trained on it is scored on the held-out family and set
beside the same model trained on every family (the config's own run, same seed and epochs; with
``--checkpoint``, that run's ``best_epoch.bin`` instead of training it again), per family. With
``--folder`` the sources and runs stay there, so a check too long for one sitting (six 2-hour
trainings at the synthetic_wild size) resumes when the same command is started again:

    python tools/bench/experiments.py cross_family --config configs/pose3d/synthetic_wild.yaml \
        --checkpoint checkpoint/synthetic_wild/best_epoch.bin --folder /path/to/cross_family_wild
``baseline``: no training; a "model" that outputs the mean root-relative training pose for every
frame, scored by the config's own test protocol (flip TTA included), per action. A trained
model's P1 means something only next to this number on the same test split.
``postures``: no training; a checkpoint's per-frame P1 on the config's synthetic test split (the
protocol's frames), grouped by what the person does in that frame, read from the generator's
world-space poses (regenerated, and checked to be the file's): lying, airborne (jumping or
running flight), running (pelvis > 1.8 m/s), walking (0.5-1.8 m/s), crouching or sitting
(pelvis below 60 % of leg length), standing (the rest); beside the mean-pose baseline's P1.
``transfer``: no training; a checkpoint scored on a test set made by a *different generator
configuration* than any training set (:func:`transfer_videos`): another seed, bodies with the
geometric sequences' wide proportions, per video (not per subject), the 15 actions plus motions the
generator never trains on (crawling on all fours, rolling along the floor,
``lib/data/synthetic/proxies.py``), 300-frame videos, 6 px Gaussian 2D noise with confidence 1
(not the detector model), seen either by the four H36M cameras of S9 / S11 (the maintainers'
real-motion protocol) or by random cameras (``views.random_camera``). Each video is lifted whole
through ``lib.inference.lift`` at the config's tds, as a user would; P1 / P2 in mm of the 2.5D
pose (root-relative, every frame), beside the flat guess (the noisy 2D at the root's depth).
``draw``: a walking, sitting, crawling and lying person (one video each, an H36M camera, 6 px
noise) lifted from 2D, drawn as ground truth vs prediction to ``docs/img/lifted_postures.png``.
``camera_cost``: the quick-start config with ``random_cameras`` false and true (each with its own
data folder under ``--folder``): time of 100 loader batches and of 25 train steps (after 5).
"""
from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np
import torch

from lib.config.cli import ArgumentParser
from lib.config.schema import load_config, parse_override
from lib.data import camera as cam
from lib.data.normalize import normalize_2d
from lib.data.synthetic import make_synthetic_h36m, realism
from lib.data.synthetic.body import random_body
from lib.data.synthetic.cameras import vary_placement
from lib.data.synthetic.dataset import ACTIONS, TEST_SUBJECTS
from lib.data.synthetic.geometric import BODY_SPREAD
from lib.data.synthetic.motions import synthesize_motion
from lib.data.synthetic.proxies import crawl_motion, roll_motion
from lib.data.synthetic.views import random_camera, seen_by
from lib.engine.metrics import mpjpe, p_mpjpe
from lib.inference.lift import TorchRunner, lift
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


def lasting_or_temporary(path: str | None):
    """A context giving ``path`` (kept afterwards) or, without one, a temporary folder."""
    return contextlib.nullcontext(path) if path else tempfile.TemporaryDirectory()


def train(overrides: dict, hyper: str | None, seed: int, epochs: int, extra: dict | None = None,
          keep: bool = False, config: str = QUICKSTART, run_dir: str | None = None, every_epoch: bool = True):
    """Per-epoch history of a run of ``config`` (the quick start) with ``overrides`` and the command
    line's ``--set`` values ``extra`` (evaluated every epoch unless not ``every_epoch``: then on the
    config's own schedule); with ``keep`` the results of the selected epoch. ``run_dir``: a lasting
    run folder (a stopped run resumes there, a finished one is only read) instead of a temporary one."""
    schedule = {"eval_frequency": 1} if every_epoch else {}
    cfg = load_config(config, hyper, None, {**schedule, "epochs": epochs, **overrides, **(extra or {})})
    prepare_data(cfg)
    with lasting_or_temporary(run_dir) as run:
        folder = run_dir or os.path.join(run, "ckpt")
        trainer = Trainer(cfg, folder, seed=seed)
        trainer.setup()
        trainer.fit()
        if keep:
            return read_checkpoint(os.path.join(folder, "best_epoch.bin")).run.results
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


def held_out_source(folder: str, family: str, cfg) -> str:
    """A source file whose train split lacks ``family``'s actions and whose test split is only them
    (generated as the config generates its own: size, geometric share, world joints); kept if
    ``folder`` already holds it (the generation is deterministic)."""
    path = os.path.join(folder, "src", "h36m_sh_conf_cam_source_final.pkl")
    if os.path.isfile(path):
        return folder
    others = [a for a in ACTIONS.values() if a not in FAMILIES[family]]
    size, options = cfg.synthetic_data, {"geometric": cfg.synthetic_geometric, "world": cfg.random_cameras}
    data = {"train": make_synthetic_h36m(0, size, actions=others, **options)["train"],
            "test": make_synthetic_h36m(0, size, actions=list(FAMILIES[family]))["test"]}
    write_pickle(path, data)
    return folder


def family_p1(results: dict, actions) -> float:
    """Mean protocol P1 over ``actions`` (mm)."""
    return float(np.mean([results["protocol"]["per_action"][a]["p1"] for a in actions]))


def cross_family(args) -> None:
    cfg = load_config(args.config, None, None, args.extra)
    # the runs on every family and without one are trained alike: evaluated every epoch, or, when the
    # first is the config's own finished run (--checkpoint, same seed and epochs), on its schedule
    common = {"keep": True, "config": args.config, "every_epoch": not args.checkpoint}
    if args.checkpoint:
        base = read_checkpoint(args.checkpoint).run.results
    else:
        base = train({"eval_full_coverage": False}, None, args.seed, args.epochs, args.extra, **common,
                     run_dir=args.folder and os.path.join(args.folder, "all", "run"))
    print(f"{args.config}, {args.epochs} epochs, seed {args.seed}; all families: "
          f"{args.checkpoint or 'trained here'}; protocol P1 (mm), selected on the validation split")
    print("| held-out family (actions) | trained on all families: P1 (mm) | trained without it: P1 (mm) | ratio |\n"
          "|---|---|---|---|")
    for family, actions in FAMILIES.items():
        with lasting_or_temporary(args.folder and os.path.join(args.folder, family)) as folder:
            held_out_source(folder, family, cfg)
            where = {"dt_root": os.path.join(folder, "src"), "data_root": folder, "subset_list": ["clips"],
                     "synthetic_data": None, "eval_full_coverage": False}
            alone = train(where, None, args.seed, args.epochs, args.extra, **common,
                          run_dir=args.folder and os.path.join(folder, "run"))
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


TRANSFER_SEED, TRANSFER_FRAMES, TRANSFER_NOISE_PX = 7, 300, 6.0
EXTRA_MOTIONS = {"Crawling": crawl_motion, "Rolling": roll_motion}


def transfer_videos(seed: int = TRANSFER_SEED, frames: int = TRANSFER_FRAMES) -> list[tuple[int, str, np.ndarray]]:
    """(subject, motion name, world joints [frames, 17, 3] mm) of the other-configuration test set:
    per test subject the 15 actions and two of each extra motion, each with its own wide-range body."""
    out = []
    for subject in TEST_SUBJECTS:
        names = list(ACTIONS.values()) + [name for name in EXTRA_MOTIONS for _ in range(2)]
        for k, name in enumerate(names):
            rng = np.random.default_rng([seed, subject, k])
            bones = random_body(rng, BODY_SPREAD)
            make = EXTRA_MOTIONS.get(name)
            out.append((subject, name, make(frames, rng, bones) if make else synthesize_motion(name, frames, rng, bones)))
    return out


def views_of(world: np.ndarray, subject: int, cameras: str, rng: np.random.Generator):
    """(pixels [T, 17, 2], joint3d_image [T, 17, 3], factor [T], width, height) per camera of a video:
    the subject's four H36M cameras (scene placement varied as the 'default' set does) or two
    random cameras."""
    out = []
    for k in range(len(cam.CAMERA_IDS)) if cameras == "h36m" else range(2):
        if cameras == "h36m":
            _, image, factor, width, height = seen_by(vary_placement(world, cam.extrinsics(subject, k)[1], rng), k, subject)
        else:
            _, image, factor, width, height = seen_by(world, random_camera(rng, world))
        out.append((image[..., :2] + rng.normal(0, TRANSFER_NOISE_PX, image[..., :2].shape), image, factor, width, height))
    return out


def lift_view(cfg, runner, pixels, image, factor, width, height) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prediction, flat guess, ground truth) root-relative in mm [T', 17, 3] of one view, lifted
    whole at the config's tds (frames 0, tds, 2 tds, ...)."""
    keep = slice(0, None, cfg.sample_stride)
    pixels, image, factor = pixels[keep], image[keep], factor[keep]
    x = np.concatenate([normalize_2d(pixels, width, height), np.ones(pixels.shape[:2] + (1,), np.float32)], -1)
    pred = lift(x, runner, cfg.maxlen, bool(cfg.rootrel), cfg.maxlen // 3)
    pred_px = PoseCodec(True).decode_pixels(pred - pred[:, :1], width, height)
    mm = lambda a: (a - a[:, :1]) * factor[:, None, None]
    flat = np.concatenate([pixels, np.zeros(pixels.shape[:2] + (1,))], -1)
    return mm(pred_px.astype(np.float64)), mm(flat), mm(image.astype(np.float64))


def transfer(args) -> None:
    cfg = load_config(args.config, None, None, args.extra)
    runner = TorchRunner(load_model(cfg, args.checkpoint), PoseCodec.from_config(cfg).input_channels)
    groups = {"everyday (15 actions)": set(ACTIONS.values()), "crawling": {"Crawling"}, "rolling": {"Rolling"}}
    print(f"{args.checkpoint}: other-configuration test (seed {TRANSFER_SEED}, wide bodies, crawling and rolling "
          f"added, {TRANSFER_NOISE_PX:g} px Gaussian noise), lifted whole at tds {cfg.sample_stride}; mm")
    print("| cameras | motions | frames | P1 | P2 | flat guess P1 |\n|---|---|---|---|---|---|")
    videos = transfer_videos()
    for cameras in ("h36m", "random"):
        rng = np.random.default_rng([TRANSFER_SEED, 99, cameras == "h36m"])
        rows = {name: [] for name in groups}
        for subject, motion, world in videos:
            for view in views_of(world, subject, cameras, rng):
                pred, flat, gt = lift_view(cfg, runner, *view)
                errors = np.stack([mpjpe(pred, gt), p_mpjpe(pred, gt), mpjpe(flat, gt)], 1)
                rows[next(g for g, names in groups.items() if motion in names)].append(errors)
        rows["all"] = [e for v in list(rows.values()) for e in v]
        for name, parts in rows.items():
            e = np.concatenate(parts)
            print(f"| {cameras} | {name} | {len(e)} | {e[:, 0].mean():.1f} | {e[:, 1].mean():.1f} | {e[:, 2].mean():.1f} |",
                  flush=True)


def draw(args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lib.data.skeleton import LIMBS
    cfg = load_config(args.config, None, None, args.extra)
    runner = TorchRunner(load_model(cfg, args.checkpoint), PoseCodec.from_config(cfg).input_channels)
    rng = np.random.default_rng(TRANSFER_SEED)
    bones = random_body(rng)
    people = {"walking": synthesize_motion("Walking", 200, rng, bones),
              "sitting": synthesize_motion("SittingDown", 400, np.random.default_rng(3), bones),
              "crawling": crawl_motion(200, rng, bones), "lying": roll_motion(200, rng, bones)}
    fig = plt.figure(figsize=(16, 8))
    for col, (name, world) in enumerate(people.items()):
        pixels, image, factor, width, height = views_of(world, 9, "h36m", rng)[1]
        pred, _, gt = lift_view(cfg, runner, pixels, image, factor, width, height)
        frame = int(np.argmax(realism.posture_masks(world[::cfg.sample_stride])["crouch_or_sit"])) if name == "sitting" \
            else len(gt) // 2
        p1 = float(mpjpe(pred, gt).mean())
        ax2 = fig.add_subplot(2, 4, col + 1)
        ax2.imshow(np.ones((height, width, 3)))
        ax3 = fig.add_subplot(2, 4, col + 5, projection="3d")
        for parent, child in LIMBS:
            p = pixels[::cfg.sample_stride][frame][[parent, child]]
            ax2.plot(p[:, 0], p[:, 1], "k-")
            for pose, style in ((gt, "g-"), (pred, "r-")):
                seg = pose[frame][[parent, child]]
                ax3.plot(seg[:, 0], seg[:, 2], -seg[:, 1], style)
        ax2.set_title(f"{name}: 2D input (H36M camera, 6 px noise)")
        ax3.set_title(f"3D: truth green, lifted red (clip P1 {p1:.0f} mm)")
        ax3.set_box_aspect((1, 1, 1))
        limit = np.abs(gt[frame]).max() * 1.1
        ax3.set_xlim(-limit, limit); ax3.set_ylim(-limit, limit); ax3.set_zlim(-limit, limit)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


def camera_cost(args) -> None:
    import time
    from lib.engine.trainer import build_run_data
    for random_cameras in (False, True):
        root = os.path.join(args.folder or "/tmp/pose3d_camera_cost", f"random_cameras_{random_cameras}")
        cfg = load_config(QUICKSTART, None, None, {"dt_root": os.path.join(root, "src"), "data_root": root,
                                                    "subset_list": ["clips"], "random_cameras": random_cameras,
                                                    "no_eval": True, **args.extra})
        prepare_data(cfg)
        data = build_run_data(cfg, evaluate=False)
        data.loader.sampler.set_epoch(0)
        start, batches = time.perf_counter(), []
        for x, y in data.loader:
            batches.append((x, y))
            if len(batches) == 100:
                break
        data_ms = (time.perf_counter() - start) / len(batches) * 1000
        with tempfile.TemporaryDirectory() as run:
            trainer = Trainer(cfg, run, seed=args.seed)
            trainer.setup(data=data)
            coin = torch.Generator().manual_seed(0)
            for x, y in batches[:5]:
                trainer.train_step(x, y, coin)
            start = time.perf_counter()
            for x, y in batches[5:30]:
                trainer.train_step(x, y, coin)
            step_ms = (time.perf_counter() - start) / 25 * 1000
        name = "random cameras" if random_cameras else "clip store"
        print(f"{name}: {data_ms:.1f} ms per loader batch of {cfg.batch_size}, train step {step_ms:.1f} ms", flush=True)


@entry_point
def main(argv=None) -> None:
    p = ArgumentParser(__doc__)
    p.add_argument("experiment", choices=("selection", "recipes", "cross_family", "baseline", "postures", "transfer",
                                          "draw", "camera_cost"))
    p.add_argument("--config", default=QUICKSTART, help="baseline, postures: the config whose test split is "
                   "scored; cross_family: the config trained (default: the quick start)")
    p.add_argument("--checkpoint", default=None, help="postures, transfer, draw: the checkpoint to score; "
                   "cross_family: the config's run on every family, already trained (its best_epoch.bin)")
    p.add_argument("--out", default="docs/img/lifted_postures.png", help="draw: the image to write")
    p.add_argument("--folder", default=None, help="camera_cost: where its data is made (default "
                   "/tmp/pose3d_camera_cost); cross_family: keep sources and runs here, so that the command "
                   "started again resumes the stopped run and skips the finished ones")
    p.add_argument("--epochs", type=int, default=None, help="default: the config's (--config)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config overrides of every run, e.g. --set learning_rate=3e-3")
    args = p.parse_args(argv)
    args.extra = dict(parse_override(text) for text in args.overrides)
    args.epochs = args.epochs or int(load_config(args.config).epochs)
    if args.experiment in ("postures", "transfer", "draw") and not args.checkpoint:
        p.error(f"{args.experiment} needs --checkpoint")
    {"selection": selection, "recipes": recipes, "cross_family": cross_family, "baseline": baseline,
     "postures": postures, "transfer": transfer, "draw": draw, "camera_cost": camera_cost}[args.experiment](args)


if __name__ == "__main__":
    main()
