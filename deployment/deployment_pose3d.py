"""Export a trained Pose3D checkpoint to ONNX for CPU inference (seed README, "Deployment").

    python deployment/deployment_pose3d.py --config configs/pose3d/train_h36m.yaml \\
        --checkpoint checkpoint/pose3d/h36m --hyper_cfg hyper_config/method2/manual_joint_label1.yaml \\
        --hyper_relation_bias uniform --version 2 \\
        --evaluate checkpoint/pose3d/h36m/best_epoch.bin --deployment checkpoint/pose3d/h36m/pose3d.onnx

The graph maps ``pose2d [N, T, 17, 3]`` to ``pose3d [N, T, 17, 3]`` (dynamic N, dynamic T up to
the config's maxlen; see docs/inference.md). Attention runs in onnxruntime's fused
MultiHeadAttention kernel; ``--portable`` keeps to standard ONNX ops. The file is checked with ``onnx.checker``, run with
onnxruntime on realistic clips and compared with PyTorch; it is written (atomically) only when
the largest difference is at most 1e-4, otherwise the script stops with an error.

``--quantize int8`` writes an int8 graph instead (onnxruntime dynamic quantization; ``int8-static``:
static QDQ calibrated on synthetic clips), after the fp32 check, only if its P1 and P2 on synthetic
test clips change by at most ``--int8_tolerance_mm`` (1 mm) from the fp32 graph's; infer_wild.py
runs it like any export.
"""
import os
import tempfile
import time

import numpy as np
import torch

from lib.config.cli import base_parser, config_inputs, resolve_config
from lib.data.codec import PoseCodec
from lib.engine.metrics import mpjpe, p_mpjpe
from lib.errors import VerificationFailed, entry_point
from lib.inference.export import OPSET, PARITY_TOLERANCE, calibration_clips, deploy, quantize_int8, sample_clips
from lib.inference.lift import OnnxRunner
from lib.io import atomic_path, check_output_path, protected_inputs

INT8_TOLERANCE_MM = 1.0          # largest accepted change of P1 or P2 (mm) from the fp32 graph
from lib.model.factory import count_parameters, load_model


def parse_args(argv=None):
    parser = base_parser(__doc__)
    parser.add_argument("-c", "--checkpoint", default="checkpoint",
                        help="run folder; --evaluate defaults to its best_epoch.bin")
    parser.add_argument("-e", "--evaluate", default="", help="checkpoint file to export")
    parser.add_argument("--deployment", required=True, help="output .onnx path")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument("--portable", action="store_true",
                        help="standard ONNX ops only (attention decomposed) instead of onnxruntime's fused kernel")
    parser.add_argument("--tolerance", type=float, default=PARITY_TOLERANCE,
                        help="largest accepted |onnxruntime - PyTorch| difference")
    parser.add_argument("--quantize", choices=["int8", "int8-static"],
                        help="write an int8 graph: dynamic (int8) or static QDQ calibrated on synthetic clips (int8-static)")
    parser.add_argument("--int8_tolerance_mm", type=float, default=INT8_TOLERANCE_MM,
                        help="largest accepted P1/P2 change (mm) of the int8 graph on synthetic test clips")
    return parser.parse_args(argv)


def metadata(cfg, checkpoint: str) -> dict:
    """What infer_wild.py needs to run the graph without a config."""
    return {"maxlen": cfg.maxlen, "rootrel": cfg.rootrel, "version": cfg.version,
            "dim_in": PoseCodec.from_config(cfg).input_channels, "checkpoint": os.path.basename(checkpoint),
            "input": "pose2d [N,T,17,C]: x_n=2x/w-1, y_n=2y/w-h/w (pixels, image width w, height h), confidence",
            "output": "pose3d [N,T,17,3]: x_n, y_n as the input, z_n=2z/w"}


def int8_accuracy(fp32_path: str, int8_path: str, rootrel: bool, clips: int = 8, frames: int | None = None,
                  seed: int = 7) -> dict:
    """P1/P2 (mm) of the fp32 and int8 graphs on synthetic test clips with ground truth, their
    changes, and the largest output difference (normalised units)."""
    runners = {"fp32": OnnxRunner(fp32_path), "int8": OnnxRunner(int8_path)}
    maxlen = int(runners["fp32"].metadata.get("maxlen", 27))
    inputs, truth = sample_clips(clips, frames or maxlen, seed)
    preds = {k: run(inputs) for k, run in runners.items()}
    scores = {}
    for name, pred in preds.items():
        mm = PoseCodec.decode_mm(pred, truth["width"][:, None], truth["height"][:, None], truth["factor"])
        mm = mm - mm[..., :1, :]
        scores[name] = {"p1": float(mpjpe(mm, truth["gt_mm"]).mean()), "p2": float(p_mpjpe(mm, truth["gt_mm"]).mean())}
    return {**scores, "p1_change_mm": abs(scores["int8"]["p1"] - scores["fp32"]["p1"]),
            "p2_change_mm": abs(scores["int8"]["p2"] - scores["fp32"]["p2"]),
            "max_abs_diff": float(np.abs(preds["int8"] - preds["fp32"]).max()), "clips": list(inputs.shape)}


def deploy_int8(model: torch.nn.Module, path: str, metadata: dict, mode: str = "dynamic", opset: int = OPSET,
                tolerance: float = PARITY_TOLERANCE, tolerance_mm: float = INT8_TOLERANCE_MM,
                fused_attention: bool = True) -> dict:
    """:func:`deploy` the fp32 graph (parity-checked) to a temporary file, quantize it to int8
    (``mode``) and move it to ``path`` only if P1 and P2 change by at most ``tolerance_mm``.
    Returns the :func:`int8_accuracy` report; raises ``VerificationFailed`` otherwise."""
    with tempfile.TemporaryDirectory() as work, atomic_path(path) as tmp:
        fp32 = os.path.join(work, "fp32.onnx")
        deploy(model, fp32, metadata, opset, tolerance, fused_attention)
        start = time.perf_counter()
        calibration = calibration_clips(model.config.maxlen) if mode == "static" else None
        quantize_int8(fp32, tmp, mode, calibration)
        report = int8_accuracy(fp32, tmp, bool(metadata.get("rootrel", True)))
        print(f"int8 ({mode}) in {time.perf_counter() - start:.1f} s; on {report['clips'][0]} synthetic test clips of "
              f"{report['clips'][1]} frames: P1 fp32 {report['fp32']['p1']:.2f} mm, int8 {report['int8']['p1']:.2f} mm "
              f"(change {report['p1_change_mm']:.3f} mm); P2 fp32 {report['fp32']['p2']:.2f}, int8 "
              f"{report['int8']['p2']:.2f} (change {report['p2_change_mm']:.3f} mm); largest output difference "
              f"{report['max_abs_diff']:.3g} (tolerance: {tolerance_mm:g} mm P1/P2 change)")
        if not max(report["p1_change_mm"], report["p2_change_mm"]) <= tolerance_mm:
            raise VerificationFailed(f"int8 accuracy check failed: P1 change {report['p1_change_mm']:.3f} mm, P2 change "
                                     f"{report['p2_change_mm']:.3f} mm > {tolerance_mm:g} mm; {path} not written")
    return report


@entry_point
def main(argv=None) -> int:
    args = parse_args(argv)
    checkpoint = args.evaluate or os.path.join(args.checkpoint, "best_epoch.bin")
    with protected_inputs({"the checkpoint being exported": checkpoint, **config_inputs(args)}):
        return export(args, checkpoint)


def export(args, checkpoint: str) -> int:
    check_output_path(args.deployment, "--deployment")          # before any work
    cfg = resolve_config(args)
    model = load_model(cfg, checkpoint)
    print(f"loaded {checkpoint}: version {cfg.version}, {count_parameters(model) / 1e6:.2f} M parameters, "
          f"maxlen {cfg.maxlen}, rootrel {cfg.rootrel}")
    if args.quantize:
        mode = "static" if args.quantize == "int8-static" else "dynamic"
        report = deploy_int8(model, args.deployment, metadata(cfg, checkpoint), mode, args.opset, args.tolerance,
                             args.int8_tolerance_mm, fused_attention=not args.portable)
        print(f"wrote {args.deployment} (int8 {mode}; P1 change {report['p1_change_mm']:.3f} mm)")
        return 0
    diff = deploy(model, args.deployment, metadata(cfg, checkpoint), args.opset, args.tolerance,
                  fused_attention=not args.portable)
    print(f"wrote {args.deployment} (max |diff| {diff:.3g})")
    return 0


if __name__ == "__main__":
    main()
