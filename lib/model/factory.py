"""Build models from a resolved config and move weights in and out of them.

Every script builds its model with :func:`build_model` and loads a checkpoint into it with
:func:`load_model` (build + :func:`load_weights` of :func:`extract_state_dict`), so MotionBERT
checkpoints (``model_pos``, ``module.`` prefixes) and Pose3D checkpoints load the same way.

LayerNorm eps of a checkpoint (:func:`resolve_layernorm_eps`, the one rule every loader uses):
a Pose3D checkpoint (it carries a ``config`` mapping) saved with ``layernorm_eps`` is rebuilt with
that value; one saved before the key existed used PyTorch's default 1e-5; a MotionBERT checkpoint
(no Pose3D ``config``) was trained with MotionBERT's 1e-6.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from lib.errors import CheckpointError
from lib.io import load_checkpoint
from lib.model.dstformer import DSTformer, DSTformerConfig

WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Model config keys worth comparing when a checkpoint does not fit the command line's config.
ARCH_KEYS = ("version", "dim_feat", "dim_rep", "depth", "num_heads", "mlp_ratio", "maxlen",
             "no_conf", "joint_label")
STATE_DICT_KEYS = ("model_pos", "model", "state_dict")
DEFAULT_LAYERNORM_EPS = 1e-6     # MotionBERT's load_backbone and EHGFormer's blocks
LEGACY_LAYERNORM_EPS = 1e-5      # Pose3D checkpoints saved before the config had layernorm_eps
MOTIONBERT_LAYERNORM_EPS = 1e-6  # every released MotionBERT checkpoint
EPS_ORIGINS = {
    "motionbert": "a MotionBERT checkpoint: no Pose3D config inside; MotionBERT trains with 1e-6",
    "legacy": "a Pose3D checkpoint saved before checkpoints recorded layernorm_eps; those runs used 1e-5",
    "saved": "the layernorm_eps saved in the checkpoint's config",
}


class CheckpointMismatchError(CheckpointError):
    """A state_dict does not fit the model (missing/unexpected keys or different shapes)."""


def model_config(cfg: Mapping) -> DSTformerConfig:
    """Map a resolved training config (EasyDict/dict, see lib/config/schema.py) to a DSTformerConfig."""
    version = int(cfg.get("version", 1))
    label = cfg.get("joint_label")
    return DSTformerConfig(
        dim_in=2 if cfg.get("no_conf", False) else 3, dim_feat=cfg["dim_feat"], dim_rep=cfg["dim_rep"],
        depth=cfg["depth"], num_heads=cfg["num_heads"], mlp_ratio=cfg["mlp_ratio"],
        num_joints=cfg.get("num_joints", 17), maxlen=cfg["maxlen"], att_fuse=cfg.get("att_fuse", True),
        drop_path_rate=cfg.get("drop_path_rate", 0.0), dropout=cfg.get("dropout", 0.0), version=version,
        hyper_relation_bias=cfg.get("hyper_relation_bias", "uniform"),
        joint_label=tuple(label[0]) if version == 2 else None,
        layernorm_eps=float(cfg.get("layernorm_eps", DEFAULT_LAYERNORM_EPS)))


def checkpoint_layernorm_eps(checkpoint: Mapping) -> tuple[float, str]:
    """``(eps, origin)``: the LayerNorm eps ``checkpoint`` was trained with; ``origin`` is a key of ``EPS_ORIGINS``."""
    saved = checkpoint.get("config")
    if not isinstance(saved, Mapping):
        return MOTIONBERT_LAYERNORM_EPS, "motionbert"
    if "layernorm_eps" not in saved:
        return LEGACY_LAYERNORM_EPS, "legacy"
    return float(saved["layernorm_eps"]), "saved"


def resolve_layernorm_eps(checkpoint: Mapping, cfg: Mapping) -> tuple[float, str | None]:
    """The eps to build a model with to run ``checkpoint``, and a note to print (``None``: nothing to say).

    The checkpoint's eps always wins over ``cfg.layernorm_eps``: a model reproduces its outputs
    only with the eps it was trained with. A legacy Pose3D checkpoint (eps 1e-5) always gets a
    note; the others get one when ``cfg`` asks for another value.
    """
    eps, origin = checkpoint_layernorm_eps(checkpoint)
    wanted = float(cfg.get("layernorm_eps", DEFAULT_LAYERNORM_EPS))
    if eps == wanted and origin != "legacy":
        return eps, None
    note = f"built with LayerNorm eps {eps:g}: {EPS_ORIGINS[origin]}"
    return eps, note if eps == wanted else f"{note}, not the command line's layernorm_eps {wanted:g}"


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (buffers such as ``joint_label`` are not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def build_model(cfg: Mapping, verbose: bool = True, layernorm_eps: float | None = None) -> nn.Module:
    """Build the DSTformer of ``cfg.version`` (1 = MotionBERT, 2 = hypergraph) from a resolved config.

    ``layernorm_eps`` overrides ``cfg.layernorm_eps`` (a checkpoint's eps, :func:`resolve_layernorm_eps`).
    """
    config = model_config(cfg if layernorm_eps is None else {**cfg, "layernorm_eps": layernorm_eps})
    model = DSTformer(config)
    if verbose:
        name = "DSTformer" if config.version == 1 else "HypergraphDSTformer"
        print(f"Model: {name}, version {config.version}, {count_parameters(model) / 1e6:.2f} M parameters")
    return model


def clean_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DDP (``module.``) and torch.compile (``_orig_mod.``) prefixes from every key."""
    def clean(key: str) -> str:
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        return key
    return {clean(k): v for k, v in state_dict.items()}


def extract_state_dict(obj: Mapping) -> dict[str, torch.Tensor]:
    """The model state_dict inside a checkpoint (``model_pos``/``model``/``state_dict``) or ``obj`` itself."""
    for key in STATE_DICT_KEYS:
        if key in obj and isinstance(obj[key], Mapping):
            return clean_state_dict(obj[key])
    if all(isinstance(v, torch.Tensor) for v in obj.values()):
        return clean_state_dict(obj)
    raise CheckpointMismatchError(f"no model weights found: expected a state_dict or one of the keys "
                                  f"{STATE_DICT_KEYS}, got keys {sorted(obj)[:10]}")


def state_dict_differences(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable list of missing keys, unexpected keys and shape differences."""
    own = model.state_dict()
    missing = [f"missing in checkpoint: {k} {tuple(v.shape)}" for k, v in own.items() if k not in state_dict]
    unexpected = [f"unexpected in checkpoint: {k} {tuple(v.shape)}" for k, v in state_dict.items() if k not in own]
    shapes = [f"shape differs: {k} model {tuple(own[k].shape)} vs checkpoint {tuple(v.shape)}"
              for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    return missing + unexpected + shapes


def tensor_differences(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> list[str]:
    """Keys present in only one state_dict, or whose tensors are not bit-identical (exact resume
    and fault-injection checks compare checkpoints with this)."""
    only = [f"only in one: {k}" for k in sorted(set(a) ^ set(b))]
    return only + [f"differs: {k}" for k in sorted(set(a) & set(b)) if not torch.equal(a[k], b[k])]


def shorten(lines: list[str], limit: int = 40) -> list[str]:
    """At most ``limit`` lines, then a count of the rest."""
    return lines if len(lines) <= limit else lines[:limit] + [f"... and {len(lines) - limit} more"]


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = True) -> nn.Module:
    """Load ``state_dict`` (prefixes stripped) into ``model``.

    Raises :class:`CheckpointMismatchError` listing every differing key when ``strict``; otherwise
    loads the keys whose names and shapes match and ignores the rest.
    """
    state_dict = clean_state_dict(state_dict)
    problems = state_dict_differences(model, state_dict)
    if problems and strict:
        raise CheckpointMismatchError(
            f"checkpoint does not fit {type(model).__name__} ({len(problems)} differences; probably a "
            "checkpoint of another architecture, version or config):\n  " + "\n  ".join(shorten(problems)))
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape},
                          strict=False)
    return model


def load_model(cfg: Mapping, path: str, verbose: bool = False, checkpoint: Mapping | None = None) -> nn.Module:
    """The config's model with the weights of the checkpoint at ``path`` (strict), in eval mode.

    The one "build model + load weights" helper of every entry point (evaluate, heatmaps, export,
    video lifting, distillation teacher). Raises :class:`CheckpointError` for an unreadable file
    and :class:`CheckpointMismatchError` naming the differing keys and, when the checkpoint stores
    its training config, the architecture settings that differ from ``cfg``. ``checkpoint``: the
    already loaded contents of ``path``, when the caller needed them first. The LayerNorm eps is
    the checkpoint's (:func:`resolve_layernorm_eps`), with a printed note when that needs saying.
    """
    checkpoint = load_checkpoint(path) if checkpoint is None else checkpoint
    eps, note = resolve_layernorm_eps(checkpoint, cfg)
    if note:
        print(f"note: {path}: {note}", flush=True)
    model = build_model(cfg, verbose=verbose, layernorm_eps=eps)
    try:
        load_weights(model, extract_state_dict(checkpoint))
    except CheckpointMismatchError as err:
        raise CheckpointMismatchError(f"{path} does not match --config/--version/--hyper_cfg: {err}{config_hint(cfg, checkpoint.get('config'))}") from None
    return model.eval()


def config_hint(cfg: Mapping, saved) -> str:
    """Lines naming the architecture keys whose value differs between ``cfg`` and ``saved``."""
    if not isinstance(saved, Mapping):
        return ""
    diffs = [f"  {k}: command line {cfg.get(k)!r}, checkpoint {saved.get(k)!r}"
             for k in ARCH_KEYS if k in saved and cfg.get(k) != saved.get(k)]
    if not diffs:
        return ""
    return ("\nThe checkpoint was trained with a different model config (pass the run's --config, "
            "--hyper_cfg and --version):\n" + "\n".join(diffs))
