"""Initialise a model from a pretrained checkpoint for fine-tuning, and report what happened.

:func:`load_pretrained` copies the *weights* of a MotionBERT checkpoint (``model_pos`` with
DataParallel ``module.`` prefixes) or a Pose3D checkpoint into a freshly built model; the
optimizer, epoch, learning rate and RNG state of the checkpoint are never read. Rules:

* Same architecture: every tensor is loaded.
* Version difference: a version-1 (plain DSTformer) checkpoint in a version-2 (hypergraph) model
  loads every shared tensor; the hypergraph parameters (``attn_s.relation_bias``,
  ``attn_s.relation_alpha``, ``attn_s.edge_bias``, ``attn_s.edge_proj.weight`` of every block)
  keep their initialisation and are reported as *new*, the ``hypergraph.joint_label`` buffer
  comes from ``--hyper_cfg``. A version-2 checkpoint in a version-1 model loads the backbone and
  reports the hypergraph tensors as *unexpected* (ignored).
* ``temp_embed [1, L, 1, C]`` of another clip length ``L`` than the model's ``maxlen`` is
  resized in time (``temp_embed_resize``): ``'auto'`` keeps the first ``maxlen`` entries when
  ``L > maxlen`` (exact: the model only ever adds the first ``T`` entries to a ``T``-frame clip,
  so a 243-frame checkpoint run at 81 frames sees the same embedding as before) and linearly
  interpolates (``align_corners=True``: first and last entries kept) when ``L < maxlen``;
  ``'interpolate'`` interpolates in both directions.
* LayerNorm eps: the fine-tuned model keeps its config's ``layernorm_eps``; a note says so when
  the checkpoint was trained with another one (its ``model_args``, :mod:`lib.model.checkpoint`).
* Anything else (other width, depth, MLP size, joints, output size, another hyperedge partition,
  or, for a Pose3D checkpoint that carries its config, another ``num_heads``) raises
  :class:`~lib.model.factory.CheckpointMismatchError` naming every key and shape.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from lib.errors import CheckpointError, ConfigError
from lib.model.checkpoint import EPS_ORIGINS, Checkpoint, CheckpointMismatchError, read_checkpoint
from lib.model.factory import shorten
from lib.model.modules import Attention, HypergraphAttention

TEMP_EMBED = "temp_embed"
TEMP_EMBED_RESIZE_MODES = ("auto", "interpolate")
DEFAULT_SELECTION = "latest_epoch.bin"   # MotionBERT's -ms default when -p names a folder


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did; ``format()`` is the printed report."""
    source: str
    loaded: list[str] = field(default_factory=list)       # checkpoint tensors copied into the model
    new: list[str] = field(default_factory=list)          # model parameters kept at their initialisation
    from_config: list[str] = field(default_factory=list)  # model buffers not in the checkpoint (config)
    unexpected: list[str] = field(default_factory=list)   # checkpoint tensors with no place in the model
    messages: list[str] = field(default_factory=list)     # resizing notes

    def loaded_parameters(self, model: nn.Module) -> set[str]:
        """Names of the model's parameters (not buffers) that came from the checkpoint."""
        loaded = set(self.loaded)
        return {name for name, _ in model.named_parameters() if name in loaded}

    def format(self) -> str:
        lines = [f"Pretrained weights from {self.source} (weights only: optimizer, epoch and RNG not restored)",
                 f"  loaded: {len(self.loaded)} tensors",
                 *_section("newly initialised", self.new),
                 *_section("from the config (buffers)", self.from_config),
                 *_section("unexpected (ignored)", self.unexpected),
                 *(f"  note: {m}" for m in self.messages)]
        return "\n".join(lines)


def _section(title: str, keys: list[str]) -> list[str]:
    """``title: N tensors`` then one line per key pattern (layer indices folded into ``*``)."""
    if not keys:
        return [f"  {title}: none"]
    patterns = Counter(re.sub(r"\.\d+\.", ".*.", k) for k in keys)
    return [f"  {title}: {len(keys)} tensors"] + [f"    {p}  (x{n})" if n > 1 else f"    {p}" for p, n in patterns.items()]


@lru_cache(maxsize=1)
def _hypergraph_attention_names() -> frozenset[str]:
    """Parameter names a :class:`HypergraphAttention` has beyond the plain :class:`Attention`."""
    plain = {name for name, _ in Attention(8, 2).named_parameters()}
    return frozenset(name for name, _ in HypergraphAttention(8, 2, 2).named_parameters() if name not in plain)


def is_version2_key(key: str) -> bool:
    """Whether ``key`` exists only in version 2 (hypergraph parameters and the partition buffer)."""
    if key.startswith("hypergraph."):
        return True
    _, sep, leaf = key.rpartition("attn_s.")
    return bool(sep) and leaf in _hypergraph_attention_names()


def resize_temporal_embedding(weight: torch.Tensor, length: int, mode: str = "auto") -> tuple[torch.Tensor, str]:
    """``temp_embed [1, L, 1, C]`` -> ``[1, length, 1, C]`` and a message (see module docstring)."""
    if mode not in TEMP_EMBED_RESIZE_MODES:
        raise ConfigError(f"temp_embed_resize must be one of {TEMP_EMBED_RESIZE_MODES}, got {mode!r}")
    old = weight.shape[1]
    if mode == "auto" and length < old:
        return weight[:, :length].clone(), (f"temp_embed truncated from {old} to its first {length} frames "
                                            f"(what the pretrained model used for clips of <= {length} frames)")
    series = weight[0, :, 0].t()[None]                                   # [1, C, L]
    resized = F.interpolate(series.float(), size=length, mode="linear", align_corners=True)
    return (resized[0].t()[None, :, None].to(weight.dtype),
            f"temp_embed linearly interpolated in time from {old} to {length} frames")


def resolve_pretrained_path(path: str) -> str:
    """A checkpoint file, or a run folder (then its ``latest_epoch.bin``, MotionBERT's ``-ms`` default)."""
    if os.path.isdir(path):
        candidate = os.path.join(path, DEFAULT_SELECTION)
        if not os.path.isfile(candidate):
            files = sorted(f for f in os.listdir(path) if f.endswith((".bin", ".pth", ".pt")))
            raise CheckpointError(f"pretrained folder {path} has no {DEFAULT_SELECTION}; "
                                    f"pass one of its files instead: {files}")
        return candidate
    return path


def match_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], temp_embed_resize: str = "auto",
                     source: str = "state_dict", model_args: Mapping | None = None
                     ) -> tuple[LoadReport, dict[str, torch.Tensor]]:
    """Plan the load of ``state`` (prefixes already stripped) into ``model``.

    Returns the report and the tensors to copy; raises :class:`CheckpointMismatchError` for any
    difference not explained by the version or the clip length. ``model_args`` (a Pose3D
    checkpoint's) also catches another ``num_heads``, which no version-1 shape shows.
    """
    own, report, tensors = model.state_dict(), LoadReport(source), {}
    params = {name for name, _ in model.named_parameters()}
    state = dict(state)
    if TEMP_EMBED in state and TEMP_EMBED in own and _differs_only_in_time(own[TEMP_EMBED], state[TEMP_EMBED]):
        state[TEMP_EMBED], message = resize_temporal_embedding(state[TEMP_EMBED], own[TEMP_EMBED].shape[1],
                                                               temp_embed_resize)
        report.messages.append(message)
    problems = _partition_problems(own, state) + _heads_problems(model, model_args)
    for key, value in own.items():
        if key not in state:
            if not is_version2_key(key):
                problems.append(f"missing in checkpoint: {key} {tuple(value.shape)}")
            (report.new if key in params else report.from_config).append(key)
        elif value.shape != state[key].shape:
            problems.append(f"shape differs: {key} model {tuple(value.shape)} vs checkpoint {tuple(state[key].shape)}")
        else:
            tensors[key] = state[key]
            report.loaded.append(key)
    for key, value in state.items():
        if key not in own:
            if not is_version2_key(key):
                problems.append(f"not in the model: {key} {tuple(value.shape)}")
            report.unexpected.append(key)
    if problems:
        raise CheckpointMismatchError(
            f"{source} does not fit {type(model).__name__} ({len(problems)} differences beyond the "
            f"version and clip length; the model config must match the pretrained one in width, depth, "
            f"heads, mlp_ratio, dim_rep and joints){_architecture_hint(model, state)}:\n  "
            + "\n  ".join(shorten(problems)))
    return report, tensors


def _differs_only_in_time(own: torch.Tensor, theirs: torch.Tensor) -> bool:
    return own.dim() == theirs.dim() == 4 and own.shape[1] != theirs.shape[1] and \
        own.shape[:1] + own.shape[2:] == theirs.shape[:1] + theirs.shape[2:]


def _partition_problems(own: Mapping, state: Mapping) -> list[str]:
    """A version-2 checkpoint trained with another hyperedge partition than ``--hyper_cfg``."""
    key = "hypergraph.joint_label"
    if key in own and key in state and own[key].shape == state[key].shape and not torch.equal(own[key], state[key]):
        return [f"hyperedge partition differs: {key} model (--hyper_cfg) {own[key].tolist()} "
                f"vs checkpoint {state[key].tolist()}"]
    return []


def _heads_problems(model: nn.Module, model_args: Mapping | None) -> list[str]:
    ours = getattr(getattr(model, "config", None), "num_heads", None)
    theirs = (model_args or {}).get("num_heads")
    if ours is None or theirs is None or ours == theirs:
        return []
    return [f"num_heads differs: model {ours} vs checkpoint config {theirs}"]


def infer_architecture(state: Mapping[str, torch.Tensor]) -> dict:
    """DSTformer sizes read off a state_dict's shapes (``num_heads`` cannot be inferred)."""
    arch = {}
    if "pos_embed" in state:
        arch["num_joints"], arch["dim_feat"] = state["pos_embed"].shape[1:]
    if TEMP_EMBED in state:
        arch["maxlen"] = state[TEMP_EMBED].shape[1]
    if "pre_logits.fc.weight" in state:
        arch["dim_rep"] = state["pre_logits.fc.weight"].shape[0]
    layers = {int(m.group(1)) for k in state if (m := re.match(r"blocks_st\.(\d+)\.", k))}
    arch["depth"] = len(layers)
    if "blocks_st.0.mlp_s.fc1.weight" in state and "dim_feat" in arch:
        arch["mlp_ratio"] = state["blocks_st.0.mlp_s.fc1.weight"].shape[0] / arch["dim_feat"]
    arch["version"] = 2 if any(is_version2_key(k) for k in state) else 1
    return arch


def _architecture_hint(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """``; the checkpoint has depth 2 (model 5), ...`` for the sizes that differ."""
    ours = getattr(model, "config", None)
    if ours is None:
        return ""
    diffs = [f"{k} {v:g} (model {getattr(ours, k):g})" for k, v in infer_architecture(state).items()
             if k not in ("maxlen", "version") and v != getattr(ours, k, v)]
    return f"; the checkpoint has {', '.join(diffs)}" if diffs else ""


def _layernorm_eps_notes(model: nn.Module, checkpoint: Checkpoint) -> list[str]:
    """A note when the checkpoint's LayerNorm eps is not the model's (the model keeps its own)."""
    ours = getattr(getattr(model, "config", None), "layernorm_eps", None)
    eps = checkpoint.layernorm_eps
    if ours is None or eps == ours:
        return []
    return [f"the checkpoint was trained with LayerNorm eps {eps:g} ({EPS_ORIGINS[checkpoint.layout]}); "
            f"the fine-tuned model keeps its config's layernorm_eps {ours:g}"]


def load_pretrained(model: nn.Module, path: str, temp_embed_resize: str = "auto", apply: bool = True,
                    verbose: bool = True) -> LoadReport:
    """Initialise ``model`` from the checkpoint at ``path`` (file or run folder); see module docstring.

    ``apply=False`` only checks and reports (used on resume, where the resumed weights win).
    """
    path = resolve_pretrained_path(path)
    checkpoint = read_checkpoint(path, "pretrained checkpoint")
    report, tensors = match_state_dict(model, checkpoint.model_state, temp_embed_resize, path, checkpoint.model_args)
    report.messages.extend(_layernorm_eps_notes(model, checkpoint))
    if apply:
        model.load_state_dict(tensors, strict=False)
    if verbose:
        print(report.format(), flush=True)
    return report
