"""ONNX deployment (deployment/deployment_pose3d.py): parity, dynamic shapes, metadata and errors."""
import numpy as np
import onnx
import pytest
import torch
import yaml

from lib.inference.export import sample_input
from conftest import TINY_MODEL

ort = pytest.importorskip("onnxruntime")
from deployment import deployment_pose3d


def test_cli_export_names_metadata_and_dynamic_parity(tiny_checkpoint, tmp_path, capsys):
    """The command's export (version 2, --portable; every (version, attention) variant of the
    exporter is tested in test_model_onnx.py): named input/output, metadata, dynamic batch and frames."""
    flags, model = tiny_checkpoint(tmp_path, version=2)
    out = tmp_path / "tiny.onnx"
    assert deployment_pose3d.main(flags + ["--portable", "--checkpoint", str(tmp_path), "--deployment", str(out)]) == 0
    assert "max |diff|" in capsys.readouterr().out
    session = ort.InferenceSession(str(out))
    assert [i.name for i in session.get_inputs()] == ["pose2d"]
    assert [o.name for o in session.get_outputs()] == ["pose3d"]
    assert "MultiHeadAttention" not in {node.op_type for node in onnx.load(str(out)).graph.node}
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["maxlen"] == "16" and meta["rootrel"] == "True" and meta["version"] == "2"
    for batch, frames in [(1, 16), (4, 16), (2, 7), (1, 1)]:
        x = sample_input(batch, frames, seed=batch)
        with torch.no_grad():
            np.testing.assert_allclose(session.run(None, {"pose2d": x})[0], model(torch.from_numpy(x)).numpy(),
                                       atol=1e-5, rtol=0)


def test_parity_failure_exits_1_and_writes_nothing(tiny_checkpoint, tmp_path, capsys):
    flags, _ = tiny_checkpoint(tmp_path)
    out = tmp_path / "never.onnx"
    with pytest.raises(SystemExit) as exit_:
        deployment_pose3d.main(flags + ["--deployment", str(out), "--tolerance", "-1"])
    assert exit_.value.code == 1
    assert "parity check failed" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.onnx"))


def test_missing_checkpoint_and_other_architecture_are_clear_errors(tiny_checkpoint, tmp_path, capsys):
    flags, _ = tiny_checkpoint(tmp_path, dim_feat=32)
    args = ["--config", flags[1], "--deployment", str(tmp_path / "x.onnx")]
    with pytest.raises(SystemExit) as exit_:
        deployment_pose3d.main(args + ["--evaluate", str(tmp_path / "missing.bin")])
    assert exit_.value.code == 2
    assert "checkpoint not found" in capsys.readouterr().err
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(TINY_MODEL))                 # dim_feat 16 vs the checkpoint's 32
    with pytest.raises(SystemExit) as exit_:
        deployment_pose3d.main(["--config", str(other), "--evaluate", flags[-1],
                                "--deployment", str(tmp_path / "x.onnx")])
    assert exit_.value.code == 2
    assert "does not match" in capsys.readouterr().err


@pytest.mark.parametrize("mode, quantized_op", [("int8", "MatMulInteger"), ("int8-static", "QuantizeLinear")])
def test_int8_export_is_accuracy_checked_and_runs_like_any_export(tiny_checkpoint, tmp_path, capsys, mode,
                                                                  quantized_op):
    from deployment.deployment_pose3d import int8_accuracy
    from lib.inference.lift import OnnxRunner
    flags, model = tiny_checkpoint(tmp_path)
    out, fp32 = tmp_path / "int8.onnx", tmp_path / "fp32.onnx"
    assert deployment_pose3d.main(flags + ["--deployment", str(fp32)]) == 0
    assert deployment_pose3d.main(flags + ["--deployment", str(out), "--quantize", mode]) == 0
    printed = capsys.readouterr().out
    assert "P1 fp32" in printed and "change" in printed
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert quantized_op in ops and "MultiHeadAttention" in ops
    report = int8_accuracy(str(fp32), str(out), rootrel=True)
    assert report["p1_change_mm"] <= 1.0 and report["p2_change_mm"] <= 1.0
    assert 0 < report["max_abs_diff"] < 0.05                          # int8 differs, but only a little
    runner = OnnxRunner(str(out))                                    # what infer_wild.py runs
    assert runner.metadata["maxlen"] == "16"
    x = sample_input(2, 9, seed=5)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert np.abs(runner(x) - expected).max() < 0.05


def test_int8_accuracy_failure_exits_1_and_writes_nothing(tiny_checkpoint, tmp_path, capsys):
    flags, _ = tiny_checkpoint(tmp_path)
    out = tmp_path / "never.onnx"
    with pytest.raises(SystemExit) as exit_:
        deployment_pose3d.main(flags + ["--deployment", str(out), "--quantize", "int8", "--int8_tolerance_mm", "-1"])
    assert exit_.value.code == 1
    assert "int8 accuracy check failed" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.onnx"))
