"""Build models from a resolved config and move weights in and out of them.

Every script builds its model with :func:`build_model` and loads a checkpoint into it with
:func:`load_model`, which reads the file through :func:`lib.model.checkpoint.read_checkpoint`, so
MotionBERT checkpoints (``model_pos``, ``module.`` prefixes) and every Pose3D layout load the same
way. The LayerNorm eps of the built model is the checkpoint's (``model_args``): a model reproduces
its outputs only with the eps it was trained with.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from lib.model.checkpoint import (EPS_ORIGINS, Checkpoint, CheckpointMismatchError, clean_state_dict,
                                  extract_state_dict, model_config, read_checkpoint)
from lib.model.dstformer import DSTformer

__all__ = ["CheckpointMismatchError", "build_model", "clean_state_dict", "count_parameters", "extract_state_dict",
           "layernorm_eps_note", "load_model", "load_weights", "model_config", "state_dict_differences",
           "tensor_differences"]
# Model config keys worth comparing when a checkpoint does not fit the command line's config.
ARCH_KEYS = ("version", "dim_feat", "dim_rep", "depth", "num_heads", "mlp_ratio", "maxlen", "dim_in", "joint_label")


def layernorm_eps_note(checkpoint: Checkpoint, wanted: float) -> str | None:
    """What to print when a model for ``checkpoint`` is built with its eps rather than ``wanted``
    (the command line's ``layernorm_eps``); ``None``: nothing to say. A legacy Pose3D file (1e-5)
    always gets a note."""
    eps, legacy = checkpoint.layernorm_eps, checkpoint.layout == "pose3d-1-legacy-eps"
    if eps == wanted and not legacy:
        return None
    note = f"built with LayerNorm eps {eps:g}: {EPS_ORIGINS[checkpoint.layout]}"
    return note if eps == wanted else f"{note}, not the command line's layernorm_eps {wanted:g}"


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (buffers such as ``joint_label`` are not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def build_model(cfg: Mapping, verbose: bool = True, layernorm_eps: float | None = None) -> nn.Module:
    """Build the DSTformer of ``cfg.version`` (1 = MotionBERT, 2 = hypergraph) from a resolved config.

    ``layernorm_eps`` overrides ``cfg.layernorm_eps`` (the eps of a checkpoint's ``model_args``).
    """
    config = model_config(cfg if layernorm_eps is None else {**cfg, "layernorm_eps": layernorm_eps})
    model = DSTformer(config)
    if verbose:
        name = "DSTformer" if config.version == 1 else "HypergraphDSTformer"
        print(f"Model: {name}, version {config.version}, {count_parameters(model) / 1e6:.2f} M parameters")
    return model


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


def load_model(cfg: Mapping, path: str, verbose: bool = False, checkpoint: Checkpoint | None = None) -> nn.Module:
    """The config's model with the weights of the checkpoint at ``path`` (strict), in eval mode.

    The one "build model + load weights" helper of every entry point (evaluate, heatmaps, export,
    video lifting, distillation teacher). Raises :class:`CheckpointError` for an unreadable file
    and :class:`CheckpointMismatchError` naming the differing keys and the architecture settings
    that differ from the checkpoint's ``model_args``. ``checkpoint``: the already read contents of
    ``path``, when the caller needed them first. The LayerNorm eps is the checkpoint's, with a
    printed note when that needs saying (:func:`layernorm_eps_note`).
    """
    checkpoint = read_checkpoint(path) if checkpoint is None else checkpoint
    note = layernorm_eps_note(checkpoint, model_config(cfg).layernorm_eps)
    if note:
        print(f"note: {path}: {note}", flush=True)
    model = build_model(cfg, verbose=verbose, layernorm_eps=checkpoint.layernorm_eps)
    trained_causal = checkpoint.causal
    if model.config.causal != trained_causal:      # no weights differ, so the state_dict check cannot see it
        raise CheckpointMismatchError(f"{path} was trained with causal: {str(trained_causal).lower()} (temporal "
                                      f"attention {'masked to past frames' if trained_causal else 'over the whole clip'}); "
                                      f"the config says causal: {str(model.config.causal).lower()}: pass the run's config")
    try:
        load_weights(model, checkpoint.model_state)
    except CheckpointMismatchError as err:
        raise CheckpointMismatchError(f"{path} does not match --config/--version/--hyper_cfg: {err}"
                                      f"{config_hint(model, checkpoint)}") from None
    return model.eval()


def config_hint(model: nn.Module, checkpoint: Checkpoint) -> str:
    """Lines naming the architecture arguments whose value differs between the model built from the
    command line and the checkpoint's ``model_args``."""
    ours = model.config
    diffs = [f"  {k}: command line {getattr(ours, k)!r}, checkpoint {checkpoint.model_args[k]!r}"
             for k in ARCH_KEYS if k in checkpoint.model_args and getattr(ours, k) != checkpoint.model_args[k]]
    if not diffs:
        return ""
    return ("\nThe checkpoint was trained with a different model config (pass the run's --config, "
            "--hyper_cfg and --version):\n" + "\n".join(diffs))
