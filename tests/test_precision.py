"""Training precision (lib/engine/precision.py) and the trainer's deferred non-finite-loss check."""
import json
import time

import pytest
import torch

from lib.config.schema import ConfigError, load_config
from lib.engine import precision as prec
from lib.engine.precision import choose_precision, requested_precision, time_precisions
from lib.errors import TrainingDiverged


@pytest.fixture
def write_config(tiny_config, tiny_data, tmp_path):
    return lambda extra: tiny_config(tmp_path, {"no_eval": True, **extra}, data=tiny_data)


def sleepy_step(bf16_seconds: float, fp32_seconds: float, calls: list):
    def step(bf16: bool) -> None:
        calls.append(bf16)
        torch.rand(1)                             # consumes the RNG: the caller must restore it
        time.sleep(bf16_seconds if bf16 else fp32_seconds)
    return step


def test_configured_precisions_are_used_without_measuring():
    calls = []
    for name in ("fp32", "bf16"):
        choice = choose_precision(name, torch.device("cpu"), sleepy_step(0, 0, calls), ("k",))
        assert (choice.precision, choice.requested) == (name, name)
    assert calls == []


@pytest.mark.parametrize("bf16_s, fp32_s, chosen", [(0.0, 0.03, "bf16"), (0.03, 0.0, "fp32"), (0.02, 0.02, "fp32")])
def test_auto_picks_bf16_only_when_measured_faster_and_caches_per_shape(bf16_s, fp32_s, chosen, monkeypatch):
    monkeypatch.setattr(prec, "_CACHE", {})
    calls = []
    choice = choose_precision("auto", torch.device("cpu"), sleepy_step(bf16_s, fp32_s, calls), ("shape", chosen))
    assert choice.precision == chosen and choice.requested == "auto"
    assert "bf16/fp32" in choice.reason and set(choice.seconds) == {"fp32", "bf16"}
    assert calls.count(True) == calls.count(False) == 1 + prec.AUTO_ROUNDS
    again = choose_precision("auto", torch.device("cpu"), sleepy_step(fp32_s, bf16_s, calls), ("shape", chosen))
    assert again.precision == chosen and "cached" in again.reason
    assert len(calls) == 2 * (1 + prec.AUTO_ROUNDS)     # the cached shape is not measured again


def test_a_ratio_near_the_bar_is_measured_twice_and_a_clear_one_once(monkeypatch):
    monkeypatch.setattr(prec, "_CACHE", {})
    ratios = iter([0.92, 0.70, 1.5])                          # first two near the 0.90 bar, then clear

    def fake(step, device):
        calls.append(1)
        ratio = next(ratios)
        return {"fp32": 1.0, "bf16": ratio}
    calls = []
    monkeypatch.setattr(prec, "time_precisions", fake)
    near = choose_precision("auto", torch.device("cpu"), lambda bf16: None, ("near",))
    assert len(calls) == 2 and near.precision == "bf16" and near.seconds["bf16"] == 0.70   # fastest of both
    clear = choose_precision("auto", torch.device("cpu"), lambda bf16: None, ("clear",))
    assert len(calls) == 3 and clear.precision == "fp32"


def test_measuring_restores_the_rng():
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    time_precisions(sleepy_step(0, 0, []), torch.device("cpu"), rounds=1)
    assert torch.equal(torch.rand(4), expected)


def test_bf16_flag_means_bf16_and_precision_is_checked(write_config):
    assert requested_precision(load_config(write_config({}))) == "fp32"
    assert requested_precision(load_config(write_config({"precision": "auto"}))) == "auto"
    assert requested_precision(load_config(write_config({"bf16": True}))) == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        load_config(write_config({"precision": "fp16"}))


@pytest.mark.parametrize("requested", ["bf16", "auto"])
def test_a_step_keeps_weights_optimizer_and_loss_fp32_and_saves_the_choice(write_config, tmp_path, requested,
                                                                         monkeypatch):
    from lib.engine.trainer import Trainer
    monkeypatch.setattr(prec, "_CACHE", {})
    trainer = Trainer(load_config(write_config({"precision": requested})), str(tmp_path / "run"), seed=0)
    trainer.setup()
    x, y = next(iter(trainer.loader))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    loss, terms = trainer.train_step(x, y, torch.Generator().manual_seed(0))
    assert loss.dtype == torch.float32 and all(v.dtype == torch.float32 for v in terms.values())
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    state = trainer.optimizer.state_dict()["state"]
    assert state and all(v.dtype == torch.float32 for s in state.values() for k, v in s.items() if k != "step")
    assert any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters())   # it trained
    saved = json.loads((tmp_path / "run" / "precision.json").read_text())
    assert saved["requested"] == requested and saved["precision"] == trainer.precision.precision
    if requested == "bf16":
        assert saved["precision"] == "bf16"


def test_auto_measurement_does_not_change_the_first_update(write_config, tmp_path, monkeypatch):
    """Timing both precisions before the first step leaves the weights it produces unchanged."""
    from lib.engine.trainer import Trainer
    monkeypatch.setattr(prec, "_CACHE", {})
    monkeypatch.setattr(prec, "AUTO_MARGIN", 1.0)           # auto measures, then always picks fp32
    weights = []
    for requested in ("fp32", "auto"):
        trainer = Trainer(load_config(write_config({"precision": requested, "dropout": 0.1})),
                          str(tmp_path / requested), seed=0)
        trainer.setup()
        x, y = next(iter(trainer.loader))
        trainer.train_step(x, y, torch.Generator().manual_seed(0))
        assert trainer.precision.precision == "fp32"
        weights.append(trainer.model.state_dict())
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name


def test_a_resumed_auto_run_keeps_the_precision_it_started_with(write_config, tmp_path, monkeypatch, capsys):
    """A resume computes what the uninterrupted run would: auto's decision is read back from
    precision.json, not measured again (the new measurement would say fp32 here)."""
    from lib.engine.trainer import Trainer
    monkeypatch.setattr(prec, "_CACHE", {})
    monkeypatch.setattr(prec, "time_precisions", lambda step, device: {"fp32": 1.0, "bf16": 0.5})
    first = Trainer(load_config(write_config({"precision": "auto", "epochs": 1})), str(tmp_path / "run"), seed=0)
    first.setup()
    first.fit()
    assert first.precision.precision == "bf16"

    def measuring_again(step, device):
        raise AssertionError("a resumed auto run measured again")
    monkeypatch.setattr(prec, "_CACHE", {})
    monkeypatch.setattr(prec, "time_precisions", measuring_again)
    resumed = Trainer(load_config(write_config({"precision": "auto", "epochs": 2})), str(tmp_path / "run"), seed=0)
    resumed.setup()
    resumed.fit()
    assert resumed.precision.precision == "bf16" and "kept on resume" in resumed.precision.reason
    assert "precision bf16 (requested auto)" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "precision.json").read_text())["reason"].startswith("measured")
    # a configured precision on resume is used as configured, not the saved decision
    monkeypatch.setattr(prec, "time_precisions", lambda step, device: {"fp32": 1.0, "bf16": 0.5})
    configured = Trainer(load_config(write_config({"precision": "fp32", "epochs": 3})), str(tmp_path / "run"), seed=0)
    configured.setup()
    configured.fit()
    assert configured.precision.precision == "fp32"


@pytest.mark.parametrize("bad_step", [0, 2])
def test_a_non_finite_loss_stops_the_epoch(write_config, tmp_path, bad_step):
    """No host sync per step: the loss is checked every CHECK_EVERY steps and at the epoch's end,
    and a NaN at any step stops the run before the epoch is saved."""
    from lib.engine import trainer as trainer_module
    trainer = trainer_module.Trainer(load_config(write_config({"flip": False})), str(tmp_path / "run"), seed=0)
    trainer.setup()
    batches = [next(iter(trainer.loader))] * 4
    x_bad = batches[bad_step][0].clone()
    x_bad[0, 0, 0, 0] = float("nan")
    batches[bad_step] = (x_bad, batches[bad_step][1])
    trainer.loader = type("Loader", (), {"__iter__": lambda self: iter(batches), "__len__": lambda self: 4,
                                         "sampler": trainer.loader.sampler, "dataset": trainer.loader.dataset})()
    with pytest.raises(TrainingDiverged, match=r"loss is nan.*latest_epoch\.bin"):
        trainer.train_epoch(0)
    assert not (tmp_path / "run" / "latest_epoch.bin").exists()
