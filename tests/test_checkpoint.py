"""The checkpoint format (lib/model/checkpoint.py): every older layout reads through ``upgrade()``
into the current one, and a training run resumed from an older Pose3D file ends as from a new one."""
import dataclasses
import math
import os

import pytest
import torch

import train
from lib.config.schema import KEYS
from lib.data.codec import PoseCodec
from lib.errors import CheckpointError
from lib.io import save_torch
from lib.model.checkpoint import (CONFIG_FIELDS, FORMAT, Checkpoint, RunState, model_config, read_checkpoint, upgrade,
                                  write_checkpoint)
from lib.model.dstformer import DSTformerConfig
from lib.model.factory import build_model, tensor_differences

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOTIONBERT = os.path.join(ROOT, "tests", "fixtures", "motionbert_tiny", "tiny_dstformer_checkpoint.bin")
MODEL = {"dim_feat": 16, "dim_rep": 16, "depth": 1, "num_heads": 2, "mlp_ratio": 2, "maxlen": 9}


def pose3d_1(checkpoint: Checkpoint) -> dict:
    """``checkpoint`` in the layout Pose3D wrote before FORMAT 2 (flat run keys, eps in the config)."""
    run = checkpoint.run
    config = {**checkpoint.config, "layernorm_eps": checkpoint.layernorm_eps}
    return {"model_pos": checkpoint.model_state, "config": config, "epoch": run.epoch, "lr": run.lr,
            "optimizer": checkpoint.optimizer, "min_loss": run.best_score, "rng": run.rng,
            "extra": checkpoint.extra or None, "results": run.results, "best_epoch": run.best_epoch,
            "selected_on": run.selected_on}


def test_current_layout_round_trips(tmp_path):
    model = build_model(MODEL, verbose=False)
    run = RunState(epoch=3, lr=1e-3, selected_on="val", best_score=12.5, best_units="px", best_epoch=1,
                   results={"protocol": {"p1": 40.0}}, rng={"torch": torch.get_rng_state()})
    written = Checkpoint(model.state_dict(), dataclasses.asdict(model.config), dict(MODEL), run, {"state": {}})
    write_checkpoint(str(tmp_path / "c.bin"), written)
    raw = torch.load(tmp_path / "c.bin", weights_only=True)
    assert raw["format"] == FORMAT and raw["run"]["best_units"] == "px"
    back = read_checkpoint(str(tmp_path / "c.bin"))
    assert back.layout == "pose3d" and back.run.best_epoch == 1 and back.run.results == run.results
    assert tensor_differences(back.model_state, written.model_state) == []
    assert back.model_args == dataclasses.asdict(model.config)


def test_motionbert_release_upgrades_to_weights_with_its_eps():
    checkpoint = read_checkpoint(MOTIONBERT)
    assert checkpoint.layout == "motionbert" and checkpoint.run is None and checkpoint.optimizer is None
    assert checkpoint.model_args == {"version": 1, "layernorm_eps": 1e-6}
    assert checkpoint.model_state and not any(k.startswith("module.") for k in checkpoint.model_state)


def test_bare_state_dict_upgrades_like_motionbert():
    state = build_model(MODEL, verbose=False).state_dict()
    raw, layout = upgrade({f"_orig_mod.{k}": v for k, v in state.items()})
    assert layout == "state_dict" and set(raw["model_pos"]) == set(state) and raw["run"] is None


def test_pose3d_1_training_file_upgrades_every_field():
    model = build_model(MODEL, verbose=False)
    old = {"model_pos": {f"module.{k}": v for k, v in model.state_dict().items()}, "config": dict(MODEL),
           "epoch": 4, "lr": 2e-4, "optimizer": {"state": {}}, "min_loss": 55.5, "rng": {"torch": torch.get_rng_state()},
           "results": {"protocol": {"p1": 55.5}}, "best_epoch": 2, "selected_on": "test"}
    checkpoint = Checkpoint.from_dict(old)
    assert checkpoint.layout == "pose3d-1-legacy-eps" and checkpoint.layernorm_eps == 1e-5
    assert checkpoint.model_args["dim_feat"] == 16 and checkpoint.model_args["depth"] == 1
    assert torch.equal(checkpoint.run.rng["torch"], old["rng"]["torch"])
    assert dataclasses.replace(checkpoint.run, rng=None) == RunState(
        epoch=4, lr=2e-4, selected_on="test", best_score=55.5, best_units="mm", best_epoch=2,
        results={"protocol": {"p1": 55.5}})
    weights_only = Checkpoint.from_dict({"model_pos": old["model_pos"], "config": {**MODEL, "layernorm_eps": 1e-6}})
    assert weights_only.layout == "pose3d-1" and weights_only.run is None and weights_only.layernorm_eps == 1e-6
    assert math.isinf(RunState().best_score)


def test_not_a_checkpoint_is_named(tmp_path):
    save_torch(str(tmp_path / "x.bin"), {"epoch": 3})
    with pytest.raises(CheckpointError, match="no model weights found"):
        read_checkpoint(str(tmp_path / "x.bin"))


def test_resume_from_a_pose3d_1_file_ends_like_from_the_current_layout(tiny_data, tiny_config, tmp_path):
    cfg = tiny_config(tmp_path, {"epochs": 1, "no_eval": True, "max_iters_per_epoch": 2}, data=tiny_data)
    train.main(["--config", cfg, "--checkpoint", str(tmp_path / "new")])
    current = read_checkpoint(str(tmp_path / "new" / "latest_epoch.bin"))
    os.makedirs(tmp_path / "old")
    torch.save(pose3d_1(current), tmp_path / "old" / "latest_epoch.bin")
    for run in ("new", "old"):
        train.main(["--config", cfg, "--checkpoint", str(tmp_path / run), "--set", "epochs=2"])
    new, old = (read_checkpoint(str(tmp_path / run / "latest_epoch.bin")) for run in ("new", "old"))
    assert new.run.epoch == old.run.epoch == 2 and old.layout == "pose3d"
    assert tensor_differences(new.model_state, old.model_state) == []


def test_the_config_schema_and_the_model_agree_on_every_model_default():
    """A config key that builds the model has the DSTformerConfig default (one value, checked here)."""
    schema = {key.name: key.default for key in KEYS}
    model = DSTformerConfig()
    assert {f: schema[f] for f in CONFIG_FIELDS} == {f: getattr(model, f) for f in CONFIG_FIELDS}
    assert model_config(schema) == dataclasses.replace(model, dim_in=PoseCodec(no_conf=schema["no_conf"]).input_channels)
