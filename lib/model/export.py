"""ONNX export of a Pose3D model (used by tests and deployment).

The graph takes ``input [N, T, 17, dim_in]`` and returns ``output [N, T, 17, dim_out]`` with a
dynamic batch axis ``N`` and a dynamic clip length ``1 <= T <= maxlen``. It uses the
``torch.export``-based exporter (``dynamo=True``); attention is exported from
``scaled_dot_product_attention`` (version 2 keeps its hyperedge tokens and bias in the graph).
"""
from __future__ import annotations

import torch
from torch import nn

INPUT_NAME, OUTPUT_NAME = "input", "output"


def export_onnx(model: nn.Module, path: str, maxlen: int | None = None, opset: int = 18,
                batch: int = 2) -> str:
    """Export ``model`` (eval mode) to ``path`` and return the path.

    ``maxlen`` is the longest clip the graph accepts (default: the model's ``config.maxlen``);
    the example input has ``batch`` clips of ``min(maxlen, 27)`` frames.
    """
    config = model.config
    maxlen = maxlen or config.maxlen
    example = torch.randn(batch, min(maxlen, 27), config.num_joints, config.dim_in)
    dims = {0: torch.export.Dim("batch", min=1), 1: torch.export.Dim("frames", min=1, max=maxlen)}
    model = model.eval()
    with torch.no_grad():
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes={"x": dims}, verbose=False)
    program.save(path)
    return path
