"""Teacher -> student distillation on top of the shared :class:`~lib.engine.trainer.Trainer`.

:class:`DistillTrainer` changes only what a step optimises: the student's pose loss (from the
student config, as train.py) plus the weighted distillation terms of ``cfg.distill``
(docs/distillation.md)::

    total = pose + common_kd_alpha * kd_out + middle_kd_alpha * kd_feat + generation_alpha * kd_gen

    kd_out   MPJPE between the student's and the teacher's predicted poses (normalised units)
    kd_feat  mean over the mimicked layer pairs of the normalised feature MSE (kd_feat_<s>_<t>)
    kd_gen   masked reconstruction of the teacher's features of the last pair (generation)

The teacher is built from the config saved in its own checkpoint, frozen and in eval mode, and
runs under ``torch.no_grad``. The distiller (:class:`~lib.model.distiller.Distiller`) is an
extra module of the Trainer: optimised with the student, saved under ``checkpoint['extra']
['distiller']`` and restored on resume. Data, evaluation (of the student), logging, checkpoints
and resume are the Trainer's, exactly as in train.py.
"""
from __future__ import annotations

import os
from typing import Mapping

import torch
from easydict import EasyDict
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lib.model.distiller import Distiller
from lib.engine import distributed as dist
from lib.data.codec import PoseCodec
from lib.engine.trainer import Trainer
from lib.errors import CheckpointError, ConfigError
from lib.model.checkpoint import read_checkpoint
from lib.model.factory import CheckpointMismatchError, count_parameters, load_model, load_weights
from lib.model.loss import compute_losses, loss_mpjpe

# Teacher sizes that a distill file may state: distill key -> the teacher config's key.
TEACHER_SIZE_KEYS = {"t_dep": "depth", "t_cs": "dim_feat", "t_f": "maxlen"}


class DistillError(ConfigError):
    """The teacher, the student initialisation or the layer pairing is wrong; the message says how."""


# -- configuration ------------------------------------------------------------------------------
def default_teacher_path(rootrel: bool) -> str:
    """Where the README's train.py command puts the full static / global teacher."""
    return f"checkpoint/pose3d/h36m{'' if rootrel else '_global'}/best_epoch.bin"


# -- the teacher --------------------------------------------------------------------------------
def load_teacher(cfg) -> nn.Module:
    """The frozen, eval-mode teacher of ``cfg.distill``, built from its checkpoint's own config."""
    path = cfg.distill.teacher_ckpt or default_teacher_path(cfg.rootrel)
    if not os.path.isfile(path):
        raise DistillError(f"teacher checkpoint not found: {path!r} (distill teacher_ckpt). Train the teacher "
                           f"first, e.g. python train.py --config configs/pose3d/train_h36m"
                           f"{'' if cfg.rootrel else '_global'}.yaml --checkpoint {os.path.dirname(path)}, "
                           "or point teacher_ckpt (or --set distill.teacher_ckpt=FILE) at it")
    checkpoint = read_checkpoint(path, "teacher checkpoint")
    if checkpoint.config is None:
        raise DistillError(f"teacher checkpoint {path!r} has no saved 'config', so its architecture is unknown; "
                           "use a checkpoint written by Pose3D's train.py (it stores the resolved config)")
    teacher_cfg = EasyDict(checkpoint.config)
    check_teacher(teacher_cfg, cfg, path)
    try:
        teacher = load_model(teacher_cfg, path, checkpoint=checkpoint)
    except (CheckpointMismatchError, KeyError) as err:
        raise DistillError(f"teacher weights in {path!r} do not fit the config saved with them: {err}") from err
    teacher.requires_grad_(False).eval()
    teacher.codec = PoseCodec.from_config(teacher_cfg)
    return teacher


def check_teacher(teacher_cfg: Mapping, cfg, path: str) -> None:
    """Teacher sizes (t_dep/t_cs/t_f), layer ids, target type and clip length against the student's."""
    d = cfg.distill
    for key, teacher_key in TEACHER_SIZE_KEYS.items():
        if d[key] is not None and d[key] != teacher_cfg.get(teacher_key):
            raise DistillError(f"distill {key}={d[key]} but the teacher {path!r} has {teacher_key}="
                               f"{teacher_cfg.get(teacher_key)}; fix {key} (or set it to null to accept the teacher's)")
    bad = [i for i in d.middle_ids_t if i >= teacher_cfg["depth"]]
    if bad:
        raise DistillError(f"distill middle_ids_t {d.middle_ids_t}: layer(s) {bad} do not exist in the teacher "
                           f"{path!r} of depth {teacher_cfg['depth']}")
    if bool(teacher_cfg["rootrel"]) != bool(cfg.rootrel):
        kind = {True: "static (rootrel: true)", False: "global (rootrel: false)"}
        raise DistillError(f"rootrel mismatch: the teacher {path!r} predicts {kind[bool(teacher_cfg['rootrel'])]} "
                           f"poses but the student is {kind[bool(cfg.rootrel)]}; distil a static student from a "
                           "static teacher (train_h36m.yaml) and a global one from a global teacher (train_h36m_global.yaml)")
    if teacher_cfg["maxlen"] < cfg.clip_len:
        raise DistillError(f"the teacher {path!r} takes at most {teacher_cfg['maxlen']} frames (maxlen) but the "
                           f"student's clips have {cfg.clip_len} (clip_len)")


# -- the trainer --------------------------------------------------------------------------------
class WithFeatures(nn.Module):
    """``forward`` = ``model.forward_with_extras``, so DDP / torch.compile wrap the feature path."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict:
        return self.model.forward_with_extras(x)


class DistillTrainer(Trainer):
    """Trainer whose step adds the distillation terms of ``cfg.distill`` (module docstring)."""

    def __init__(self, cfg, checkpoint_dir: str, seed: int = 0, model=None):
        super().__init__(cfg, checkpoint_dir, seed, model)
        self.teacher = self.distiller = self.ddp_distiller = None    # set up with the student

    def setup_model(self, checkpoint=None, path: str = "") -> None:
        """The student (:meth:`Trainer.setup_model`), then the frozen teacher and the distiller."""
        if self.teacher is not None:
            return
        super().setup_model(checkpoint, path)
        d = self.cfg.distill
        self.teacher = load_teacher(self.cfg).to(self.device)
        self.distiller = Distiller(self.cfg.dim_feat, self.teacher.config.dim_feat,
                                   num_mimic=len(d.middle_ids_s) - int(d.generation),
                                   generation=d.generation, generation_tds=d.generation_tds)
        self.initialise(d.student_ckpt, d.distiller_ckpt)
        self.ddp_distiller = self.distiller
        if dist.is_main():
            print(f"Teacher: {count_parameters(self.teacher) / 1e6:.2f} M parameters (frozen); "
                  f"distiller: {count_parameters(self.distiller) / 1e6:.2f} M parameters")

    def initialise(self, student_ckpt: str | None, distiller_ckpt: str | None) -> None:
        """Start from given student / distiller weights (a resume, -r or automatic, overrides them)."""
        if student_ckpt:
            try:
                load_weights(self.model, read_checkpoint(student_ckpt, "student checkpoint").model_state)
            except CheckpointError as err:
                raise DistillError(f"distill student_ckpt {student_ckpt!r}: {err}") from err
        if distiller_ckpt:
            try:
                self.distiller.load_state_dict(read_checkpoint(distiller_ckpt, "distiller checkpoint").extra["distiller"])
            except (CheckpointError, KeyError, RuntimeError) as err:
                raise DistillError(f"distill distiller_ckpt {distiller_ckpt!r} has no distiller that fits "
                                   f"this pairing (expected checkpoint['extra']['distiller']): {err}") from err

    def extra_modules(self) -> dict:
        return {"distiller": self.distiller}

    def setup(self, resume: str = "", data=None, new_run: bool = False) -> None:
        super().setup(resume, data, new_run)
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_distiller = DistributedDataParallel(self.distiller, device_ids=ids)

    def wrap(self, model):
        return super().wrap(WithFeatures(model))

    def compute_loss(self, x: torch.Tensor, target: torch.Tensor):
        d = self.cfg.distill
        with torch.no_grad():
            teacher = self.teacher.forward_with_extras(self.teacher.codec.model_channels(x))
        student = self.ddp_model(self.codec.model_channels(x))
        pred = student["output"].float()
        total, terms = compute_losses(pred, target, self.cfg)
        if d.common_kd_alpha:
            terms["kd_out"] = loss_mpjpe(pred, teacher["output"].float())
            total = total + d.common_kd_alpha * terms["kd_out"]
        if d.middle_ids_s:
            total = total + self.feature_terms(student["features"], teacher["features"], terms)
        return total, terms

    def feature_terms(self, student: list, teacher: list, terms: dict) -> torch.Tensor:
        """Add kd_feat_<s>_<t>, kd_feat and kd_gen to ``terms``; return their weighted sum."""
        d = self.cfg.distill
        out = self.ddp_distiller([student[i] for i in d.middle_ids_s], [teacher[i] for i in d.middle_ids_t])
        weighted = torch.zeros((), device=self.device)
        if out["mimic"]:
            for s, t, value in zip(d.middle_ids_s, d.middle_ids_t, out["mimic"]):
                terms[f"kd_feat_{s}_{t}"] = value
            terms["kd_feat"] = torch.stack(out["mimic"]).mean()
            weighted = weighted + d.middle_kd_alpha * terms["kd_feat"]
        if "generation" in out:
            terms["kd_gen"] = out["generation"]
            weighted = weighted + d.generation_alpha * terms["kd_gen"]
        return weighted

