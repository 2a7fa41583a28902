"""MotionBERT's released 3D pose checkpoints load with their Pose3D configs (no download).

Each checkpoint is made here in MotionBERT's exact file layout: ``{'epoch', 'lr', 'optimizer',
'model_pos', 'min_loss'}`` with DataParallel ``module.`` prefixes, key names from the full model's
real key list (tests/fixtures/motionbert_tiny) and shapes from MotionBERT's layer sizes, filled
with random values, then loaded through the loader every entry point uses.
"""
import os

import pytest
import torch

from lib.config.schema import load_config
from lib.errors import CheckpointError
from lib.model.factory import count_parameters, load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = os.path.join(ROOT, "tests", "fixtures", "motionbert_tiny", "dstformer_full_state_dict_keys.txt")
FULL = dict(dim_feat=512, mlp_ratio=2, dim_rep=512)


def fixture_layout() -> list[tuple[str, tuple]]:
    """``(key, shape)`` of the full MotionBERT DSTformer, as the fixture lists them."""
    with open(KEYS) as f:
        rows = [line.split(" ", 1) for line in f if not line.startswith("#")]
    return [(k, tuple(int(d) for d in s.strip().strip("()").split(",") if d.strip())) for k, s in rows]


def motionbert_layout(dim_feat: int, mlp_ratio: float, dim_rep: int, maxlen: int = 243) -> list[tuple[str, tuple]]:
    """MotionBERT's key names with the shapes of its layers at these sizes (its DSTformer's sizes:
    qkv 3C x C, MLP hidden C*ratio, fusion ts_attn 2 x 2C, pre_logits dim_rep x C, head 3 x dim_rep)."""
    c, hidden = dim_feat, int(dim_feat * mlp_ratio)

    def shape(key: str, full: tuple) -> tuple:
        leaf = key.rsplit(".", 1)[-1]
        if key == "temp_embed":
            return (1, maxlen, 1, c)
        if key.startswith("ts_attn"):
            return (2, 2 * c) if leaf == "weight" else (2,)
        if key.startswith("pre_logits"):
            return (dim_rep, c) if leaf == "weight" else (dim_rep,)
        if key.startswith("head"):
            return (3, dim_rep) if leaf == "weight" else (3,)
        if ".qkv." in key:
            return (3 * c, c) if leaf == "weight" else (3 * c,)
        if ".fc1." in key:
            return (hidden, c) if leaf == "weight" else (hidden,)
        if ".fc2." in key:
            return (c, hidden) if leaf == "weight" else (c,)
        return tuple(c if d == 512 else d for d in full)
    return [(k, shape(k, s)) for k, s in fixture_layout()]


def test_layout_rule_reproduces_the_full_model_key_list():
    assert motionbert_layout(**FULL) == fixture_layout()


def motionbert_checkpoint(layout, seed=0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    weights = {f"module.{k}": torch.randn(shape, generator=generator) * 0.02 for k, shape in layout}
    return {"epoch": 59, "lr": 1.1e-4, "optimizer": {}, "model_pos": weights, "min_loss": 37.2}


# (config, its MotionBERT sizes, parameters of the released model)
RELEASED = [
    ("MB_ft_h36m_global_lite.yaml", dict(dim_feat=256, mlp_ratio=4, dim_rep=512), 16_001_549, False),
    ("MB_ft_h36m.yaml", FULL, 42_466_317, True),
]


@pytest.mark.parametrize("name,sizes,params,rootrel", RELEASED, ids=[r[0] for r in RELEASED])
def test_released_checkpoint_layout_loads(name, sizes, params, rootrel, tmp_path, capsys):
    cfg = load_config(os.path.join(ROOT, "configs", "pose3d", name))
    assert bool(cfg.rootrel) == rootrel and cfg.version == 1
    layout = motionbert_layout(**sizes, maxlen=cfg.maxlen)
    checkpoint = motionbert_checkpoint(layout)
    path = tmp_path / "best_epoch.bin"
    torch.save(checkpoint, path)
    model = load_model(cfg, str(path))
    assert count_parameters(model) == params
    state = model.state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == layout
    for key, value in state.items():                  # the file's values, not the initialisation
        assert torch.equal(value, checkpoint["model_pos"][f"module.{key}"]), key
    with torch.no_grad():
        out = model(torch.rand(1, 5, 17, 3))
    assert out.shape == (1, 5, 17, 3) and torch.isfinite(out).all()


def test_a_lite_checkpoint_does_not_load_into_the_full_config(tmp_path):
    path = tmp_path / "lite.bin"
    torch.save(motionbert_checkpoint(motionbert_layout(dim_feat=256, mlp_ratio=4, dim_rep=512)), path)
    cfg = load_config(os.path.join(ROOT, "configs", "pose3d", "MB_ft_h36m.yaml"))
    with pytest.raises(CheckpointError, match="dim_feat|shape"):
        load_model(cfg, str(path))
