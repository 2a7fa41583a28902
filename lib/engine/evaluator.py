"""Evaluation on the H36M test split: the MotionBERT protocol and a full-coverage variant.

Protocol (reference A9), the default and the number to compare with the literature:
  1. non-overlapping test clips of ``clip_len`` strided frames (``sample_stride`` = tds), each
     video's tail after its last full clip left out, as in MotionBERT/EHGFormer;
  2. flip test-time augmentation: average the prediction and the un-flipped prediction of the
     flipped input;
  3. static models (``rootrel``): the predicted root is set to 0; ``gt_2d``: predicted x, y are
     replaced by the input's;
  4. denormalise with the clip's camera, multiply by the per-frame 2.5d factor (mm), make
     prediction and ``joints_2.5d_image`` root-relative, per-frame MPJPE (P1) and P-MPJPE (P2);
  5. skip the three blocked S9 sequences, average per action over S9 and S11, then take the
     unweighted mean of the 15 action means.

Full coverage: the same, but scoring every frame of the test videos: every tds offset
(0 .. tds-1) is evaluated and each video's tail gets a last clip aligned to its end; frames
covered by several clips average their errors.
"""
from __future__ import annotations

import numpy as np
import torch

from lib.data.h36m import DataReaderH36M
from lib.data.skeleton import flip
from lib.engine import metrics
from lib.io import write_json


def reader_from_config(cfg, frame_offset: int = 0, source: dict | None = None) -> DataReaderH36M:
    """The test-time reader of a config (non-overlapping clips of ``clip_len``)."""
    return DataReaderH36M(cfg.clip_len, cfg.sample_stride, cfg.data_stride, cfg.clip_len,
                          cfg.dt_root, cfg.dt_file, read_confidence=True,
                          frame_offset=frame_offset, source=source)


def prepare_target(label: torch.Tensor, rootrel: bool) -> torch.Tensor:
    """Training target from a normalised label ``[N, T, 17, 3]`` (reference A8).

    static (``rootrel``): every frame root-relative. dynamic: only z changes, relative to the
    root depth of the clip's first frame.
    """
    if rootrel:
        return label - label[:, :, :1, :]
    target = label.clone()
    target[..., 2] = target[..., 2] - label[:, :1, :1, 2]
    return target


def model_input(x: torch.Tensor, no_conf: bool) -> torch.Tensor:
    """Drop the confidence channel for ``no_conf`` models."""
    return x[..., :2] if no_conf else x


@torch.no_grad()
def predict_clips(model, inputs: np.ndarray, cfg, device, batch_size: int = 64,
                  flip_tta: bool = True) -> np.ndarray:
    """Normalised predictions ``[C, T, 17, 3]`` for input clips ``[C, T, 17, 3]``, with flip TTA
    and the root / gt_2d handling of the protocol."""
    model.eval()
    out = []
    for start in range(0, len(inputs), batch_size):
        x = torch.from_numpy(inputs[start:start + batch_size]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(cfg.bf16)):
            pred = model(model_input(x, cfg.no_conf)).float()
            if flip_tta:
                pred_flip = model(model_input(flip(x), cfg.no_conf)).float()
                pred = (pred + flip(pred_flip)) / 2
        if cfg.rootrel:
            pred[:, :, 0, :] = 0
        if cfg.gt_2d:
            pred[..., :2] = x[..., :2]
        out.append(pred.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,) + inputs.shape[1:], np.float32)


class Evaluator:
    """Holds the test clips of a config in memory and scores a model on them."""

    def __init__(self, cfg, reader: DataReaderH36M | None = None):
        self.cfg = cfg
        base = reader or reader_from_config(cfg)
        offsets = range(cfg.sample_stride) if cfg.eval_full_coverage else [0]
        self.readers = [base] + [reader_from_config(cfg, o, base.raw) for o in offsets if o]
        self.meta = base.test_meta(strided=False)
        self.parts = [self._clips(r) for r in self.readers]

    def _clips(self, reader: DataReaderH36M) -> dict:
        """Test clips of one tds offset; ``protocol`` marks the reference protocol's clips."""
        full = self.cfg.eval_full_coverage
        idx = reader.clip_indices("test", cover_tail=full)
        regular = {tuple(r) for r in reader.clip_indices("test")[:, [0, -1]].tolist()}
        protocol = np.array([reader.frame_offset == 0 and (r[0], r[-1]) in regular for r in idx[:, [0, -1]].tolist()])
        inputs = reader.read_2d("test")[idx]
        if self.cfg.gt_2d:
            inputs[..., :2] = reader.read_3d("test")[idx][..., :2]
            inputs[..., 2] = 1.0
        return {"reader": reader, "idx": idx, "inputs": inputs, "protocol": protocol}

    def num_clips(self) -> int:
        return sum(len(p["idx"]) for p in self.parts)

    def run(self, model, device=torch.device("cpu"), batch_size: int = 64) -> dict:
        """Score ``model``: ``{'protocol': {...}, 'full_coverage': {...}}`` (see lib/engine/metrics)."""
        preds_mm, frames, protocol = [], [], []
        for part in self.parts:
            pred = predict_clips(model, part["inputs"], self.cfg, device, batch_size)
            pixel = part["reader"].denormalize(pred, part["idx"])
            global_idx = part["reader"].original_frames(part["idx"])
            preds_mm.append(pixel * self.meta.factor[global_idx][..., None, None])
            frames.append(global_idx)
            protocol.append(part["protocol"])
        preds_mm, frames, protocol = map(np.concatenate, (preds_mm, frames, protocol))
        results = {"protocol": self._score(preds_mm[protocol], frames[protocol])}
        if self.cfg.eval_full_coverage:
            results["full_coverage"] = self._score(preds_mm, frames)
        return results

    def _score(self, pred_mm: np.ndarray, frames: np.ndarray) -> dict:
        return metrics.evaluate_frames(pred_mm, self.meta.gt_mm[frames], frames,
                                       self.meta.actions, self.meta.sources)


def format_table(results: dict) -> str:
    """Per-action P1/P2 table (mm) of both evaluations, as printed by train.py / evaluate.py."""
    names = [k for k in ("protocol", "full_coverage") if k in results]
    actions = sorted(results[names[0]]["per_action"])
    head = f"{'action':<14}" + "".join(f"{n + ' P1':>20}{n + ' P2':>20}" for n in names)
    lines = [head, "-" * len(head)]
    for action in actions:
        row = f"{action:<14}"
        for n in names:
            a = results[n]["per_action"].get(action, {"p1": float("nan"), "p2": float("nan")})
            row += f"{a['p1']:>20.2f}{a['p2']:>20.2f}"
        lines.append(row)
    lines.append("-" * len(head))
    lines.append(f"{'mean':<14}" + "".join(f"{results[n]['p1']:>20.2f}{results[n]['p2']:>20.2f}" for n in names))
    frames = ", ".join(f"{n}: {results[n]['frames_scored']} frames" for n in names)
    lines.append(f"(protocol = MotionBERT/EHGFormer, comparable with the literature; {frames})")
    return "\n".join(lines)


def save_results(results: dict, path: str) -> None:
    """Write the results as JSON (atomically)."""
    write_json(path, results)
