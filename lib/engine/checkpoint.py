"""Checkpoints: atomic writes, ``weights_only`` loading, MotionBERT-compatible key names.

A Pose3D checkpoint is a dict of plain tensors and containers (loadable with
``torch.load(path, weights_only=True)``)::

    model_pos    unwrapped state_dict (no 'module.' / '_orig_mod.' prefix)   [MotionBERT key]
    config       the resolved config as a plain dict
    epoch        the next epoch to run (k + 1 after finishing 0-based epoch k)
    lr           learning rate of that next epoch
    optimizer    optimizer state_dict
    min_loss     best test P1 so far (mm)
    rng          torch CPU RNG state (and CUDA states when present) for an exact resume
    extra        optional state of other trained modules (e.g. the distiller)

Files in a run folder: ``latest_epoch.bin`` (every epoch), ``best_epoch.bin`` (best test P1),
``epoch_{k}.bin`` (every ``checkpoint_frequency`` epochs).
"""
from __future__ import annotations

import torch

from lib.config.schema import to_plain
from lib.io import load_checkpoint, save_torch

__all__ = ["load_checkpoint", "save_checkpoint", "unwrap", "rng_state", "set_rng_state", "training_state"]


def save_checkpoint(path: str, state: dict) -> None:
    """Write ``state`` to ``path`` atomically: a killed process never leaves a half-written file."""
    save_torch(path, state)


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
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_state(model, optimizer, cfg, epoch: int, lr: float, min_loss: float, extra=None) -> dict:
    """Everything needed to resume a run exactly (see module docstring)."""
    config = to_plain(cfg)
    if hasattr(getattr(unwrap(model), "config", None), "layernorm_eps"):
        config["layernorm_eps"] = unwrap(model).config.layernorm_eps   # the eps the weights were trained with
    state = {"model_pos": unwrap(model).state_dict(), "config": config, "epoch": epoch,
             "lr": lr, "optimizer": optimizer.state_dict(), "min_loss": min_loss, "rng": rng_state()}
    if extra is not None:
        state["extra"] = extra
    return state
