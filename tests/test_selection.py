"""Model selection without the test set (lib/data/splits.py, Trainer) and protocol labels."""
import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from easydict import EasyDict

from lib.config.schema import load_config
from lib.data.h36m import DataReaderH36M, sequence_id
from lib.data.prepare import ensure_clips
from lib.data.splits import (clip_sequences, stored_clip_sequences, subject_of, train_clip_sequences,
                             validation_clip_indices, validation_sequences)
from lib.data.synthetic import write_synthetic_h36m
from lib.engine.evaluator import ValidationScorer, describe, format_table, protocol_name
from lib.engine.trainer import Trainer, build_run_data
from lib.errors import ConfigError, DataError
from lib.io import load_json
from lib.model.checkpoint import read_checkpoint

TINY = {"epochs": 3, "batch_size": 8, "learning_rate": 2e-3, "checkpoint_frequency": 100, "maxlen": 9,
        "dim_feat": 16, "dim_rep": 16, "depth": 1, "num_heads": 2, "clip_len": 9, "data_stride": 9,
        "sample_stride": 2, "num_workers": 0, "max_iters_per_epoch": 4, "eval_full_coverage": False,
        "val_fraction": 0.2}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sel")
    write_synthetic_h36m(str(root / "src" / "h36m_sh_conf_cam_source_final.pkl"), seed=0, size="tiny",
                         subjects=["S1", "S5", "S9"], actions=["Walking", "Eating", "Sitting"], cameras=[1, 2])
    ensure_clips(config(root))
    return root


def config(root, **changes):
    path = root / f"cfg_{len(changes)}_{abs(hash(tuple(sorted(map(str, changes.items())))))}.yaml"
    path.write_text(yaml.safe_dump({**TINY, "dt_root": str(root / "src"), "data_root": str(root),
                                    "subset_list": ["clips"], **changes}))
    return load_config(str(path))


class GuardedSplit(dict):
    """A source split that fails the test on any read."""

    def __getitem__(self, key):
        raise AssertionError(f"read test/{key}")

    get = __contains__ = __getitem__


def test_validation_never_reads_the_test_split(root):
    cfg = config(root)
    reader = DataReaderH36M(cfg.clip_len, cfg.sample_stride, cfg.data_stride, cfg.clip_len, cfg.dt_root, cfg.dt_file)
    reader.raw = {"train": reader.raw["train"], "test": GuardedSplit()}
    held_out = validation_sequences(reader.strided("train", "source"), cfg)
    scorer = ValidationScorer(cfg, reader, held_out)
    res = scorer.run(torch.nn.Identity())                              # predicts its input
    assert res["units"] == "px" and res["p1"] > 0 and res["sequences"] == len(held_out)


def test_held_out_sequences_are_training_sequences_and_never_trained_on(root):
    cfg = config(root)
    data = build_run_data(cfg, evaluate=False)
    reader = DataReaderH36M(cfg.clip_len, cfg.sample_stride, cfg.data_stride, cfg.clip_len, cfg.dt_root, cfg.dt_file)
    held_out = validation_sequences(reader.strided("train", "source"), cfg)
    sequences = train_clip_sequences(reader)
    trained = set(sequences[data.loader.dataset.indices])
    assert held_out and not held_out & trained and trained | held_out == set(sequences)
    assert {subject_of(q) for q in held_out} <= {"S1", "S5"}             # never a test subject
    val_idx = validation_clip_indices(reader, held_out)
    assert {sequence_id(s) for s in reader.strided("train", "source")[val_idx[:, 0]]} == held_out


def test_val_subjects_and_select_on_test(root):
    sources = DataReaderH36M(9, 2, 9, 9, str(root / "src")).strided("train", "source")
    assert {subject_of(q) for q in validation_sequences(sources, config(root, val_subjects=["S5"]))} == {"S5"}
    assert validation_sequences(sources, config(root, select_on="test")) == set()
    with pytest.raises(ConfigError, match="no such subject"):
        validation_sequences(sources, config(root, val_subjects=["S7"]))
    with pytest.raises(ConfigError, match="all"):
        validation_sequences(sources, EasyDict(select_on="val", val_fraction=0.5, val_subjects=["S1", "S5"]))


@pytest.mark.parametrize("select_on", ["val", "test"])
def test_best_checkpoint_is_the_argmin_of_the_selection_split(root, tmp_path, select_on):
    trainer = Trainer(config(root, select_on=select_on), str(tmp_path / "run"), seed=0)
    trainer.setup()
    trainer.fit()
    key = "val_p1" if select_on == "val" else "p1"
    scores = [h[key] for h in trainer.history]
    best = read_checkpoint(str(tmp_path / "run" / "best_epoch.bin")).run
    assert best.epoch == int(np.argmin(scores)) + 1 and best.selected_on == select_on
    about = load_json(str(tmp_path / "run" / "best_epoch_results.json"))["about"]
    assert about["selected_on"].startswith("validation" if select_on == "val" else "test")
    assert ("validation" in best.results) == (select_on == "val")
    assert best.best_units == ("px" if select_on == "val" else "mm") and best.best_epoch == best.epoch - 1


@pytest.mark.parametrize("tds, frames, name", [(1, 243, "MotionBERT (tds 1)"), (2, 243, "EHGFormer (tds 2)"),
                                                (2, 27, "tds 2, 27-frame test clips (no published counterpart)")])
def test_protocol_names(tds, frames, name):
    cfg = EasyDict(sample_stride=tds, clip_len=frames, recipe="EHGFormer static", config_path="c.yaml")
    assert protocol_name(cfg) == name
    per_action = {"Walking": {"p1": 1.0, "p2": 0.5}}
    results = {"protocol": {"p1": 1.0, "p2": 0.5, "per_action": per_action, "frames_scored": 3},
               "about": describe(cfg, "val", 7)}
    table = format_table(results)
    assert f"protocol: {name}" in table and "selected on: validation split" in table and "(epoch 7)" in table
    assert "recipe: EHGFormer static" in table


def test_clip_folder_records_each_clips_sequence_so_training_needs_no_source(root, tmp_path):
    cfg = config(root)
    reader = DataReaderH36M(cfg.clip_len, cfg.sample_stride, cfg.data_stride, cfg.clip_len, cfg.dt_root, cfg.dt_file)
    stored = stored_clip_sequences(cfg)
    assert stored.tolist() == train_clip_sequences(reader).tolist()
    assert stored_clip_sequences(cfg, "test").tolist() == clip_sequences(reader, "test").tolist()
    meta = json.loads((root / "clips" / "meta.json").read_text())
    assert meta["clips"]["train"]["first_frame"] == reader.clip_indices("train")[:, 0].tolist()
    moved = tmp_path / "elsewhere"                                   # the source is not read
    shutil.copytree(root / "clips", moved / "clips")
    no_source = EasyDict(cfg, data_root=str(moved), dt_root=str(tmp_path / "missing"))
    data = build_run_data(no_source, evaluate=False)
    held_out = validation_sequences(reader.strided("train", "source"), cfg)
    assert set(stored[data.loader.dataset.indices]) == set(stored) - held_out and held_out
    (moved / "clips" / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "clips"}))
    assert stored_clip_sequences(no_source) is None                  # an older folder: sliced from the source
    with pytest.raises(DataError):
        build_run_data(no_source, evaluate=False)
