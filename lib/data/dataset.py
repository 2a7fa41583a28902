"""PyTorch Dataset over clip folders (MotionBERT's ``MotionDataset3D`` layout).

The file list is the sorted listing of ``<data_root>/<subset>/<split>/`` concatenated over
``subset_list``. Each item is ``(input, label)``, float32 tensors ``[T, 17, 3]``:
input = (x_n, y_n, confidence), label = normalised (x_n, y_n, z_n), not root-relative.
Random flipping is done per batch in the training loop (seeded, resumable), not here.
"""
from __future__ import annotations

import os
import pickle

import numpy as np
import torch
from torch.utils.data import Dataset

from lib.data.clip_store import clip_files
from lib.data.h36m import DataError


class MotionDataset3D(Dataset):
    """Clips of one split. ``gt_2d``: replace the input's x, y by the label's, confidence 1.
    ``no_conf``: drop the confidence channel (model input ``[T, 17, 2]``)."""

    def __init__(self, data_root: str, subset_list, split: str, gt_2d: bool = False,
                 no_conf: bool = False):
        self.files = []
        for subset in subset_list:
            folder = os.path.join(data_root, subset, split)
            found = clip_files(folder)
            if not found:
                raise DataError(f"no clip files in {folder}\nMake them with:\n    python "
                                f"tools/convert_h36m_mixste_style.py --out_dir {os.path.join(data_root, subset)}"
                                "\n(or run train.py with a quickstart config, which makes synthetic data).")
            self.files += found
        self.gt_2d = gt_2d
        self.no_conf = no_conf

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        with open(self.files[index], "rb") as f:
            sample = pickle.load(f)
        return to_model_io(sample["data_input"], sample["data_label"], self.gt_2d, self.no_conf)


def to_model_io(data_input: np.ndarray, data_label: np.ndarray, gt_2d: bool, no_conf: bool):
    """Apply the gt_2d / no_conf input options and convert to float tensors."""
    x = np.array(data_input, dtype=np.float32)
    y = np.asarray(data_label, dtype=np.float32)
    if gt_2d:
        x[..., :2] = y[..., :2]
        x[..., 2] = 1.0
    if no_conf:
        x = x[..., :2]
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
