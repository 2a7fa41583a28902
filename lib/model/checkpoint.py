"""The checkpoint format: one typed object, :class:`Checkpoint`, written and read only here.

Every reader (training resume, evaluation, ONNX export, heatmaps, video lifting, the distillation
teacher and student, fine-tuning from pretrained weights) calls :func:`read_checkpoint`, which
loads the file with the safe loader (``weights_only``) and passes it through :func:`upgrade`;
the trainer writes with :func:`write_checkpoint` (atomic: a killed process never leaves a
half-written file). On disk a checkpoint is a plain dict (``FORMAT`` 2)::

    format       2
    model_pos    the unwrapped state_dict (no 'module.' / '_orig_mod.' prefix); MotionBERT's key
    model_args   the model's construction arguments, ``asdict(DSTformerConfig)`` (LayerNorm eps included)
    config       the resolved config as a plain dict (None for weights-only files)
    run          the run state (:class:`RunState` as a dict; None for weights-only files)
    optimizer    the optimizer state_dict (None for weights-only files)
    extra        state_dicts of other trained modules, e.g. {'distiller': ...}

Older layouts (:func:`upgrade`, the one place that knows them):

* ``pose3d-1``: Pose3D before this format: ``model_pos``, ``config`` and, for training files,
  ``epoch``, ``lr``, ``optimizer``, ``min_loss``, ``rng``, ``extra``, and later ``results``,
  ``best_epoch``, ``selected_on``. ``model_args`` come from the saved config; files saved before
  the config recorded ``layernorm_eps`` were trained with PyTorch's default 1e-5.
* ``motionbert``: MotionBERT's released files (``model_pos`` of a DataParallel model, ``epoch``,
  ``lr``, ``optimizer``, ``min_loss``): weights only here. They store no architecture, so
  ``model_args`` holds only what the file fixes: ``version`` 1 and MotionBERT's LayerNorm eps 1e-6.
* ``state_dict``: a bare state_dict, or one under ``model`` / ``state_dict``: treated as MotionBERT's.

Files in a run folder: ``latest_epoch.bin`` (every epoch), ``best_epoch.bin`` (the epoch selected
on ``run.selected_on``), ``epoch_{k}.bin`` (every ``checkpoint_frequency`` epochs).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Mapping

import torch

from lib.data.codec import PoseCodec
from lib.errors import CheckpointError
from lib.data.values import WEIGHT_LIMIT, check_numbers
from lib.io import load_checkpoint, save_torch
from lib.model.dstformer import DSTformerConfig

FORMAT = 2
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
STATE_DICT_KEYS = ("model_pos", "model", "state_dict")
LEGACY_LAYERNORM_EPS = 1e-5      # Pose3D files saved before the config recorded layernorm_eps
MOTIONBERT_LAYERNORM_EPS = 1e-6  # every released MotionBERT checkpoint (its load_backbone)
# Where the LayerNorm eps of each layout comes from (printed when it needs saying).
EPS_ORIGINS = {
    "pose3d": "the layernorm_eps saved in the checkpoint's model_args",
    "pose3d-1": "the layernorm_eps saved in the checkpoint's config",
    "pose3d-1-legacy-eps": "a Pose3D checkpoint saved before checkpoints recorded layernorm_eps; those runs used 1e-5",
    "motionbert": "a MotionBERT checkpoint: no Pose3D config inside; MotionBERT trains with 1e-6",
    "state_dict": "a bare state_dict: no Pose3D config inside; MotionBERT's 1e-6 assumed",
}
# DSTformerConfig fields that a config sets under the same key (dim_in and joint_label are derived).
CONFIG_FIELDS = ("dim_feat", "dim_rep", "depth", "num_heads", "mlp_ratio", "num_joints", "maxlen", "att_fuse",
                 "drop_path_rate", "dropout", "version", "hyper_relation_bias", "layernorm_eps", "causal")


class CheckpointMismatchError(CheckpointError):
    """A state_dict does not fit the model (missing/unexpected keys or different shapes)."""


def model_config(cfg: Mapping) -> DSTformerConfig:
    """The model arguments a config sets; a key the mapping lacks keeps the DSTformerConfig value
    (a resolved config has every key, lib/config/schema.py)."""
    args = {key: cfg[key] for key in CONFIG_FIELDS if key in cfg}
    if "no_conf" in cfg:
        args["dim_in"] = PoseCodec(no_conf=bool(cfg["no_conf"])).input_channels
    config = DSTformerConfig(**args)
    config.version, config.layernorm_eps = int(config.version), float(config.layernorm_eps)
    if config.version == 2:
        config.joint_label = tuple(cfg["joint_label"][0])
    return config


@dataclass
class RunState:
    """Where a training run stands after its last finished epoch."""
    epoch: int = 0                  # epochs finished = 0-based index of the next epoch to run
    lr: float | None = None         # learning rate of that next epoch
    selected_on: str | None = None  # split that picks best_epoch.bin: 'val' or 'test' (None: not recorded)
    best_score: float = math.inf    # P1 of best_epoch.bin on that split
    best_units: str | None = None   # its units: 'px' (validation split) or 'mm' (test protocol)
    best_epoch: int | None = None   # 0-based epoch of best_epoch.bin
    results: dict | None = None     # evaluation of the last finished epoch; None until it is evaluated
    rng: dict | None = None         # torch RNG states at the end of that epoch (exact resume)

    @property
    def last_epoch(self) -> int:
        """0-based index of the last finished epoch (-1 before the first)."""
        return self.epoch - 1

    def record(self, results: dict, score: float, units: str) -> bool:
        """Store the evaluation of the last finished epoch; True when it is the new best."""
        self.results = results
        if score < self.best_score:
            self.best_score, self.best_units, self.best_epoch = score, units, self.last_epoch
        return self.best_epoch == self.last_epoch


@dataclass
class Checkpoint:
    """A checkpoint in the current layout (see the module docstring)."""
    model_state: dict
    model_args: dict
    config: dict | None = None
    run: RunState | None = None
    optimizer: dict | None = None
    extra: dict = field(default_factory=dict)
    layout: str = "pose3d"          # the layout the file was written in (a key of EPS_ORIGINS)

    @property
    def layernorm_eps(self) -> float:
        return float(self.model_args["layernorm_eps"])

    @property
    def causal(self) -> bool:
        """Temporal attention masked to past frames; files written before the key (and MotionBERT's) are not."""
        return bool(self.model_args.get("causal", False))

    def to_dict(self) -> dict:
        """The on-disk dict (plain containers and tensors, loadable with ``weights_only``)."""
        return {"format": FORMAT, "model_pos": self.model_state, "model_args": dict(self.model_args),
                "config": self.config, "run": None if self.run is None else asdict(self.run),
                "optimizer": self.optimizer, "extra": self.extra}

    @classmethod
    def from_dict(cls, raw: Mapping) -> Checkpoint:
        """A checkpoint from its on-disk dict in any known layout (:func:`upgrade`)."""
        raw, layout = upgrade(raw)
        run = None if raw.get("run") is None else RunState(**raw["run"])
        return cls(extract_state_dict(raw), dict(raw["model_args"]), raw.get("config"), run, raw.get("optimizer"),
                   dict(raw.get("extra") or {}), layout)


def read_checkpoint(path: str, what: str = "checkpoint") -> Checkpoint:
    """The checkpoint at ``path`` in the current layout; :class:`CheckpointError` when it is not one."""
    raw = load_checkpoint(path, what)
    try:
        checkpoint = Checkpoint.from_dict(raw)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    states = {"": checkpoint.model_state, **{f"extra/{k}/": v for k, v in checkpoint.extra.items()}}
    for prefix, state in states.items():
        for name, tensor in state.items() if isinstance(state, Mapping) else ():
            if torch.is_tensor(tensor) and tensor.is_floating_point():
                check_numbers(tensor, f"{path}: weight {prefix}{name}", WEIGHT_LIMIT, CheckpointError,
                              "the weights are broken (a diverged run?); use an earlier checkpoint")
    return checkpoint


def write_checkpoint(path: str, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically."""
    save_torch(path, checkpoint.to_dict())


# -- older layouts --------------------------------------------------------------------------------
def upgrade(raw: Mapping) -> tuple[dict, str]:
    """``(the current layout's dict, the layout raw was in)`` for a checkpoint dict of any layout."""
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"not a checkpoint: a {type(raw).__name__}, expected a dict")
    if raw.get("format") == FORMAT:
        return dict(raw), "pose3d"
    if isinstance(raw.get("config"), Mapping):
        return _upgrade_pose3d_1(raw)
    layout = "motionbert" if isinstance(raw.get("model_pos"), Mapping) else "state_dict"
    args = {"version": 1, "layernorm_eps": MOTIONBERT_LAYERNORM_EPS}
    return {"model_pos": extract_state_dict(raw), "model_args": args, "config": None, "run": None,
            "optimizer": None, "extra": {}}, layout


def _upgrade_pose3d_1(raw: Mapping) -> tuple[dict, str]:
    """Pose3D before FORMAT 2: flat run keys, model arguments only inside the saved config."""
    config = dict(raw["config"])
    legacy = "layernorm_eps" not in config
    args = asdict(model_config({**config, "layernorm_eps": LEGACY_LAYERNORM_EPS} if legacy else config))
    run = None
    if "epoch" in raw and "optimizer" in raw:
        selected_on = raw.get("selected_on")
        run = asdict(RunState(epoch=raw["epoch"], lr=raw.get("lr"), selected_on=selected_on,
                              best_score=raw.get("min_loss", math.inf),
                              best_units="px" if selected_on == "val" else "mm",
                              best_epoch=raw.get("best_epoch"), results=raw.get("results"), rng=raw.get("rng")))
    return {"model_pos": extract_state_dict(raw), "model_args": args, "config": config, "run": run,
            "optimizer": raw.get("optimizer"), "extra": raw.get("extra") or {}}, \
        "pose3d-1-legacy-eps" if legacy else "pose3d-1"


# -- state_dicts ----------------------------------------------------------------------------------
def clean_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DDP (``module.``) and torch.compile (``_orig_mod.``) prefixes from every key."""
    def clean(key: str) -> str:
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        return key
    return {clean(k): v for k, v in state_dict.items()}


def extract_state_dict(obj: Mapping) -> dict[str, torch.Tensor]:
    """The model state_dict inside a checkpoint dict (``model_pos``/``model``/``state_dict``) or
    ``obj`` itself, prefixes stripped."""
    for key in STATE_DICT_KEYS:
        if key in obj and isinstance(obj[key], Mapping):
            return clean_state_dict(obj[key])
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return clean_state_dict(obj)
    raise CheckpointMismatchError(f"no model weights found: expected a state_dict or one of the keys "
                                  f"{STATE_DICT_KEYS}, got keys {sorted(map(str, obj))[:10]}")


def model_args_of(model: torch.nn.Module) -> dict:
    """``asdict`` of the model's construction arguments (a DSTformer's ``config``)."""
    return asdict(model.config) if dataclasses.is_dataclass(getattr(model, "config", None)) else {}


# -- what a training checkpoint takes from the running process ----------------------------------
def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def rng_state() -> dict:
    """The torch CPU RNG state (and the CUDA ones when present)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
