"""ONNX deployment of a Pose3D model: export, graph check and parity with PyTorch.

The exported graph (``OPSET`` pinned) maps ``pose2d [N, T, 17, C]`` (``C`` = 3: x_n, y_n,
confidence; 2 for ``no_conf`` models) to ``pose3d [N, T, 17, 3]`` in the normalised units of
``lib.inference.lift``; ``N`` is dynamic and so is ``T`` in ``1..maxlen``. The model's ``maxlen``,
``rootrel``, ``version`` and input convention are stored in the ONNX metadata, so
``deployment/infer_wild.py`` needs no config to run the file. By default attention runs in
onnxruntime's fused ``com.microsoft.MultiHeadAttention`` kernel (the graph then needs
onnxruntime); ``fused_attention=False`` keeps to standard ONNX ops.

int8 (:func:`quantize_int8`): onnxruntime's quantization tools turn the checked fp32 graph into
int8 weights, either *dynamic* (activations quantized per call) or *static* QDQ (activation
ranges calibrated on synthetic clips). An int8 graph cannot match PyTorch to 1e-4, so its check is
accuracy-based (``int8_accuracy`` in deployment/deployment_pose3d.py): P1 and P2 in mm of both graphs against the ground truth
of synthetic test clips (H36M cameras, detector-like noise) must differ by at most
``INT8_TOLERANCE_MM``; the largest output difference is reported too.
"""
from __future__ import annotations

import os
import time
import warnings

import numpy as np
import torch

from lib.data import camera as cam
from lib.data.normalize import normalize_2d
from lib.data.synthetic import detector_noise, subject_bones, synthesize_motion
from lib.data.synthetic.cameras import image_space
from lib.errors import VerificationFailed
from lib.io import atomic_path

OPSET = 17
SDPA = "aten::scaled_dot_product_attention"
INPUT_NAME, OUTPUT_NAME = "pose2d", "pose3d"
PARITY_TOLERANCE = 1e-4
INT8_MODES = ("dynamic", "static")
SAMPLE_ACTIONS = ("Walking", "Greeting", "Sitting", "Eating")


def sample_input(batch: int, frames: int, seed: int = 0) -> np.ndarray:
    """Realistic normalised 2D clips ``[batch, frames, 17, 3]``: synthetic H36M motions seen by the
    S9 cameras with detector-like noise and confidences (not uniform noise)."""
    return sample_clips(batch, frames, seed)[0]


def sample_clips(batch: int, frames: int, seed: int = 0) -> tuple[np.ndarray, dict]:
    """:func:`sample_input`'s clips and their ground truth: ``(inputs, {'width' [B], 'height' [B],
    'factor' [B, T] (2.5d factor), 'gt_mm' [B, T, 17, 3] root-relative joints_2.5d_image})``."""
    rng = np.random.default_rng(seed)
    clips, truth = [], {"width": [], "height": [], "factor": [], "gt_mm": []}
    for i in range(batch):
        camera = i % len(cam.CAMERA_IDS)
        world = synthesize_motion(SAMPLE_ACTIONS[i % len(SAMPLE_ACTIONS)], frames, rng, subject_bones(seed, 9))
        x_cam = cam.world_to_camera(world, "S9", camera)
        pixels = cam.camera_to_pixel(x_cam, camera)
        width, height = cam.resolution(camera)
        noise, conf = detector_noise(rng, frames, width)
        clips.append(normalize_2d(np.concatenate([pixels + noise, conf], -1), width, height))
        image, factor = image_space(x_cam, camera)
        gt = image * factor[:, None, None]
        for key, value in zip(truth, (width, height, factor, gt - gt[:, :1])):
            truth[key].append(value)
    return np.stack(clips).astype(np.float32), {k: np.asarray(v) for k, v in truth.items()}


def export(model: torch.nn.Module, path: str, metadata: dict, opset: int = OPSET,
           fused_attention: bool = True) -> None:
    """Export ``model`` to ``path`` with dynamic N and T (TorchScript exporter: the graph traced
    from one full-length clip; the positional-embedding slice follows the dynamic T).

    ``fused_attention`` maps every ``scaled_dot_product_attention`` to onnxruntime's fused
    ``com.microsoft.MultiHeadAttention`` kernel (its additive bias in the ``attention_bias`` slot);
    otherwise attention is decomposed into standard ONNX MatMul/Softmax ops (any ONNX runtime).
    """
    import onnx
    config = model.config
    example = torch.from_numpy(sample_input(1, config.maxlen))[..., :config.dim_in]
    axes = {0: "batch", 1: "frames"}
    if fused_attention:
        torch.onnx.register_custom_op_symbolic(SDPA, _fused_attention(config.num_heads), opset)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
            torch.onnx.export(model.eval(), (example,), path, dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes})
    finally:
        if fused_attention:
            torch.onnx.unregister_custom_op_symbolic(SDPA, opset)
    graph = onnx.load(path)
    _place_attention_bias(graph)
    onnx.helper.set_model_props(graph, {k: str(v) for k, v in metadata.items()})
    onnx.save(graph, path)


def _fused_attention(num_heads: int):
    """Export rule ``SDPA(q, k, v [B, H, L, d], bias) -> MultiHeadAttention`` on ``[B, L, H*d]``
    tensors (the transposes around it cancel against the model's own head split/merge)."""
    from torch.onnx import symbolic_helper as sh

    def tokens(g, t):
        return g.op("Reshape", g.op("Transpose", t, perm_i=[0, 2, 1, 3]), g.op("Constant", value_t=torch.tensor([0, 0, -1])))

    @sh.parse_args("v", "v", "v", "v", "f", "b", "f", "b")
    def sdpa(g, q, k, v, bias, dropout, causal, scale, gqa):
        if dropout or causal or gqa:
            raise NotImplementedError("fused attention export supports neither dropout, causal masks nor GQA")
        inputs = [tokens(g, q), tokens(g, k), tokens(g, v)]
        if not sh._is_none(bias):              # [.., L, L_kv] -> [1 or B, 1 or H, L, L_kv]
            lead = 4 - sh._get_tensor_rank(bias)
            inputs.append(g.op("Unsqueeze", bias, g.op("Constant", value_t=torch.arange(lead))) if lead else bias)
        out = g.op("com.microsoft::MultiHeadAttention", *inputs, num_heads_i=num_heads, scale_f=scale)
        out = g.op("Reshape", out, g.op("Constant", value_t=torch.tensor([0, 0, num_heads, -1])))
        return g.op("Transpose", out, perm_i=[0, 2, 1, 3])
    return sdpa


def _place_attention_bias(graph) -> None:
    """Move a MultiHeadAttention bias from input 3 to the ``attention_bias`` slot (input 5; the
    exporter cannot emit empty optional inputs) and drop the untyped shape hints of its outputs."""
    for node in graph.graph.node:
        if node.op_type == "MultiHeadAttention" and len(node.input) == 4:
            node.input[:] = list(node.input[:3]) + ["", "", node.input[3]]
    typed = [v for v in graph.graph.value_info if v.type.tensor_type.elem_type]
    del graph.graph.value_info[:]
    graph.graph.value_info.extend(typed)


def parity(model: torch.nn.Module, path: str, inputs: list[np.ndarray]) -> float:
    """Largest |onnxruntime - PyTorch| over the given input batches."""
    from lib.inference.lift import OnnxRunner, TorchRunner
    onnx_run, torch_run = OnnxRunner(path), TorchRunner(model, model.config.dim_in)
    return max(float(np.abs(onnx_run(x) - torch_run(x)).max()) for x in inputs)


def deploy(model: torch.nn.Module, path: str, metadata: dict, opset: int = OPSET,
           tolerance: float = PARITY_TOLERANCE, fused_attention: bool = True) -> float:
    """Export, check with ``onnx.checker``, compare with PyTorch on realistic clips (batch 1 at
    maxlen, batch 3 at a shorter T) and move the file into place only if the difference is at most
    ``tolerance``. Returns the largest difference; raises ``VerificationFailed`` above the tolerance."""
    import onnx
    maxlen = model.config.maxlen
    with atomic_path(path) as tmp:
        start = time.perf_counter()
        export(model, tmp, metadata, opset, fused_attention)
        onnx.checker.check_model(tmp, full_check=True)
        print(f"exported and checked (opset {opset}, {'fused' if fused_attention else 'decomposed'} attention) in {time.perf_counter() - start:.1f} s")
        inputs = [sample_input(1, maxlen, seed=1), sample_input(3, max(1, maxlen * 2 // 3), seed=2)]
        diff = parity(model, tmp, inputs)
        print(f"onnxruntime vs PyTorch: max |diff| = {diff:.3g} (tolerance {tolerance:g}) "
              f"over inputs {[x.shape for x in inputs]}")
        if not diff <= tolerance:
            raise VerificationFailed(f"ONNX parity check failed: max |diff| {diff:.3g} > {tolerance:g}; {path} not written")
    return diff


# -- int8 ------------------------------------------------------------------------------------------
def calibration_clips(maxlen: int, clips: int = 8, seed: int = 100) -> list[np.ndarray]:
    """Static quantization's calibration batches: synthetic clips (one per batch, full length),
    seeds disjoint from the accuracy check's."""
    return [sample_input(1, maxlen, seed=seed + i) for i in range(clips)]


def quantize_int8(fp32_path: str, path: str, mode: str = "dynamic", calibration: list[np.ndarray] | None = None) -> None:
    """Write an int8 version of the fp32 graph at ``fp32_path`` to ``path`` (not checked; see
    :func:`int8_accuracy`). ``dynamic``: int8 weights, activations quantized at run time (MatMul,
    Gemm). ``static``: QDQ with per-channel int8 weights and uint8 activations whose ranges come
    from running ``calibration`` (min/max). Shape inference of the fused MultiHeadAttention node
    needs the default tensor type (float)."""
    import logging
    logging.disable(logging.WARNING)    # the tools' pre-processing advice, printed through the root logger
    try:
        _quantize(fp32_path, path, mode, calibration)
    finally:
        logging.disable(logging.NOTSET)


def _quantize(fp32_path: str, path: str, mode: str, calibration: list[np.ndarray] | None) -> None:
    import onnx
    from onnxruntime import quantization as q
    options = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    if mode == "dynamic":
        q.quantize_dynamic(fp32_path, path, weight_type=q.QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                           extra_options=options)
        return
    if mode != "static":
        raise ValueError(f"int8 mode {mode!r}: expected one of {INT8_MODES}")
    name = onnx.load(fp32_path, load_external_data=False).graph.input[0].name
    channels = onnx.load(fp32_path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim[-1].dim_value

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration or [])

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {name: np.ascontiguousarray(batch[..., :channels])}

    import tempfile
    with tempfile.TemporaryDirectory() as work:    # every tensor typed, so the MatMuls after attention are quantized too
        inferred = os.path.join(work, "inferred.onnx")
        onnx.save(_typed_attention_outputs(onnx.load(fp32_path)), inferred)
        q.quantize_static(inferred, path, Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                          activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                          op_types_to_quantize=["MatMul", "Gemm"], calibrate_method=q.CalibrationMethod.MinMax,
                          extra_options=options)


def _typed_attention_outputs(graph):
    """``graph`` with the float type of every MultiHeadAttention output declared and ONNX shape
    inference run, so the tensors after a contrib-op attention node have types (quantize_static
    skips untyped ones)."""
    import onnx
    known = {v.name for v in graph.graph.value_info}
    for node in graph.graph.node:
        if node.op_type == "MultiHeadAttention":
            graph.graph.value_info.extend(onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None)
                                          for out in node.output if out and out not in known)
    return onnx.shape_inference.infer_shapes(graph)
