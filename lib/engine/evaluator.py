"""Evaluation on the H36M test split: the MotionBERT protocol and a full-coverage variant.

Protocol (MotionBERT's ``train.py`` evaluation, also EHGFormer's; docs/protocols.md), the default and the number to compare with the literature:
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

The protocol is named as it is (:func:`protocol_name`): at tds 1 with 243-frame clips it is
MotionBERT's, at tds 2 EHGFormer's (every second test frame only); anything else has no
published counterpart. Validation (:class:`ValidationScorer`): the held-out training sequences
of ``lib.data.splits``, scored the same way (flip TTA, non-overlapping clips) but in pixel-scaled
units, because the source's train split has no 2.5d factor. Evaluation always runs in fp32.
"""
from __future__ import annotations

import numpy as np
import torch

from lib.data.codec import PoseCodec
from lib.data.h36m import DataReaderH36M, reader_from_config
from lib.data.normalize import denormalize_3d
from lib.data.splits import validation_clip_indices
from lib.engine import metrics
from lib.io import write_json


@torch.no_grad()
def predict_clips(model, inputs: np.ndarray, codec: PoseCodec, device, labels: np.ndarray | None = None,
                  batch_size: int = 64, flip_tta: bool = True) -> np.ndarray:
    """Normalised predictions ``[C, T, 17, 3]`` (fp32) for input clips ``[C, T, 17, 3]``, batched,
    decoded by ``codec`` (flip TTA, root and gt_2d handling). ``labels``: needed for gt_2d."""
    model.eval()
    out = []
    for start in range(0, len(inputs), batch_size):
        x = torch.from_numpy(inputs[start:start + batch_size]).to(device)
        y = None if labels is None else torch.from_numpy(labels[start:start + batch_size]).to(device)
        pred = codec.predict(lambda t: model(t).float(), x, y, flip_tta)
        out.append(pred.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,) + inputs.shape[1:], np.float32)


class Evaluator:
    """Holds the test clips of a config in memory and scores a model on them."""

    def __init__(self, cfg, reader: DataReaderH36M | None = None):
        self.cfg = cfg
        self.codec = PoseCodec.from_config(cfg)
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
        labels = reader.read_3d("test")[idx] if self.codec.gt_2d else None
        return {"reader": reader, "idx": idx, "inputs": reader.read_2d("test")[idx], "labels": labels,
                "protocol": protocol}

    def num_clips(self) -> int:
        return sum(len(p["idx"]) for p in self.parts)

    def run(self, model, device=torch.device("cpu"), batch_size: int = 64) -> dict:
        """Score ``model``: ``{'protocol': {...}, 'full_coverage': {...}}`` (see lib/engine/metrics)."""
        preds_mm, frames, protocol = self._predict(model, device, batch_size)
        results = {"protocol": self._score(preds_mm[protocol], frames[protocol])}
        if self.cfg.eval_full_coverage:
            results["full_coverage"] = self._score(preds_mm, frames)
        return results

    def frame_errors(self, model, device=torch.device("cpu"), batch_size: int = 64):
        """Per test frame ``(errors [F, 2] P1/P2 mm, covered [F])`` of the protocol's clips, for
        breakdowns beyond the per-action table (F = test frames of the unstrided source)."""
        preds_mm, frames, protocol = self._predict(model, device, batch_size)
        return metrics.frame_errors(preds_mm[protocol], self.meta.gt_mm[frames[protocol]],
                                    frames[protocol], self.meta.sources)

    def _predict(self, model, device, batch_size):
        """Predictions in mm ``[C, T, 17, 3]``, their global frames and the protocol mask."""
        preds_mm, frames, protocol = [], [], []
        for part in self.parts:
            pred = predict_clips(model, part["inputs"], self.codec, device, part["labels"], batch_size)
            width, height = part["reader"].clip_resolution(part["idx"])
            global_idx = part["reader"].original_frames(part["idx"])
            preds_mm.append(self.codec.decode_mm(pred, width, height, self.meta.factor[global_idx]))
            frames.append(global_idx)
            protocol.append(part["protocol"])
        return tuple(map(np.concatenate, (preds_mm, frames, protocol)))

    def _score(self, pred_mm: np.ndarray, frames: np.ndarray) -> dict:
        return metrics.evaluate_frames(pred_mm, self.meta.gt_mm[frames], frames,
                                       self.meta.actions, self.meta.sources)


class ValidationScorer:
    """P1/P2 of a model on the held-out training sequences (pixel-scaled units, flip TTA)."""

    def __init__(self, cfg, reader: DataReaderH36M, held_out: set[str]):
        self.codec = PoseCodec.from_config(cfg)
        idx = validation_clip_indices(reader, held_out)
        width, height = (r[idx[:, 0]][:, None] for r in reader.resolution("train"))
        self.inputs, self.labels = reader.read_2d("train")[idx], reader.read_3d("train")[idx]
        self.gt = denormalize_3d(self.labels, width, height)
        self.size, self.sequences = (width, height), len(held_out)

    def run(self, model, device=torch.device("cpu"), batch_size: int = 64) -> dict:
        labels = self.labels if self.codec.gt_2d else None
        pred = predict_clips(model, self.inputs, self.codec, device, labels, batch_size)
        pred, gt = metrics.root_relative(denormalize_3d(pred, *self.size)), metrics.root_relative(self.gt)
        return {"p1": float(metrics.mpjpe(pred, gt).mean()), "p2": float(metrics.p_mpjpe(pred, gt).mean()),
                "units": "px", "frames_scored": int(pred.shape[0] * pred.shape[1]), "sequences": self.sequences}


PUBLISHED = {"MotionBERT (tds 1)": "MotionBERT's 39.2 mm (scratch) / 37.2 mm (fine-tuned)",
             "EHGFormer (tds 2)": "EHGFormer's 38.3-38.8 mm (full) / 39.8-39.9 mm (distilled small)"}


def protocol_name(cfg) -> str:
    """``MotionBERT (tds 1)``, ``EHGFormer (tds 2)``, or a plain description when neither applies."""
    tds, frames = int(cfg.sample_stride), int(cfg.clip_len)
    if frames == 243 and tds in (1, 2):
        return "MotionBERT (tds 1)" if tds == 1 else "EHGFormer (tds 2)"
    return f"tds {tds}, {frames}-frame test clips (no published counterpart)"


def describe(cfg, selected_on: str | None, epoch: int | None = None) -> dict:
    """The ``about`` entry of every results JSON and table: protocol, selection split, recipe."""
    name = protocol_name(cfg)
    selection = {"val": "validation split (held-out training sequences)",
                 "test": "test set, as MotionBERT/EHGFormer do (optimistic)"}.get(selected_on, "not selected (given file)")
    return {"protocol": name, "compare_with": PUBLISHED.get(name, "no published number"),
            "selected_on": selection, "recipe": cfg.get("recipe") or "unnamed (see the config file)",
            "config": cfg.get("config_path"), "epoch": epoch}


def format_table(results: dict) -> str:
    """Per-action P1/P2 table (mm) of both evaluations, as printed by train.py / evaluate.py,
    headed by what the numbers are (``results['about']``, see :func:`describe`)."""
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
    lines.append(f"(protocol = the reference evaluation code on its frames; full_coverage = every test frame; {frames})")
    if "validation" in results:
        v = results["validation"]
        lines.append(f"validation split: P1 {v['p1']:.2f} {v['units']}, P2 {v['p2']:.2f} {v['units']} "
                     f"({v['frames_scored']} frames of {v['sequences']} held-out sequences)")
    about = results.get("about")
    if about:
        lines = [f"protocol: {about['protocol']} -- compare with {about['compare_with']}",
                 f"checkpoint selected on: {about['selected_on']}" + (f" (epoch {about['epoch']})" if about.get("epoch") is not None else ""),
                 f"recipe: {about['recipe']}", ""] + lines
    return "\n".join(lines)


def save_results(results: dict, path: str) -> None:
    """Write the results as JSON (atomically)."""
    write_json(path, results)
