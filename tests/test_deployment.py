"""ONNX deployment (deployment/deployment_pose3d.py): parity, dynamic shapes, metadata and errors."""
import os
import sys

import numpy as np
import onnx
import pytest
import torch
import yaml

from lib.model.factory import build_model
from lib.engine.checkpoint import save_checkpoint
from lib.config.schema import load_config, to_plain
from lib.inference.export import sample_input

ort = pytest.importorskip("onnxruntime")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from deployment import deployment_pose3d

HYPER_CFG = os.path.join(ROOT, "hyper_config", "method2", "manual_joint_label1.yaml")
TINY = {"dim_feat": 16, "dim_rep": 16, "depth": 1, "num_heads": 2, "mlp_ratio": 2, "maxlen": 16, "clip_len": 16}


def tiny_checkpoint(folder, version=1, rootrel=True, **model):
    """A tiny config YAML and a checkpoint of randomly initialised (but non-trivial) weights.

    Returns the command-line flags that select them."""
    cfg_path = folder / f"tiny_v{version}.yaml"
    cfg_path.write_text(yaml.safe_dump({**TINY, **model, "rootrel": rootrel}))
    flags = ["--config", str(cfg_path), "--version", str(version)]
    flags += ["--hyper_cfg", HYPER_CFG, "--hyper_relation_bias", "uniform"] if version == 2 else []
    cfg = load_config(str(cfg_path), HYPER_CFG if version == 2 else None, None, {"version": version})
    torch.manual_seed(version)
    model = build_model(cfg, verbose=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))    # every weight matters, relation bias included
    ckpt = folder / f"tiny_v{version}.bin"
    save_checkpoint(str(ckpt), {"model_pos": model.state_dict(), "config": to_plain(cfg)})
    return flags + ["--evaluate", str(ckpt)], model.eval()


@pytest.mark.parametrize("version, portable", [(1, False), (2, False), (2, True)])
def test_export_parity_dynamic_batch_and_frames(version, portable, tmp_path, capsys):
    flags, model = tiny_checkpoint(tmp_path, version)
    out = tmp_path / "tiny.onnx"
    flags += ["--portable"] if portable else []
    assert deployment_pose3d.main(flags + ["--checkpoint", str(tmp_path), "--deployment", str(out)]) == 0
    assert "max |diff|" in capsys.readouterr().out
    session = ort.InferenceSession(str(out))
    assert [i.name for i in session.get_inputs()] == ["pose2d"]
    assert [o.name for o in session.get_outputs()] == ["pose3d"]
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert ("MultiHeadAttention" in ops) != portable     # onnxruntime's fused kernel unless --portable
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["maxlen"] == "16" and meta["rootrel"] == "True" and meta["version"] == str(version)
    for batch, frames in [(1, 16), (4, 16), (2, 7), (1, 1)]:
        x = sample_input(batch, frames, seed=batch)
        with torch.no_grad():
            np.testing.assert_allclose(session.run(None, {"pose2d": x})[0], model(torch.from_numpy(x)).numpy(),
                                       atol=1e-5, rtol=0)


def test_parity_failure_exits_1_and_writes_nothing(tmp_path, capsys):
    flags, _ = tiny_checkpoint(tmp_path)
    out = tmp_path / "never.onnx"
    with pytest.raises(SystemExit) as exit_:
        deployment_pose3d.main(flags + ["--deployment", str(out), "--tolerance", "-1"])
    assert exit_.value.code == 1
    assert "parity check failed" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.onnx"))


def test_missing_checkpoint_and_other_architecture_are_clear_errors(tmp_path, capsys):
    flags, _ = tiny_checkpoint(tmp_path, dim_feat=32)
    args = ["--config", flags[1], "--deployment", str(tmp_path / "x.onnx")]
    with pytest.raises(SystemExit) as exit_:
        deployment_pose3d.main(args + ["--evaluate", str(tmp_path / "missing.bin")])
    assert exit_.value.code == 2
    assert "checkpoint not found" in capsys.readouterr().err
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(TINY))                 # dim_feat 16 vs the checkpoint's 32
    with pytest.raises(SystemExit) as exit_:
        deployment_pose3d.main(["--config", str(other), "--evaluate", flags[-1],
                                "--deployment", str(tmp_path / "x.onnx")])
    assert exit_.value.code == 2
    assert "does not match" in capsys.readouterr().err
