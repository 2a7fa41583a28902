"""ONNX export of tiny version-1 and version-2 models (the deployment exporter, fused and
portable attention): onnxruntime matches PyTorch within 1e-4 with dynamic batch and frames.
The one place that covers every (version, attention) variant; test_deployment.py tests the command."""
import numpy as np
import onnx
import pytest
import torch

from lib.data.skeleton import NUM_JOINTS
from lib.model.dstformer import DSTformer, DSTformerConfig
from lib.inference.export import INPUT_NAME, export

ort = pytest.importorskip("onnxruntime")

LABEL1 = (0, 1, 1, 1, 2, 2, 2, 0, 0, 3, 3, 4, 4, 4, 5, 5, 5)


@pytest.mark.parametrize("version, fused", [(1, True), (2, True), (2, False)])
def test_onnx_matches_pytorch_with_dynamic_batch_and_frames(version, fused, tmp_path):
    torch.manual_seed(0)
    config = DSTformerConfig(dim_feat=32, dim_rep=32, depth=2, num_heads=4, maxlen=16, version=version,
                             joint_label=LABEL1 if version == 2 else None)
    model = DSTformer(config).eval()
    if version == 2:
        for block in model.blocks_st:
            block.attn_s.edge_bias.data.normal_()
    path = str(tmp_path / "model.onnx")
    export(model, path, metadata={"version": version}, fused_attention=fused)
    ops = {node.op_type for node in onnx.load(path).graph.node}
    assert ("MultiHeadAttention" in ops) == fused     # onnxruntime's fused kernel unless portable
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for shape in [(2, 9, NUM_JOINTS, 3), (3, 16, NUM_JOINTS, 3), (1, 1, NUM_JOINTS, 3)]:
        x = torch.randn(shape)
        onnx_out = session.run(None, {INPUT_NAME: x.numpy()})[0]
        with torch.no_grad():
            np.testing.assert_allclose(onnx_out, model(x).numpy(), atol=1e-4, rtol=0)
