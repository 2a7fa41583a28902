"""Configuration: one declarative schema of every key, YAML files resolved in a fixed order.

Resolution order (later wins): the defaults in :data:`KEYS`, the ``--config`` YAML, the
``--hyper_cfg`` YAML (hyperedge partition), the ``--distill_cfg`` YAML (stored under
``cfg.distill``), then explicit command-line values (``--set key=value`` and the flags
``--version``, ``--hyper_relation_bias``, ... of :mod:`lib.config.cli`; a flag wins over ``--set``
only when it is given). ``null`` in a file or in ``--set key=null`` means None.

Every key has one default, one check (type and range), a meaning and the entry points that read
it; docs/config.md is rendered from this table (:mod:`lib.config.docs`). A key that is not listed
is an error naming the key and the file, so a typo never silently falls back to a default; the
MotionBERT keys Pose3D does not implement (:data:`REJECTED`) are an error saying so. The resolved
config is saved next to every checkpoint as ``config.yaml`` and is itself a valid ``--config``: a
config file may also hold the hyperedge keys and a ``distill:`` mapping (the sections a resolved
config carries), read as if they came from ``--hyper_cfg`` and ``--distill_cfg`` files listed
before any given ones; ``config_path`` (the file a run was resolved from) is provenance, replaced
by the path now loaded.
"""
from __future__ import annotations

import copy
import difflib
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import yaml
from easydict import EasyDict

from lib.config.types import Bool, Choice, Float, Int, Invalid, ListOf, Optional, Partition, Str
from lib.data.synthetic import SIZES
from lib.errors import ConfigError
from lib.io import load_yaml, write_yaml

TRAIN, DISTILL, EVAL, VIS = "train.py", "train_distill.py", "evaluate.py", "vis_attn.py"
EXPORT, WILD = "deployment/deployment_pose3d.py", "deployment/infer_wild.py"
ENTRY_POINTS = (TRAIN, DISTILL, EVAL, VIS, EXPORT, WILD)
TRAINING = (TRAIN, DISTILL)                  # the training loop (train.py -e evaluates only)
SCORING = (TRAIN, DISTILL, EVAL)             # the test-set evaluation
SOURCE = (TRAIN, DISTILL, EVAL, VIS)         # read the H36M source file

# Which file a group's keys live in (the sections of docs/config.md, in order).
SECTIONS = {"model": "config", "training": "config", "fine-tuning": "config", "data": "config",
            "loss": "config", "evaluation/selection": "config", "hyperedge file": "hyper",
            "distill file": "distill"}
FILE_FLAGS = {"config": "--config", "hyper": "--hyper_cfg", "distill": "--distill_cfg"}


@dataclass(frozen=True)
class Key:
    """One config key: default, check (:mod:`lib.config.types`), one-line meaning, readers, group."""

    name: str
    default: Any
    check: Callable[[Any], Any]
    meaning: str
    readers: tuple[str, ...]
    group: str
    note: str = ""               # appended to a bad value's error (e.g. what Pose3D implements)
    kept: bool = False           # a resume must keep the value: it changes what the scores mean (see RESUME_RULE)

    @property
    def section(self) -> str:
        return SECTIONS[self.group]


def _keys(group: str, readers: tuple[str, ...], *rows, kept=()) -> list[Key]:
    """Rows ``(name, default, check, meaning[, note])`` of one group, all read by ``readers``;
    ``kept``: the names (or ``ALL``) a resume must keep (:func:`resume_differences`)."""
    return [Key(row[0], row[1], row[2], row[3], readers, group, *row[4:],
                kept=kept is ALL or row[0] in kept) for row in rows]


ALL = object()
# Why a key is ``kept``: a resumed run compares its new validation scores with the best score of
# the epochs before, and keeps its weights; a key that changes the model's shape, the data (clips,
# strides, source, training cameras, 2D input), the targets or the selection split makes those
# scores incomparable (or the weights unusable). Keys that only steer the optimisation (epochs,
# learning rate, batch size, loss weights, augmentation, workers, precision) may change: the
# selection metric (P1 on the selection split) is computed the same way whatever they are.
RESUME_RULE = ("the model's shape, the data (source, clips, strides, training cameras, 2D input), the targets "
               "(rootrel) and the selection split; optimisation keys (epochs, learning rate, batch size, loss "
               "weights, augmentation, precision, workers) may change")


POSITIVE, COUNT = Int(lo=1), Int(lo=0)
WEIGHT = Float(lo=0)
PATH, OPT_PATH = Str(), Optional(Str())
NOT_IN_HYPERGRAPH = "lib/model/modules/hypergraph.py and lib/model/dstformer.py implement only this value"

KEYS: tuple[Key, ...] = (
    *_keys("model", ENTRY_POINTS,
        ("version", 1, Int(choices=(1, 2)), "1 = DSTformer (MotionBERT), 2 = hypergraph-biased DSTformer"),
        ("dim_feat", 512, POSITIVE, "channels of every transformer block"),
        ("dim_rep", 512, POSITIVE, "channels of the representation layer before the 3D head"),
        ("depth", 5, POSITIVE, "number of spatio-temporal block pairs"),
        ("num_heads", 8, POSITIVE, "attention heads (must divide dim_feat)"),
        ("mlp_ratio", 2, Float(lo=0, lo_open=True), "MLP hidden width = dim_feat x this"),
        ("maxlen", 243, POSITIVE, "frames of the temporal position embedding (longest clip)"),
        ("num_joints", 17, Int(choices=(17,)), "joints per frame (H36M-17)",
         "the data, skeleton and hypergraph are H36M-17 only"),
        ("att_fuse", True, Bool(), "fuse the two stream orders with learned weights (else average)"),
        ("drop_path_rate", 0.0, Float(lo=0, hi=1, hi_open=True), "stochastic depth rate of the last block"),
        ("dropout", 0.0, Float(lo=0, hi=1, hi_open=True), "dropout of embeddings, attention projections, MLPs"),
        ("layernorm_eps", 1e-6, Float(lo=0, lo_open=True), "eps of every LayerNorm (MotionBERT's 1e-6)"),
        ("hyper_relation_bias", "uniform", Choice("none", "uniform"),
         "version 2: joint-joint relation bias init ('none' identity, 'uniform' skeleton adjacency)"),
        ("no_conf", False, Bool(), "drop the 2D confidence channel (model input x, y only)"),
        ("causal", False, Bool(), "temporal attention sees only the current and past frames (a streaming model "
         "without look-ahead; docs/inference.md, 'Streaming')"),
        kept=("version", "dim_feat", "dim_rep", "depth", "num_heads", "mlp_ratio", "maxlen", "num_joints",
              "att_fuse", "hyper_relation_bias", "no_conf", "causal"),
    ),
    *_keys("training", TRAINING,
        ("epochs", 120, POSITIVE, "training epochs"),
        ("batch_size", 32, POSITIVE, "clips per step (per process under DDP)"),
        ("learning_rate", 2e-4, Float(lo=0, lo_open=True), "AdamW learning rate of epoch 0"),
        ("weight_decay", 0.01, WEIGHT, "AdamW weight decay"),
        ("lr_decay", 0.99, Float(lo=0, hi=1, lo_open=True), "learning rate x this after every epoch"),
        ("checkpoint_frequency", 30, POSITIVE, "keep epoch_N.bin every N epochs"),
        ("num_workers", 2, COUNT, "DataLoader worker processes"),
        ("precision", "fp32", Choice("fp32", "bf16", "auto"),
         "training step precision: fp32, bf16 autocast, or auto (time both on the run's model and batch, "
         "pick the faster; weights, optimizer, loss and evaluation stay fp32)"),
        ("bf16", False, Bool(), "true = precision bf16 (the --bf16 flag)"),
        ("compile", False, Bool(), "torch.compile the model"),
        ("max_iters_per_epoch", 0, COUNT, "stop each epoch after this many steps (0 = whole epoch)"),
        ("flip", True, Bool(), "random left-right flip augmentation (p = 0.5 per clip)"),
    ),
    *_keys("training", (TRAIN, DISTILL, EVAL, EXPORT, WILD),
        ("rootrel", True, Bool(), "static (root-relative) targets; false = dynamic/global targets"),
        kept=ALL,
    ),
    *_keys("fine-tuning", TRAINING,
        ("finetune", False, Bool(), "this config fine-tunes: pretrained (or --pretrained) is required"),
        ("pretrained", None, OPT_PATH, "initial weights: a checkpoint file or a run folder (latest_epoch.bin)"),
        ("backbone_lr_mult", 1.0, WEIGHT, "lr of the pretrained parameters = learning_rate x this"),
        ("freeze_backbone_epochs", 0, COUNT, "pretrained parameters get lr 0 for the first N epochs"),
        ("temp_embed_resize", "auto", Choice("auto", "interpolate"),
         "pretrained clip length differs: 'auto' truncates or interpolates, 'interpolate' always interpolates"),
    ),
    *_keys("data", SOURCE,
        ("dt_root", "data/motion3d/H36M-SH", PATH, "folder of the H36M source pickle"),
        ("dt_file", "h36m_sh_conf_cam_source_final.pkl", PATH, "name of the H36M source pickle"),
        ("clip_len", 243, POSITIVE, "frames per clip (<= maxlen)"),
        ("data_stride", 81, POSITIVE, "frames between the starts of training clips (after sample_stride)"),
        ("sample_stride", 2, POSITIVE, "temporal downsampling tds: keep every n-th frame"),
        ("synthetic_data", None, Optional(Choice(*SIZES)),
         "size of the synthetic source to generate when dt_file is missing (null: never generate)"),
        ("synthetic_geometric", 0.0, Float(lo=0, hi=1),
         "share of generated training sequences replaced by geometric ones (any joint angles and orientation)"),
        kept=ALL,
    ),
    *_keys("data", TRAINING,
        ("data_root", "data/motion3d/", PATH, "root of the clip folders"),
        ("subset_list", ["H36M-SH/Mixste_Style_v2"], ListOf(Str(), min_len=1),
         "clip folders under data_root, concatenated"),
        ("clip_store", "auto", Choice("auto", "pkl", "npy"),
         "clip reader: 'pkl' per-clip pickles, 'npy' fast store, 'auto' the fast one when valid"),
        ("random_cameras", False, Bool(),
         "train on the source's world joints seen by a new random camera per draw (needs joint3d_world)"),
        kept=("data_root", "subset_list", "random_cameras"),
    ),
    *_keys("data", SCORING,
        ("gt_2d", False, Bool(), "ground-truth 2D input instead of detections; also the --gt_2d flag"),
        kept=ALL,
    ),
    *_keys("loss", TRAINING,
        ("lambda_3d_pos", 1.0, WEIGHT, "weight of MPJPE"),
        ("lambda_scale", 0.5, WEIGHT, "weight of scale-normalised MPJPE (N-MPJPE)"),
        ("lambda_3d_velocity", 20.0, WEIGHT, "weight of the velocity (frame difference) error"),
        ("lambda_tcl", 0.0, WEIGHT, "weight of the temporal consistency loss"),
        ("lambda_lv", 0.0, WEIGHT, "weight of the limb-length variance loss"),
        ("lambda_lg", 0.0, WEIGHT, "weight of the limb-length error against the ground truth"),
        ("lambda_a", 0.0, WEIGHT, "weight of the joint-angle error"),
        ("lambda_av", 0.0, WEIGHT, "weight of the joint-angle velocity error"),
    ),
    *_keys("evaluation/selection", TRAINING,
        ("eval_frequency", 1, POSITIVE, "evaluate every N epochs (and after the last)"),
        ("no_eval", False, Bool(), "skip the evaluation during training"),
        ("select_on", "val", Choice("val", "test"),
         "split that picks best_epoch.bin: 'val' (held out from training) or 'test' (the references')"),
        ("val_fraction", 0.05, Float(lo=0, hi=0.5),
         "share of training sequences (all cameras of a sequence together) held out for validation"),
        ("val_subjects", None, Optional(ListOf(Str(r"S\d+", "S8"), min_len=1)),
         "hold out these training subjects (e.g. [S8]) instead of val_fraction"),
        kept=("select_on", "val_fraction", "val_subjects"),
    ),
    *_keys("evaluation/selection", SCORING,
        ("eval_full_coverage", True, Bool(), "also score every test frame (all tds offsets, video tails)"),
        ("recipe", None, Optional(Str()), "name of the recipe the config follows, written in every results table"),
    ),
    *_keys("hyperedge file", (),
        ("spatial_mode", "hyper_dependent_common", Choice("hyper_dependent_common"),
         "EHGFormer's spatial attention mode (checked only)", NOT_IN_HYPERGRAPH),
        ("hyper_head", 1, Int(choices=(1,)), "EHGFormer's hypergraph heads (checked only)", NOT_IN_HYPERGRAPH),
        ("hyper_multi_merge_mode", "none", Choice("none"),
         "EHGFormer's merge of several partitions (checked only)", NOT_IN_HYPERGRAPH),
        ("dataset", "h36m", Choice("h36m"), "EHGFormer's skeleton name (checked only)", NOT_IN_HYPERGRAPH),
    ),
    *_keys("hyperedge file", ENTRY_POINTS,
        ("joint_label", None, Optional(Partition(17)),
         "version 2: [[hyperedge id of each of the 17 joints]], ids 0..K-1"),
        kept=ALL,
    ),
    *_keys("distill file", (DISTILL,),
        ("teacher_ckpt", None, OPT_PATH,
         "teacher checkpoint (null: checkpoint/pose3d/h36m[_global]/best_epoch.bin by rootrel)"),
        ("student_ckpt", None, OPT_PATH, "initial student weights (any checkpoint with model_pos)"),
        ("distiller_ckpt", None, OPT_PATH, "initial distiller weights (a distillation checkpoint)"),
        ("middle_ids_t", [], ListOf(COUNT), "teacher layers paired with middle_ids_s"),
        ("middle_ids_s", [], ListOf(COUNT), "student layers that learn the paired teacher layers"),
        ("common_kd_alpha", 0.5, WEIGHT, "weight of MPJPE(student pose, teacher pose)"),
        ("middle_kd_alpha", 0.5, WEIGHT, "weight of the feature mimicking terms"),
        ("t_dep", None, Optional(POSITIVE), "expected teacher depth (null: no check)"),
        ("s_dep", None, Optional(POSITIVE), "expected student depth = depth (null: no check)"),
        ("t_cs", None, Optional(POSITIVE), "expected teacher dim_feat (null: no check)"),
        ("s_cs", None, Optional(POSITIVE), "expected student dim_feat (null: no check)"),
        ("t_f", None, Optional(POSITIVE), "expected teacher maxlen (null: no check)"),
        ("s_f", None, Optional(POSITIVE), "expected student maxlen (null: no check)"),
        ("generation", False, Bool(), "reconstruct the last pair's teacher features from masked student ones"),
        ("generation_tds", 2, Int(lo=2), "generation keeps every n-th frame of the student features"),
        ("generation_alpha", 1.0, WEIGHT, "weight of the generation term"),
        kept=("middle_ids_t", "middle_ids_s", "generation", "generation_tds"),
    ),
)

SCHEMA: dict[str, Key] = {key.name: key for key in KEYS}

# MotionBERT augmentation keys that Pose3D does not implement: an error, never silently ignored.
REJECTED = {
    "partial_train": "MotionBERT's training on a fraction of the data",
    "mask_ratio": "MotionBERT's random joint masking",
    "mask_T_ratio": "MotionBERT's random frame masking",
    "noise": "MotionBERT's 2D noise augmentation",
    "synthetic": "MotionBERT's synthetic 2D augmentation",
}


def _defaults(section: str) -> dict[str, Any]:
    return {k.name: k.default for k in KEYS if k.section == section}


TRAIN_DEFAULTS: dict[str, Any] = _defaults("config")
HYPER_DEFAULTS: dict[str, Any] = _defaults("hyper")
DISTILL_DEFAULTS: dict[str, Any] = _defaults("distill")

DISTILL_PREFIX = "distill."   # --set distill.KEY=VALUE overrides a --distill_cfg key
CLI = "the command line (--set)"
CLI_DISTILL = "the command line (--set distill.KEY=VALUE)"


def read_yaml(path: str) -> dict:
    """Read a YAML mapping (see :func:`lib.io.load_yaml` for the errors)."""
    return load_yaml(path)


def check_value(name: str, value: Any, source: str) -> Any:
    """``value`` of key ``name`` checked and converted by its schema entry; ``source`` names the file."""
    key = SCHEMA[name]
    try:
        return key.check(value)
    except Invalid:
        note = f" ({key.note})" if key.note else ""
        raise ConfigError(f"{name!r} in {source} must be {key.check.describe}, got {value!r}{note}") from None


def _check_known(name: str, section: str, source: str) -> None:
    if name in REJECTED:
        raise ConfigError(f"{name!r} in {source}: {REJECTED[name]} is not implemented in Pose3D, so the key "
                          "would do nothing; remove it")
    known = {k.name for k in KEYS if k.section == section or (section == "cli" and k.section != "distill")}
    if name not in known:
        match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        raise ConfigError(f"unknown config key {name!r} in {source}{hint}")


def _merge(base: dict, origins: dict, update: Mapping, section: str, source: str) -> None:
    """Check and copy ``update`` into ``base``; ``origins`` remembers where each value came from."""
    for name, value in update.items():
        _check_known(name, section, source)
        base[name] = check_value(name, value, source)
        origins[name] = source


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a ``key=value`` command-line override; the value is read as YAML (1e-4, true, [1,2], null)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"override {text!r}: the value is not valid YAML (quote it or fix the brackets)") from None


def _sections_of(data: dict, source: str) -> tuple[dict, dict, dict]:
    """A ``--config`` file's training keys, hyperedge keys and ``distill:`` mapping (a resolved
    ``config.yaml`` holds all three); its saved ``config_path`` is dropped."""
    data = dict(data)
    data.pop("config_path", None)
    distill = data.pop("distill", None) or {}
    if not isinstance(distill, dict):
        raise ConfigError(f"'distill' in {source} must be a mapping of distillation keys, got {distill!r}")
    hyper_keys = {k.name for k in KEYS if k.section == "hyper"}
    hyper = {name: data.pop(name) for name in list(data) if name in hyper_keys}
    return data, hyper, distill


def load_config(config_path: str, hyper_cfg: str | None = None, distill_cfg: str | None = None,
                overrides: Mapping[str, Any] | None = None) -> EasyDict:
    """Resolve the full config (see module docstring). ``overrides`` are explicit command-line values
    (``distill.KEY`` for the distill section); None is a value (null), not "not given"."""
    cfg, distill = copy.deepcopy(TRAIN_DEFAULTS), copy.deepcopy(DISTILL_DEFAULTS)
    cfg.update(copy.deepcopy(HYPER_DEFAULTS))
    origins: dict[str, str] = {}
    main, own_hyper, own_distill = _sections_of(read_yaml(config_path), config_path)
    _merge(cfg, origins, main, "config", config_path)
    _merge(cfg, origins, own_hyper, "hyper", config_path)
    if hyper_cfg:
        _merge(cfg, origins, read_yaml(hyper_cfg), "hyper", hyper_cfg)
    distill_origins: dict[str, str] = {}
    _merge(distill, distill_origins, own_distill, "distill", config_path)
    if distill_cfg:
        _merge(distill, distill_origins, read_yaml(distill_cfg), "distill", distill_cfg)
    overrides = dict(overrides or {})
    _merge(distill, distill_origins, {k[len(DISTILL_PREFIX):]: v for k, v in overrides.items()
                                      if k.startswith(DISTILL_PREFIX)}, "distill", CLI_DISTILL)
    _merge(cfg, origins, {k: v for k, v in overrides.items() if not k.startswith(DISTILL_PREFIX)}, "cli", CLI)
    cfg["distill"] = distill
    cfg["config_path"] = config_path
    validate(cfg, origins)
    validate_distill(distill, cfg, distill_origins)
    return EasyDict(cfg)


def _origin(origins: Mapping[str, str] | None, name: str) -> str:
    """The file (or command line) that set ``name``, or 'the defaults'."""
    return (origins or {}).get(name, "the defaults")


def _at(values: Mapping[str, Any], origins: Mapping[str, str] | None, name: str) -> str:
    """``dim_feat=60 (from cfg.yaml)``: a key, its value and where it came from, for cross-key errors."""
    return f"{name}={values[name]!r} (from {_origin(origins, name)})"


def validate(cfg: Mapping[str, Any], origins: Mapping[str, str] | None = None) -> None:
    """Cross-key rules of the resolved config (each key's own check ran when it was merged)."""
    if cfg["version"] == 2 and not cfg.get("joint_label"):
        raise ConfigError(f"{_at(cfg, origins, 'version')} needs a hyperedge partition: pass --hyper_cfg "
                          "hyper_config/method2/manual_joint_label1.yaml (or set joint_label)")
    if cfg["clip_len"] > cfg["maxlen"]:
        raise ConfigError(f"{_at(cfg, origins, 'clip_len')} exceeds the model's {_at(cfg, origins, 'maxlen')}")
    if cfg["dim_feat"] % cfg["num_heads"]:
        raise ConfigError(f"{_at(cfg, origins, 'dim_feat')} must be divisible by {_at(cfg, origins, 'num_heads')}")
    if cfg["select_on"] == "val" and not cfg["val_fraction"] and not cfg["val_subjects"]:
        raise ConfigError(f"{_at(cfg, origins, 'select_on')} needs a validation split but "
                          f"{_at(cfg, origins, 'val_fraction')} and {_at(cfg, origins, 'val_subjects')}; "
                          "set one of them, or select_on: test")


# Student sizes that a distill file may state: distill key -> training config key.
STUDENT_SIZE_KEYS = {"s_dep": "depth", "s_cs": "dim_feat", "s_f": "maxlen"}


def validate_distill(distill: Mapping[str, Any], cfg: Mapping[str, Any],
                     origins: Mapping[str, str] | None = None) -> None:
    """Check the ``--distill_cfg`` section against itself and the student config.

    The teacher-dependent checks (``t_dep``/``t_cs``/``t_f``, teacher layer ids, rootrel) need
    the teacher checkpoint and live in ``lib.engine.distill``.
    """
    for name in DISTILL_DEFAULTS:
        check_value(name, distill[name], _origin(origins, name))
    ids_t, ids_s = distill["middle_ids_t"], distill["middle_ids_s"]
    if len(ids_t) != len(ids_s):
        raise ConfigError(f"distill {_at(distill, origins, 'middle_ids_t')} and "
                          f"{_at(distill, origins, 'middle_ids_s')} must pair up (same length)")
    bad = [i for i in ids_s if i >= cfg["depth"]]
    if bad:
        raise ConfigError(f"distill {_at(distill, origins, 'middle_ids_s')}: layer(s) {bad} do not "
                          f"exist in a student of depth {cfg['depth']}")
    _validate_weights(distill, origins)
    for key, train_key in STUDENT_SIZE_KEYS.items():
        if distill[key] is not None and distill[key] != cfg[train_key]:
            raise ConfigError(f"distill {_at(distill, origins, key)} but the student config has "
                              f"{train_key}={cfg[train_key]}; the student's size comes from --config (so "
                              f"evaluate.py, vis_attn.py and the deployment build the same model): set {train_key} "
                              f"there or drop {key}")


def _validate_weights(distill: Mapping[str, Any], origins: Mapping[str, str] | None) -> None:
    """Each distillation term that is switched on has a weight, and generation has its layer pair."""
    ids_s = distill["middle_ids_s"]
    if distill["generation"] and not distill["middle_ids_t"]:
        raise ConfigError(f"distill {_at(distill, origins, 'generation')} needs a layer pair: it reconstructs "
                          "the teacher features of the last pair in middle_ids_t/middle_ids_s, and both are empty")
    if len(ids_s) > int(distill["generation"]) and not distill["middle_kd_alpha"]:
        raise ConfigError(f"distill middle_ids_s {ids_s} pair layers for feature mimicking but middle_kd_alpha is 0 "
                          f"(from {_origin(origins, 'middle_kd_alpha')}); give it a weight or empty "
                          "middle_ids_t/middle_ids_s")
    if distill["generation"] and not distill["generation_alpha"]:
        raise ConfigError(f"distill generation is on but generation_alpha is 0 (from "
                          f"{_origin(origins, 'generation_alpha')}); give it a weight or set generation: false")


def to_plain(cfg: Mapping) -> dict:
    """EasyDict -> plain nested dict/list (YAML/JSON serialisable, weights_only-safe)."""
    if isinstance(cfg, Mapping):
        return {str(k): to_plain(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_plain(v) for v in cfg]
    return cfg


def config_differences(saved: Mapping, cfg: Mapping) -> list[tuple[Key, str, Any, Any]]:
    """``(key, name, saved value, value now)`` for each schema key whose value differs between the
    config a run was trained with (``saved``, from its checkpoint) and ``cfg``; a resume refuses
    those with ``key.kept``. Keys of the distill file are named ``distill.KEY``; a key the saved config lacks (an older run) had its default
    then; paths are compared normalised."""
    out = []
    for key in KEYS:
        prefix, now, before = "", cfg, saved
        if key.section == "distill":
            prefix, now, before = DISTILL_PREFIX, cfg.get("distill") or {}, saved.get("distill") or {}
        a, b = before.get(key.name, key.default), now.get(key.name, key.default)
        if _comparable_value(a, key) != _comparable_value(b, key):
            out.append((key, prefix + key.name, a, b))
    return out


def _comparable_value(value: Any, key: Key) -> Any:
    if key.check is PATH and isinstance(value, str):
        return os.path.normpath(value)
    if isinstance(value, (list, tuple)):
        return [list(v) if isinstance(v, (list, tuple)) else v for v in value]
    return value


def save_config(cfg: Mapping, path: str) -> None:
    """Write the resolved config as YAML (atomically)."""
    write_yaml(path, to_plain(cfg))

