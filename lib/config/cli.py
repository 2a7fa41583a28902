"""Command-line arguments shared by the entry points (the seed README's flags)."""
from __future__ import annotations

import argparse
import shlex
import sys

from lib.config.schema import ConfigError, check_value, load_config, parse_override

# Flags that set a config key of the same name. A flag wins over ``--set`` only when it is given
# (argparse default None, or False for the on/off flags --bf16 and --gt_2d); its value is checked
# by the schema like any other (lib/config/schema.py), so ``--version 3`` names the flag.
KEY_FLAGS = ("version", "hyper_relation_bias", "pretrained", "backbone_lr_mult", "freeze_backbone_epochs",
             "bf16", "gt_2d")


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are :class:`ConfigError` (one ``error: ...`` line, exit status 2
    through :func:`lib.errors.entry_point`) instead of a usage block."""

    def __init__(self, description: str = "", **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(description=description, **kwargs)

    def error(self, message: str):
        raise ConfigError(f"{message} (see {self.prog} --help)")


def whole_number(text: str, least: int) -> int:
    """An integer >= ``least`` from a flag's text, else argparse's one-line type error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return whole_number(text, 1)


def seed_int(text: str) -> int:
    """argparse type of ``--seed``: 0 ... 2**32 - 1 (what numpy's and the sampler's seeds accept)."""
    value = whole_number(text, 0)
    if value >= 2 ** 32:
        raise argparse.ArgumentTypeError(f"must be below 2**32, got {value}")
    return value


def base_parser(description: str, config_required: bool = True) -> ArgumentParser:
    """Flags every entry point takes: config files, model version and config overrides
    (``config_required=False`` for an entry point that can run without a config)."""
    p = ArgumentParser(description)
    p.add_argument("--config", required=config_required, help="training config YAML (configs/pose3d/*.yaml)")
    p.add_argument("--hyper_cfg", default=None, help="hyperedge partition YAML (hyper_config/method2/*.yaml)")
    p.add_argument("--hyper_relation_bias", default=None, metavar="{none,uniform}",
                   help="version 2: joint-joint relation bias init (identity / skeleton adjacency)")
    p.add_argument("--version", default=None, metavar="{1,2}",
                   help="1 = DSTformer (MotionBERT), 2 = hypergraph DSTformer")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key (docs/config.md), e.g. --set epochs=10 --set pretrained=null; "
                        "--set distill.KEY=VALUE for the distill file; a flag for the same key wins")
    p.add_argument("--seed", type=seed_int, default=0, help="random seed >= 0 (model init, data order, flips)")
    return p


def add_training_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags of train.py / train_distill.py / evaluate.py."""
    p.add_argument("-c", "--checkpoint", default="checkpoint", help="run folder for checkpoints and logs")
    p.add_argument("-r", "--resume", default="", help="checkpoint file to resume training from")
    p.add_argument("-e", "--evaluate", default="", help="checkpoint file to evaluate (no training)")
    p.add_argument("--new_run", action="store_true",
                   help="start a fresh run in --checkpoint although it holds one (e.g. with other data or clip "
                        "length): the previous run's files move into <checkpoint>/previous/N first (docs/train.md)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast of the training step (= --set precision=bf16)")
    p.add_argument("--gt_2d", action="store_true", help="evaluate with ground-truth 2D input")
    p.add_argument("-p", "--pretrained", default=None, metavar="PATH",
                   help="fine-tune: initialise the weights from this checkpoint (MotionBERT or Pose3D; a "
                        "folder means its latest_epoch.bin); a resume (-r or latest_epoch.bin) wins over it")
    p.add_argument("--backbone_lr_mult", default=None, metavar="MULT",
                   help="fine-tune: lr of the pretrained parameters = learning_rate x this (new ones: x 1)")
    p.add_argument("--freeze_backbone_epochs", default=None, metavar="N",
                   help="fine-tune: keep the pretrained parameters fixed for the first N epochs")
    return p


def rerun_command(script: str, argv: list[str] | None = None, drop_resume: bool = False) -> str:
    """The command that continues this run: ``python <script>`` with the same flags (``argv``, else
    ``sys.argv[1:]``) minus ``--new_run`` (the fresh run exists now) and, with ``drop_resume``
    (the run folder has its own ``latest_epoch.bin``), minus ``-r/--resume FILE``."""
    argv, kept = list(sys.argv[1:] if argv is None else argv), []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--new_run":
            continue
        elif drop_resume and arg in ("-r", "--resume"):
            skip = True
        elif not (drop_resume and arg.startswith("--resume=")):
            kept.append(arg)
    return shlex.join(["python", script, *kept])


def config_inputs(args: argparse.Namespace) -> dict:
    """The config files the command reads, for :func:`lib.io.protected_inputs` (no output may replace them)."""
    return {"the --config": getattr(args, "config", None), "the --hyper_cfg": getattr(args, "hyper_cfg", None)}


def flag_overrides(args: argparse.Namespace) -> dict:
    """Config values of the :data:`KEY_FLAGS` given on the command line, checked by the schema."""
    given = {key: getattr(args, key, None) for key in KEY_FLAGS}
    return {key: check_value(key, value, f"the command line (--{key})")
            for key, value in given.items() if value is not None and value is not False}


def resolve_config(args: argparse.Namespace, distill_cfg: str | None = None):
    """Config from the files in ``args`` plus explicit CLI values (see lib/config/schema.py):
    ``--set`` values, then the flags that were given. A bad config raises
    :class:`~lib.errors.ConfigError` naming the key and the file (or flag)."""
    overrides = dict(parse_override(text) for text in args.overrides)
    overrides.update(flag_overrides(args))
    cfg = load_config(args.config, args.hyper_cfg, distill_cfg, overrides)
    training = hasattr(args, "pretrained") and not getattr(args, "evaluate", "")   # train.py, train_distill.py
    if training and cfg.finetune and not cfg.pretrained:
        raise ConfigError(f"{args.config} fine-tunes (finetune: true): pass the pretrained checkpoint "
                          "with --pretrained PATH")
    return cfg
