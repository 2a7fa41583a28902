"""Command-line arguments shared by the entry points (the seed README's flags)."""
from __future__ import annotations

import argparse
import sys

from lib.utils.config import ConfigError, load_config, parse_override


def base_parser(description: str) -> argparse.ArgumentParser:
    """Flags every entry point takes: config files, model version and config overrides."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", required=True, help="training config YAML (configs/pose3d/*.yaml)")
    p.add_argument("--hyper_cfg", default=None, help="hyperedge partition YAML (hyper_config/method2/*.yaml)")
    p.add_argument("--hyper_relation_bias", choices=("none", "uniform"), default=None,
                   help="version 2: joint-joint relation bias init (identity / skeleton adjacency)")
    p.add_argument("--version", type=int, choices=(1, 2), default=None,
                   help="1 = DSTformer (MotionBERT), 2 = hypergraph DSTformer")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set epochs=10 --set learning_rate=1e-4")
    p.add_argument("--seed", type=int, default=0, help="random seed (model init, data order, flips)")
    return p


def add_training_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags of train.py / train_distill.py / evaluate.py."""
    p.add_argument("-c", "--checkpoint", default="checkpoint", help="run folder for checkpoints and logs")
    p.add_argument("-r", "--resume", default="", help="checkpoint file to resume training from")
    p.add_argument("-e", "--evaluate", default="", help="checkpoint file to evaluate (no training)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    p.add_argument("--gt_2d", action="store_true", help="evaluate with ground-truth 2D input")
    p.add_argument("-p", "--pretrained", default=None, metavar="PATH",
                   help="fine-tune: initialise the weights from this checkpoint (MotionBERT or Pose3D; a "
                        "folder means its latest_epoch.bin); a resume (-r or latest_epoch.bin) wins over it")
    p.add_argument("--backbone_lr_mult", type=float, default=None,
                   help="fine-tune: lr of the pretrained parameters = learning_rate x this (new ones: x 1)")
    p.add_argument("--freeze_backbone_epochs", type=int, default=None,
                   help="fine-tune: keep the pretrained parameters fixed for the first N epochs")
    return p


def resolve_config(args: argparse.Namespace, distill_cfg: str | None = None):
    """Config from the files in ``args`` plus explicit CLI values (see lib/utils/config.py).
    A bad config exits with a one-line message naming the key and the file."""
    try:
        return _resolve(args, distill_cfg)
    except ConfigError as err:
        sys.exit(f"error: {err}")


def _resolve(args: argparse.Namespace, distill_cfg: str | None):
    overrides = dict(parse_override(text) for text in args.overrides)
    overrides["version"] = args.version
    overrides["hyper_relation_bias"] = args.hyper_relation_bias
    if getattr(args, "bf16", False):
        overrides["bf16"] = True
    if getattr(args, "gt_2d", False):
        overrides["gt_2d"] = True
    for key in ("pretrained", "backbone_lr_mult", "freeze_backbone_epochs"):
        overrides[key] = getattr(args, key, None)
    cfg = load_config(args.config, args.hyper_cfg, distill_cfg, overrides)
    training = hasattr(args, "pretrained") and not getattr(args, "evaluate", "")   # train.py, train_distill.py
    if training and cfg.finetune and not cfg.pretrained:
        raise ConfigError(f"{args.config} fine-tunes (finetune: true): pass the pretrained checkpoint "
                          "with --pretrained PATH")
    return cfg
