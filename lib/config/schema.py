"""Configuration: YAML files with a closed set of keys, resolved in a fixed order.

Resolution order (later wins): the defaults below, the ``--config`` YAML, the ``--hyper_cfg``
YAML (hypergraph partition), the ``--distill_cfg`` YAML (stored under ``cfg.distill``), then
explicit command-line values (``--version``, ``--hyper_relation_bias``, ``--set key=value``).

A key that is not listed here is an error naming the key and the file, so a typo never silently
falls back to a default. The resolved config is saved next to every checkpoint.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping

import yaml
from easydict import EasyDict

from lib.errors import ConfigError
from lib.io import load_yaml, write_yaml

# Every key a training config may set, with its default. Names follow MotionBERT/EHGFormer.
TRAIN_DEFAULTS: dict[str, Any] = {
    # model (DSTformer, reference B1)
    "version": 1,                 # 1 = plain DSTformer, 2 = hypergraph-biased DSTformer
    "dim_feat": 512, "dim_rep": 512, "depth": 5, "num_heads": 8, "mlp_ratio": 2,
    "maxlen": 243, "num_joints": 17, "att_fuse": True,
    "drop_path_rate": 0.0, "dropout": 0.0,
    "hyper_relation_bias": "uniform",  # version 2: 'none' (identity) or 'uniform' (adjacency)
    # training
    "epochs": 120, "batch_size": 32, "learning_rate": 2e-4, "weight_decay": 0.01,
    "lr_decay": 0.99, "checkpoint_frequency": 30, "eval_frequency": 1, "no_eval": False,
    "eval_full_coverage": True,   # also score every test frame (all tds offsets, video tails)
    "finetune": False, "partial_train": None, "num_workers": 2, "bf16": False,
    "compile": False, "max_iters_per_epoch": 0,
    # fine-tuning (docs/train.md "Finetune"; lib/model/pretrained.py). finetune: true needs pretrained.
    "pretrained": None,           # checkpoint file (or run folder -> latest_epoch.bin): weights only
    "backbone_lr_mult": 1.0,      # lr of the pretrained parameters = learning_rate x this
    "freeze_backbone_epochs": 0,  # pretrained parameters get lr 0 for the first N epochs
    "temp_embed_resize": "auto",  # other clip length: 'auto' (truncate / interpolate) or 'interpolate'
    # data
    "data_root": "data/motion3d/", "subset_list": ["H36M-SH"],
    "dt_root": "data/motion3d/", "dt_file": "h36m_sh_conf_cam_source_final.pkl",
    "clip_len": 243, "data_stride": 81, "sample_stride": 2, "clip_store": "auto",
    "synthetic_data": None,       # if set: make this synthetic size when dt_file is missing
    # loss weights (reference C1)
    "lambda_3d_pos": 1.0, "lambda_scale": 0.5, "lambda_3d_velocity": 20.0, "lambda_tcl": 0.0,
    "lambda_lv": 0.0, "lambda_lg": 0.0, "lambda_a": 0.0, "lambda_av": 0.0,
    # augmentation and input
    "flip": True, "synthetic": False, "mask_ratio": 0.0, "mask_T_ratio": 0.0, "noise": False,
    "rootrel": True, "no_conf": False, "gt_2d": False,
}

# Keys of a --hyper_cfg file (reference B5). joint_label: list of one 17-entry partition.
HYPER_DEFAULTS: dict[str, Any] = {
    "spatial_mode": "hyper_dependent_common", "hyper_head": 1,
    "hyper_multi_merge_mode": "none", "dataset": "h36m", "joint_label": None,
}

# Keys of a --distill_cfg file (reference D); stored under cfg.distill. docs/distillation.md
# explains each (the weights were measured there). No layer pairs and no generation by default,
# so train.py/evaluate.py configs (which never pass a distill file) validate whatever their depth.
DISTILL_DEFAULTS: dict[str, Any] = {
    "teacher_ckpt": None,          # null: checkpoint/pose3d/h36m[_global]/best_epoch.bin by rootrel
    "student_ckpt": None,          # initial student weights (any checkpoint with model_pos)
    "distiller_ckpt": None,        # initial distiller weights (a distillation checkpoint's extra)
    "middle_ids_t": [], "middle_ids_s": [],   # paired teacher/student layer indices
    "common_kd_alpha": 0.5,        # output-level term: MPJPE(student pose, teacher pose)
    "middle_kd_alpha": 0.5,        # feature terms (mean normalised MSE over the mimicked pairs)
    "t_dep": None, "s_dep": None, "t_cs": None, "s_cs": None, "t_f": None, "s_f": None,
    "generation": False, "generation_tds": 2, "generation_alpha": 1.0,
}

DISTILL_PREFIX = "distill."   # --set distill.KEY=VALUE overrides a --distill_cfg key


def read_yaml(path: str) -> dict:
    """Read a YAML mapping (see :func:`lib.io.load_yaml` for the errors)."""
    return load_yaml(path)


def _merge_checked(base: dict, update: Mapping, known: Iterable[str], source: str) -> None:
    known = set(known)
    for key, value in update.items():
        if key not in known:
            hint = _closest(key, known)
            raise ConfigError(f"unknown config key {key!r} in {source}" + (f" (did you mean {hint!r}?)" if hint else ""))
        base[key] = _coerce(key, value, base.get(key), source)


def _coerce(key: str, value: Any, default: Any, source: str) -> Any:
    """Numbers for numeric keys: YAML reads ``2e-4`` (no dot) as a string, we read it as 0.0002."""
    if isinstance(default, bool) or not isinstance(default, (int, float)) or not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{key!r} in {source} must be a number, got {value!r}") from None
    return int(number) if isinstance(default, int) and number.is_integer() else number


def _closest(key: str, known: set) -> str | None:
    import difflib
    match = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return match[0] if match else None


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a ``key=value`` command-line override; the value is read as YAML (1e-4, true, [1,2])."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def load_config(config_path: str, hyper_cfg: str | None = None, distill_cfg: str | None = None,
                overrides: Mapping[str, Any] | None = None) -> EasyDict:
    """Resolve the full config (see module docstring). ``overrides`` are explicit CLI values."""
    cfg: dict[str, Any] = copy.deepcopy(TRAIN_DEFAULTS)
    cfg.update(copy.deepcopy(HYPER_DEFAULTS))
    _merge_checked(cfg, read_yaml(config_path), TRAIN_DEFAULTS, config_path)
    if hyper_cfg:
        _merge_checked(cfg, read_yaml(hyper_cfg), HYPER_DEFAULTS, hyper_cfg)
    distill = copy.deepcopy(DISTILL_DEFAULTS)
    if distill_cfg:
        _merge_checked(distill, read_yaml(distill_cfg), DISTILL_DEFAULTS, distill_cfg)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    _merge_checked(distill, {k[len(DISTILL_PREFIX):]: v for k, v in overrides.items() if k.startswith(DISTILL_PREFIX)},
                   DISTILL_DEFAULTS, "the command line (--set distill.KEY=VALUE)")
    cfg["distill"] = distill
    _merge_checked(cfg, {k: v for k, v in overrides.items() if not k.startswith(DISTILL_PREFIX)},
                   list(TRAIN_DEFAULTS) + list(HYPER_DEFAULTS), "the command line")
    cfg["config_path"] = config_path
    validate(cfg)
    return EasyDict(cfg)


def validate(cfg: Mapping[str, Any]) -> None:
    """Check value ranges that would otherwise fail deep inside training."""
    if cfg["version"] not in (1, 2):
        raise ConfigError(f"version must be 1 (DSTformer) or 2 (hypergraph DSTformer), got {cfg['version']!r}")
    if cfg["hyper_relation_bias"] not in ("none", "uniform"):
        raise ConfigError(f"hyper_relation_bias must be 'none' or 'uniform', got {cfg['hyper_relation_bias']!r}")
    if cfg["version"] == 2 and not cfg.get("joint_label"):
        raise ConfigError("version 2 needs a hyperedge partition: pass --hyper_cfg "
                          "hyper_config/method2/manual_joint_label1.yaml (or set joint_label)")
    if cfg["clip_len"] > cfg["maxlen"]:
        raise ConfigError(f"clip_len ({cfg['clip_len']}) exceeds the model's maxlen ({cfg['maxlen']})")
    if cfg["dim_feat"] % cfg["num_heads"]:
        raise ConfigError(f"dim_feat ({cfg['dim_feat']}) must be divisible by num_heads ({cfg['num_heads']})")
    validate_distill(cfg["distill"], cfg)


# Student sizes that a distill file may state: distill key -> training config key.
STUDENT_SIZE_KEYS = {"s_dep": "depth", "s_cs": "dim_feat", "s_f": "maxlen"}


def validate_distill(distill: Mapping[str, Any], cfg: Mapping[str, Any]) -> None:
    """Check the ``--distill_cfg`` section against itself and the student config.

    The teacher-dependent checks (``t_dep``/``t_cs``/``t_f``, teacher layer ids, rootrel) need
    the teacher checkpoint and live in ``lib.engine.distill``.
    """
    ids_t, ids_s = distill["middle_ids_t"], distill["middle_ids_s"]
    for key in ("middle_ids_t", "middle_ids_s"):
        ids = distill[key]
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            raise ConfigError(f"distill {key} must be a list of layer indices (integers >= 0), got {ids!r}")
    if len(ids_t) != len(ids_s):
        raise ConfigError(f"distill middle_ids_t {ids_t} and middle_ids_s {ids_s} must pair up (same length)")
    bad = [i for i in ids_s if i >= cfg["depth"]]
    if bad:
        raise ConfigError(f"distill middle_ids_s {ids_s}: layer(s) {bad} do not exist in a student of depth {cfg['depth']}")
    for key in ("common_kd_alpha", "middle_kd_alpha", "generation_alpha"):
        if not isinstance(distill[key], (int, float)) or isinstance(distill[key], bool) or distill[key] < 0:
            raise ConfigError(f"distill {key} must be a number >= 0, got {distill[key]!r}")
    _validate_generation(distill)
    if len(ids_s) > int(distill["generation"]) and not distill["middle_kd_alpha"]:
        raise ConfigError(f"distill middle_ids_s {ids_s} pair layers for feature mimicking but middle_kd_alpha is 0; "
                          "give it a weight or empty middle_ids_t/middle_ids_s")
    if distill["generation"] and not distill["generation_alpha"]:
        raise ConfigError("distill generation is on but generation_alpha is 0; give it a weight or set generation: false")
    for key, train_key in STUDENT_SIZE_KEYS.items():
        if distill[key] is not None and distill[key] != cfg[train_key]:
            raise ConfigError(f"distill {key}={distill[key]} but the student config has {train_key}={cfg[train_key]}; "
                              f"the student's size comes from --config (so evaluate.py, vis_attn.py and the "
                              f"deployment build the same model): set {train_key} there or drop {key}")
    for key in ("t_dep", "t_cs", "t_f"):
        if distill[key] is not None and (not isinstance(distill[key], int) or distill[key] <= 0):
            raise ConfigError(f"distill {key} must be a positive integer or null, got {distill[key]!r}")


def _validate_generation(distill: Mapping[str, Any]) -> None:
    if not isinstance(distill["generation"], bool):
        raise ConfigError(f"distill generation must be true or false, got {distill['generation']!r}")
    tds = distill["generation_tds"]
    if not isinstance(tds, int) or isinstance(tds, bool) or tds < 2:
        raise ConfigError(f"distill generation_tds must be an integer >= 2 (keep every tds-th frame), got {tds!r}")
    if distill["generation"] and not distill["middle_ids_t"]:
        raise ConfigError("distill generation needs a layer pair: it reconstructs the teacher features of the "
                          "last pair in middle_ids_t/middle_ids_s, and both lists are empty")


def to_plain(cfg: Mapping) -> dict:
    """EasyDict -> plain nested dict/list (YAML/JSON serialisable, weights_only-safe)."""
    if isinstance(cfg, Mapping):
        return {str(k): to_plain(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_plain(v) for v in cfg]
    return cfg


def save_config(cfg: Mapping, path: str) -> None:
    """Write the resolved config as YAML (atomically)."""
    write_yaml(path, to_plain(cfg))
