"""Feature distillation from a DSTformer teacher into a smaller DSTformer student (EHGFormer's
``train_distill.py`` recipe).

The distiller owns everything that is trained besides the student, never the teacher:

* ``align[p]``: ``Linear(C_s -> C_t)`` mapping the student's layer features onto the teacher's
  width, one per mimicked layer pair ``p``;
* with ``generation`` (masked feature reconstruction, ViTKD-style): ``generation_align``
  ``Linear(C_s -> C_t)``, a zero-initialised ``mask_token`` ``[C_t]`` and ``generation_compare``
  ``Conv1d(C_t, C_t, 3) -> ReLU -> Conv1d(C_t, C_t, 3)`` along time.

Features are the fused per-layer tokens ``[N, T, J, C]`` of ``DSTformer.forward_with_extras``.
Every term is a *normalised* squared error (see :func:`normalised_mse`): 0 when the student
reproduces the teacher exactly, 1 when it predicts zeros, independent of the teacher's feature
scale, of the clip length and of the batch size. (EHGFormer's ``loss_distill.py`` sums squared
errors and divides by N*T, then weights the sum by 1e-6; docs/distillation.md compares the two.)
"""
from __future__ import annotations

import torch
from torch import nn


def normalised_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``sum (pred - target)^2 / sum target^2`` over all elements (or over the ``mask``-ed ones).

    ``mask`` broadcasts against ``pred``. The denominator is the teacher's energy on the same
    elements (no gradient flows into it); computed in float32.
    """
    pred, target = pred.float(), target.float()
    err, energy = (pred - target).square(), target.square()
    if mask is not None:
        mask = mask.to(err.dtype)
        err, energy = err * mask, energy * mask
    return err.sum() / energy.sum().detach().clamp_min(1e-12)


class Distiller(nn.Module):
    """Channel alignment and generation head; ``forward`` returns the unweighted loss terms.

    Args:
        dim_student, dim_teacher: feature widths ``C_s`` and ``C_t``.
        num_mimic: number of layer pairs whose features the student mimics directly.
        generation: add the masked reconstruction head (for one more pair, the last one).
        generation_tds: keep every ``generation_tds``-th frame (0, tds, 2 tds, ...) of the
            student's features and replace the others by the mask token.
    """

    def __init__(self, dim_student: int, dim_teacher: int, num_mimic: int,
                 generation: bool = False, generation_tds: int = 2):
        super().__init__()
        self.generation_tds = generation_tds
        self.align = nn.ModuleList(nn.Linear(dim_student, dim_teacher) for _ in range(num_mimic))
        self.generation = generation
        if generation:
            self.mask_token = nn.Parameter(torch.zeros(dim_teacher))
            self.generation_align = nn.Linear(dim_student, dim_teacher)
            self.generation_compare = nn.Sequential(
                nn.Conv1d(dim_teacher, dim_teacher, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv1d(dim_teacher, dim_teacher, 3, padding=1))

    def mimic_losses(self, student: list[torch.Tensor], teacher: list[torch.Tensor]) -> list[torch.Tensor]:
        """One normalised MSE per pair between ``align[p](student[p])`` and ``teacher[p]``."""
        return [normalised_mse(align(s), t) for align, s, t in zip(self.align, student, teacher)]

    def masked_frames(self, num_frames: int, device) -> torch.Tensor:
        """``[T]`` bool: True for the frames the student does not see (index % tds != 0)."""
        return torch.arange(num_frames, device=device) % self.generation_tds != 0

    def reconstruct(self, student: torch.Tensor) -> torch.Tensor:
        """Student features ``[N, T, J, C_s]`` -> reconstructed teacher features ``[N, T, J, C_t]``."""
        n, t, j, _ = student.shape
        x = self.generation_align(student)
        masked = self.masked_frames(t, x.device)[None, :, None, None]
        x = torch.where(masked, self.mask_token.to(x.dtype), x)
        x = x.permute(0, 2, 3, 1).reshape(n * j, -1, t)          # Conv1d over time, per joint
        x = self.generation_compare(x)
        return x.reshape(n, j, -1, t).permute(0, 3, 1, 2)

    def generation_loss(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Normalised MSE of the reconstruction on the masked frames only."""
        masked = self.masked_frames(student.shape[1], student.device)[None, :, None, None]
        return normalised_mse(self.reconstruct(student), teacher, masked)

    def forward(self, student: list[torch.Tensor], teacher: list[torch.Tensor]) -> dict:
        """Paired features (student list and teacher list, same length) -> ``{'mimic': [...], 'generation': t?}``.

        With ``generation`` the last pair goes to the generation head and the others are mimicked.
        """
        n_mimic = len(self.align)
        out = {"mimic": self.mimic_losses(student[:n_mimic], teacher[:n_mimic])}
        if self.generation:
            out["generation"] = self.generation_loss(student[n_mimic], teacher[n_mimic])
        return out
