"""ONNX deployment of a Pose3D model: export, graph check and parity with PyTorch.

The exported graph (``OPSET`` pinned) maps ``pose2d [N, T, 17, C]`` (``C`` = 3: x_n, y_n,
confidence; 2 for ``no_conf`` models) to ``pose3d [N, T, 17, 3]`` in the normalised units of
``lib.utils.wild``; ``N`` is dynamic and so is ``T`` in ``1..maxlen``. The model's ``maxlen``,
``rootrel``, ``version`` and input convention are stored in the ONNX metadata, so
``deployment/infer_wild.py`` needs no config to run the file.
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
from lib.model.factory import CheckpointMismatchError, build_model, extract_state_dict, load_weights
from lib.utils.checkpoint import load_checkpoint

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "pose2d", "pose3d"
PARITY_TOLERANCE = 1e-4
SAMPLE_ACTIONS = ("Walking", "Greeting", "Sitting", "Eating")


def sample_input(batch: int, frames: int, seed: int = 0) -> np.ndarray:
    """Realistic normalised 2D clips ``[batch, frames, 17, 3]``: synthetic H36M motions seen by the
    S9 cameras with detector-like noise and confidences (not uniform noise)."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(batch):
        camera = i % len(cam.CAMERA_IDS)
        world = synthesize_motion(SAMPLE_ACTIONS[i % len(SAMPLE_ACTIONS)], frames, rng, subject_bones(seed, 9))
        pixels = cam.camera_to_pixel(cam.world_to_camera(world, "S9", camera), camera)
        width, height = cam.resolution(camera)
        noise, conf = detector_noise(rng, frames, width)
        clips.append(normalize_2d(np.concatenate([pixels + noise, conf], -1), width, height))
    return np.stack(clips).astype(np.float32)


def load_model(cfg, path: str) -> torch.nn.Module:
    """The config's model with the checkpoint at ``path`` loaded strictly (eval mode).

    Raises ``FileNotFoundError`` (no file) or ``CheckpointMismatchError`` (another architecture,
    version or config), each with a message that names the problem."""
    model = build_model(cfg, verbose=False)
    try:
        load_weights(model, extract_state_dict(load_checkpoint(path)))
    except CheckpointMismatchError as err:
        raise CheckpointMismatchError(f"{path} does not match --config/--version/--hyper_cfg: {err}") from None
    return model.eval()


def export(model: torch.nn.Module, path: str, metadata: dict, opset: int = OPSET) -> None:
    """Export ``model`` to ``path`` with dynamic N and T (TorchScript exporter: the graph traced
    from one full-length clip; the positional-embedding slice follows the dynamic T)."""
    import onnx
    config = model.config
    example = torch.from_numpy(sample_input(1, config.maxlen))[..., :config.dim_in]
    axes = {0: "batch", 1: "frames"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
        torch.onnx.export(model.eval(), (example,), path, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes})
    graph = onnx.load(path)
    onnx.helper.set_model_props(graph, {k: str(v) for k, v in metadata.items()})
    onnx.save(graph, path)


def parity(model: torch.nn.Module, path: str, inputs: list[np.ndarray]) -> float:
    """Largest |onnxruntime - PyTorch| over the given input batches."""
    from lib.utils.wild import OnnxRunner, TorchRunner
    onnx_run, torch_run = OnnxRunner(path), TorchRunner(model, model.config.dim_in)
    return max(float(np.abs(onnx_run(x) - torch_run(x)).max()) for x in inputs)


def deploy(model: torch.nn.Module, path: str, metadata: dict, opset: int = OPSET,
           tolerance: float = PARITY_TOLERANCE) -> float:
    """Export, check with ``onnx.checker``, compare with PyTorch on realistic clips (batch 1 at
    maxlen, batch 3 at a shorter T) and move the file into place only if the difference is at most
    ``tolerance``. Returns the largest difference; raises ``RuntimeError`` above the tolerance."""
    import onnx
    maxlen = model.config.maxlen
    tmp = f"{path}.tmp{os.getpid()}.onnx"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        start = time.perf_counter()
        export(model, tmp, metadata, opset)
        onnx.checker.check_model(tmp, full_check=True)
        print(f"exported and checked (opset {opset}) in {time.perf_counter() - start:.1f} s")
        inputs = [sample_input(1, maxlen, seed=1), sample_input(3, max(1, maxlen * 2 // 3), seed=2)]
        diff = parity(model, tmp, inputs)
        print(f"onnxruntime vs PyTorch: max |diff| = {diff:.3g} (tolerance {tolerance:g}) "
              f"over inputs {[x.shape for x in inputs]}")
        if not diff <= tolerance:
            raise RuntimeError(f"ONNX parity check failed: max |diff| {diff:.3g} > {tolerance:g}; {path} not written")
        os.replace(tmp, path)
        return diff
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
