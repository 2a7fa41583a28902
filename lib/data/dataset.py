"""PyTorch Datasets over clip folders, and ``make_dataset`` that picks the store from the config.

Both Datasets list the clips of ``<data_root>/<subset>/`` concatenated over ``subset_list`` and
return the same items: ``(input, label)``, float32 tensors ``[T, 17, 3]``, input = (x_n, y_n,
confidence), label = normalised (x_n, y_n, z_n), not root-relative.

* ``MotionDataset3D`` reads MotionBERT's per-clip pickles (sorted listing of ``<split>/``).
* ``ArrayClipDataset`` reads the memory-mapped ``clips_<split>.npy`` store (clip i = pickle i):
  one copy of the clip's contiguous 2 x [T, 17, 3] block per item. (A batched ``__getitems__``
  gathering a whole batch into one buffer was measured slower: the fresh multi-MB buffer per
  batch costs more page faults than the copy saves, see docs/benchmarks.md.)

The Datasets return the clips as stored: all encoding (``gt_2d``, ``no_conf``, the training
target) is the trainer's codec (:class:`~lib.data.codec.PoseCodec`), and random flipping is done
per batch in the training loop (seeded, resumable). The confidence channel is kept, so a
distillation teacher may still read it.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from lib.data.clip_store import choose_store, clip_files, open_array_clips, read_pickle_clip
from lib.errors import DataError


def make_dataset(cfg, split: str, reader=None) -> Dataset:
    """The Dataset of ``split`` for a config: store from ``cfg.clip_store`` ('auto', 'pkl' or
    'npy'; auto = the fast store when present and valid, else the per-clip pickles); with
    ``random_cameras`` the training split is the source's world joints seen by random cameras
    (``lib.data.synthetic.views``; ``reader``: the config's source reader, read if not given)."""
    if cfg.random_cameras and split == "train":
        from lib.data.h36m import reader_from_config
        from lib.data.synthetic.views import RandomCameraDataset
        reader = reader or reader_from_config(cfg)
        return RandomCameraDataset(reader)
    folders = [os.path.join(cfg.data_root, subset) for subset in cfg.subset_list]
    store = choose_store(folders, split, cfg.clip_store)
    cls = ArrayClipDataset if store == "npy" else MotionDataset3D
    return cls(cfg.data_root, cfg.subset_list, split)


class MotionDataset3D(Dataset):
    """Clips of one split from per-clip pickles, as stored."""

    def __init__(self, data_root: str, subset_list, split: str):
        self.files = []
        for subset in subset_list:
            folder = os.path.join(data_root, subset, split)
            found = clip_files(folder)
            if not found:
                raise DataError(f"no clip files in {folder}\nMake them with:\n    python "
                                f"tools/convert_h36m_mixste_style.py --out_dir {os.path.join(data_root, subset)}"
                                "\n(or run train.py with a quickstart config, which makes synthetic data).")
            self.files += found

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        return to_tensors(*read_pickle_clip(self.files[index]))


class ArrayClipDataset(Dataset):
    """Clips of one split from the memory-mapped fast store (same items and order as
    ``MotionDataset3D``). Files are checked when the Dataset is made and opened lazily in each
    process, so DataLoader workers (fork or spawn, persistent or not) map the file themselves."""

    def __init__(self, data_root: str, subset_list, split: str):
        self.folders = [os.path.join(data_root, subset) for subset in subset_list]
        self.split = split
        sizes = [len(open_array_clips(folder, split)) for folder in self.folders]
        self.offsets = np.cumsum([0] + sizes)
        self._arrays = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_arrays"] = None                   # never pickle the mapped data to a worker
        return state

    def arrays(self) -> list[np.ndarray]:
        if self._arrays is None:
            self._arrays = [open_array_clips(folder, self.split) for folder in self.folders]
        return self._arrays

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int):
        index = int(index) + len(self) if index < 0 else int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"clip {index} out of range ({len(self)} clips)")
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        clip = torch.from_numpy(np.array(self.arrays()[part][index - self.offsets[part]]))  # one copy
        return clip[0], clip[1]


def set_dataset_epoch(dataset: Dataset, epoch: int, seed: int) -> None:
    """Tell a Dataset that draws per epoch (random cameras) which epoch it is; others ignore it."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch, seed)


def to_tensors(data_input: np.ndarray, data_label: np.ndarray):
    """Float tensors ``(input, label)`` of one clip (always copies, so read-only memory maps are
    never handed to torch)."""
    return (torch.tensor(np.asarray(data_input), dtype=torch.float32),
            torch.tensor(np.asarray(data_label), dtype=torch.float32))
