"""Configuration: YAML files with a closed set of keys, resolved in a fixed order.

Resolution order (later wins): the defaults below, the ``--config`` YAML, the ``--hyper_cfg``
YAML (hypergraph partition), the ``--distill_cfg`` YAML (stored under ``cfg.distill``), then
explicit command-line values (``--version``, ``--hyper_relation_bias``, ``--set key=value``).

A key that is not listed here is an error naming the key and the file, so a typo never silently
falls back to a default. The resolved config is saved next to every checkpoint.
"""
from __future__ import annotations

import copy
import os
from typing import Any, Iterable, Mapping

import yaml
from easydict import EasyDict

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

# Keys of a --distill_cfg file (reference D); stored under cfg.distill.
DISTILL_DEFAULTS: dict[str, Any] = {
    "teacher_ckpt": None, "student_ckpt": None, "distiller_ckpt": None,
    "middle_ids_t": [0, 1, 2, 3, 4], "middle_ids_s": [0, 1, 2, 3, 4],
    "common_kd_alpha": 0.0, "middle_kd_alpha": 1.0,
    "t_dep": None, "s_dep": None, "t_cs": None, "s_cs": None, "t_f": None, "s_f": None,
    "generation": False, "generation_tds": 2, "generation_alpha": 1.0,
}


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message says which key and file."""


def read_yaml(path: str) -> dict:
    """Read a YAML mapping, with a clear error if the file is missing or not a mapping."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path!r}")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value, got {type(data).__name__}")
    return data


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
    cfg["distill"] = distill
    if overrides:
        _merge_checked(cfg, {k: v for k, v in overrides.items() if v is not None},
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


def to_plain(cfg: Mapping) -> dict:
    """EasyDict -> plain nested dict/list (YAML/JSON serialisable, weights_only-safe)."""
    if isinstance(cfg, Mapping):
        return {str(k): to_plain(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_plain(v) for v in cfg]
    return cfg


def save_config(cfg: Mapping, path: str) -> None:
    """Write the resolved config as YAML (atomically)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(to_plain(cfg), f, sort_keys=False)
    os.replace(tmp, path)
