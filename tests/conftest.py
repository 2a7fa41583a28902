"""Shared test set-up: one torch thread, one tiny config, one tiny synthetic data set, tiny checkpoints.

The repository root is importable through pytest.ini (pythonpath). Fixtures:

* ``tiny_config``: factory writing the tiny training config (:data:`TINY`, + data paths, + changes)
  to a YAML file;
* ``tiny_data``: a tiny synthetic H36M-format source (``src/``) and its 9-frame clips (``clips/``),
  made once per session through the quick-start code path (``train.py`` with ``synthetic_data: tiny``);
* ``tiny_checkpoint``: factory of a tiny model config + checkpoint with non-trivial weights.
"""
import os

import pytest
import torch
import yaml

import train
from lib.config.schema import load_config, to_plain
from lib.io import save_torch
from lib.model.factory import build_model

# Tests use tiny tensors: one intra-op thread is fastest and avoids oversubscribing CI's 2 cores.
torch.set_num_threads(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HYPER_CFG = os.path.join(ROOT, "hyper_config", "method2", "manual_joint_label1.yaml")

# The tiny training config: 2 epochs of 6 steps on 9-frame clips of the tiny synthetic data.
TINY = {
    "epochs": 2, "batch_size": 16, "learning_rate": 2e-3, "checkpoint_frequency": 1,
    "maxlen": 9, "dim_feat": 16, "dim_rep": 32, "depth": 1, "num_heads": 2, "mlp_ratio": 2,
    "clip_len": 9, "data_stride": 9, "sample_stride": 2, "num_workers": 0,
    "max_iters_per_epoch": 6, "synthetic_data": "tiny", "eval_full_coverage": True,
}
# The tiny model alone (no data): what the export, lifting and heatmap tests build.
TINY_MODEL = {"dim_feat": 16, "dim_rep": 16, "depth": 1, "num_heads": 2, "mlp_ratio": 2, "maxlen": 16,
              "clip_len": 16}


def write_yaml(path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def write_tiny_config(folder, extra=None, name="tiny.yaml", data=None) -> str:
    """:data:`TINY` + ``extra`` as ``folder/name``; with ``data`` (a ``tiny_data`` root) it trains on it."""
    paths = {"dt_root": str(data / "src"), "data_root": str(data), "subset_list": ["clips"]} if data else {}
    return write_yaml(folder / name, {**TINY, **paths, **(extra or {})})


@pytest.fixture(scope="session")
def tiny_config():
    """Factory ``(folder, extra=None, name="tiny.yaml", data=None) -> config path`` (see write_tiny_config)."""
    return write_tiny_config


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Tiny synthetic source + clips, made once through the quick-start code path (one training
    step with ``synthetic_data: tiny``); ``warmup/`` is that run's checkpoint folder."""
    root = tmp_path_factory.mktemp("tiny_data")
    cfg_path = write_tiny_config(root, data=root, name="warmup.yaml")
    train.main(["--config", cfg_path, "--checkpoint", str(root / "warmup"), "--set", "epochs=1",
                "--set", "max_iters_per_epoch=1", "--set", "no_eval=true"])
    return root


def jitter(model: torch.nn.Module) -> None:
    """Add noise to every weight, so that every one of them (relation bias included) matters."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))


def make_tiny_checkpoint(folder, version=1, rootrel=True, perturb=jitter, ckpt=None, **config):
    """A tiny config YAML (:data:`TINY_MODEL` + ``config``) and a checkpoint of seeded random weights
    changed in place by ``perturb``. Returns the command-line flags selecting them (``--config``,
    ``--version``, the hypergraph flags for version 2, ``--evaluate CKPT``) and the model in eval mode."""
    cfg_path = write_yaml(folder / f"tiny_v{version}.yaml", {**TINY_MODEL, **config, "rootrel": rootrel})
    flags = ["--config", cfg_path, "--version", str(version)]
    flags += ["--hyper_cfg", HYPER_CFG, "--hyper_relation_bias", "uniform"] if version == 2 else []
    cfg = load_config(cfg_path, HYPER_CFG if version == 2 else None, None, {"version": version})
    torch.manual_seed(version)
    model = build_model(cfg, verbose=False)
    perturb(model)
    path = str(ckpt or folder / f"tiny_v{version}.bin")
    save_torch(path, {"model_pos": model.state_dict(), "config": to_plain(cfg)})   # a weights-only Pose3D file
    return flags + ["--evaluate", path], model.eval()


@pytest.fixture(scope="session")
def tiny_checkpoint():
    """Factory ``(folder, version=1, rootrel=True, perturb=jitter, ckpt=None, **config) -> (flags, model)``."""
    return make_tiny_checkpoint
