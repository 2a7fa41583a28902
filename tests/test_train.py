"""Training and evaluation end to end on tiny synthetic H36M-format data."""
import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import evaluate
import train
from lib.data.skeleton import flip
from lib.model.checkpoint import read_checkpoint
from lib.config.schema import ConfigError, load_config
from lib.data.codec import PoseCodec
from lib.engine.evaluator import Evaluator
from lib.model.factory import tensor_differences

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_dir(tiny_data):
    """The shared tiny synthetic source + clips (conftest), made through the quick-start code path."""
    return tiny_data


@pytest.fixture
def write_config(tiny_config, tmp_path):
    """``(root, extra, name) -> path``: the tiny config training on the data under ``root``."""
    return lambda root, extra, name="tiny.yaml": tiny_config(tmp_path, extra, name, data=root)


@pytest.fixture
def run_train(write_config):
    def run(data_dir, ckpt, *extra):
        return train.main(["--config", write_config(data_dir, {}), "--checkpoint", str(ckpt), *extra])
    return run


def test_quickstart_path_made_source_and_clips(data_dir):
    assert (data_dir / "src" / "h36m_sh_conf_cam_source_final.pkl").is_file()
    assert len(os.listdir(data_dir / "clips" / "train")) > 10
    assert (data_dir / "warmup" / "config.yaml").is_file()


@pytest.mark.slow
def test_two_epochs_lower_the_loss_and_write_checkpoints(data_dir, tmp_path, write_config):
    from lib.engine.trainer import Trainer
    cfg = load_config(write_config(data_dir, {}))
    trainer = Trainer(cfg, str(tmp_path / "run"), seed=0)
    trainer.setup()
    results = trainer.fit()
    losses = [h["total"] for h in trainer.history]
    assert losses[1] < losses[0]
    for name in ("latest_epoch.bin", "best_epoch.bin", "epoch_0.bin", "epoch_1.bin", "config.yaml",
                 "best_epoch_results.json"):
        assert (tmp_path / "run" / name).is_file(), name
    assert os.listdir(tmp_path / "run" / "logs")
    state = torch.load(tmp_path / "run" / "latest_epoch.bin", weights_only=True)
    assert state["run"]["epoch"] == 2 and not any(k.startswith("module.") for k in state["model_pos"])
    assert results["protocol"]["frames_scored"] < results["full_coverage"]["frames_scored"]
    assert results["full_coverage"]["frames_scored"] == results["full_coverage"]["frames_total"]


def test_resume_gives_identical_weights(data_dir, tmp_path, run_train):
    common = ["--set", "drop_path_rate=0.1", "--set", "no_eval=true"]
    run_train(data_dir, tmp_path / "straight", *common, "--set", "epochs=3")
    run_train(data_dir, tmp_path / "stopped", *common, "--set", "epochs=1")
    run_train(data_dir, tmp_path / "stopped", *common, "--set", "epochs=3")   # auto-resume
    a = read_checkpoint(str(tmp_path / "straight" / "latest_epoch.bin")).model_state
    b = read_checkpoint(str(tmp_path / "stopped" / "latest_epoch.bin")).model_state
    assert tensor_differences(a, b) == []


class Oracle(torch.nn.Module):
    """Returns the (optionally scaled) ground truth of the test clip it recognises, mirrored
    when it is given the mirrored input (flip test-time augmentation)."""

    def __init__(self, inputs, targets, scale=1.0):
        super().__init__()
        keys = torch.from_numpy(inputs)
        self.keys = keys.flatten(1)
        self.keys_flipped = flip(keys).flatten(1)
        self.targets = torch.from_numpy(targets) * scale

    def forward(self, x):
        row = x.flatten(1)
        direct = torch.cdist(row, self.keys).min(1)
        mirrored = torch.cdist(row, self.keys_flipped).min(1)
        use_flip = (mirrored.values < direct.values)[:, None, None, None]
        return torch.where(use_flip, flip(self.targets[mirrored.indices]), self.targets[direct.indices])


def oracle_for(evaluator, rootrel, scale=1.0):
    inputs, targets = [], []
    for part in evaluator.parts:
        idx = part["idx"]
        label = torch.from_numpy(part["reader"].read_3d("test")[idx])
        inputs.append(part["inputs"])
        targets.append(PoseCodec(rootrel=rootrel).encode_target(label).numpy())
    return Oracle(np.concatenate(inputs), np.concatenate(targets), scale)


@pytest.mark.parametrize("rootrel", [True, False])
def test_evaluator_scores_ground_truth_as_zero(data_dir, rootrel, write_config):
    cfg = load_config(write_config(data_dir, {"rootrel": rootrel}))
    evaluator = Evaluator(cfg)
    res = evaluator.run(oracle_for(evaluator, rootrel))
    for name in ("protocol", "full_coverage"):
        assert res[name]["p1"] < 0.05 and res[name]["p2"] < 0.05
    assert len(res["protocol"]["per_action"]) == 15


def test_evaluator_scores_a_known_perturbation(data_dir, write_config):
    """Scaling the root-relative prediction by 1.1 costs exactly 10% of the mean joint-to-root
    distance in P1 and nothing in P2 (P-MPJPE removes scale)."""
    cfg = load_config(write_config(data_dir, {}))
    evaluator = Evaluator(cfg)
    res = evaluator.run(oracle_for(evaluator, True, scale=1.1))["full_coverage"]
    meta = evaluator.meta
    from lib.engine.metrics import frame_is_blocked
    keep = ~frame_is_blocked(meta.sources)
    dist = np.linalg.norm(meta.gt_mm - meta.gt_mm[:, :1], axis=-1).mean(-1)
    expected = np.mean([0.1 * dist[keep & (meta.actions == a)].mean() for a in np.unique(meta.actions)])
    assert res["p1"] == pytest.approx(expected, rel=2e-3)
    assert res["p2"] < 0.05


@pytest.mark.slow
def test_evaluate_cli_writes_table_json(data_dir, tmp_path, capsys, write_config, run_train):
    run_train(data_dir, tmp_path / "run", "--set", "epochs=1", "--set", "no_eval=true")
    ckpt = tmp_path / "run" / "latest_epoch.bin"
    res = evaluate.main(["--config", write_config(data_dir, {}), "--evaluate", str(ckpt)])
    assert (tmp_path / "run" / "latest_epoch_eval.json").is_file()
    assert "Walking" in capsys.readouterr().out
    assert np.isfinite(res["protocol"]["p1"])


def test_missing_data_names_path_and_command(tmp_path, write_config):
    cfg = write_config(tmp_path, {"synthetic_data": None})
    with pytest.raises(SystemExit) as err:
        train.main(["--config", cfg, "--checkpoint", str(tmp_path / "run")])
    assert "h36m_sh_conf_cam_source_final.pkl" in str(err.value) and "make_synthetic_h36m.py" in str(err.value)


def test_config_typo_names_key_and_file(tmp_path, write_config):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("learning_rat: 0.1\n")
    with pytest.raises(ConfigError, match=r"learning_rat.*typo.yaml.*learning_rate"):
        load_config(str(cfg))
    with pytest.raises(SystemExit, match="epohcs"):
        train.main(["--config", write_config(tmp_path, {}), "--set", "epohcs=3"])


def test_checkpoint_of_other_architecture_is_named(data_dir, tmp_path, write_config, run_train):
    run_train(data_dir, tmp_path / "run", "--set", "epochs=1", "--set", "no_eval=true")
    ckpt = str(tmp_path / "run" / "latest_epoch.bin")
    with pytest.raises(SystemExit) as err:
        evaluate.main(["--config", write_config(data_dir, {}), "--evaluate", ckpt, "--set", "dim_feat=32"])
    assert "joints_embed.weight" in str(err.value)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(data_dir, tmp_path, run_train):
    run_train(data_dir, tmp_path / "run", "--set", "epochs=1", "--set", "no_eval=true")
    latest = tmp_path / "run" / "latest_epoch.bin"
    before = latest.read_bytes()
    with pytest.raises(SystemExit) as err:
        run_train(data_dir, tmp_path / "run", "--set", "epochs=2", "--set", "no_eval=true",
                  "--set", "learning_rate=1e30")
    assert "loss is" in str(err.value) and "latest_epoch.bin" in str(err.value)
    assert latest.read_bytes() == before


@pytest.mark.slow
def test_ddp_two_gloo_processes(data_dir, tmp_path, write_config):
    cfg = write_config(data_dir, {})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           os.path.join(ROOT, "train.py"), "--config", cfg, "--checkpoint", str(tmp_path / "ddp"),
           "--set", "epochs=1", "--set", "max_iters_per_epoch=2"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(tmp_path / "ddp" / "latest_epoch.bin", weights_only=True)
    assert not any(k.startswith("module.") for k in state["model_pos"])
    assert proc.stdout.count("[1/1]") == 1          # only rank 0 logs


def test_gt_2d_training_feeds_the_labels_xy_through_the_trainers_codec(data_dir, tmp_path, write_config):
    """The Dataset returns the stored detections; the trainer's codec puts the label's x, y in."""
    from lib.engine.trainer import Trainer
    cfg = load_config(write_config(data_dir, {"gt_2d": True, "flip": False, "no_eval": True}))
    trainer = Trainer(cfg, str(tmp_path / "run"), seed=0)
    trainer.setup()
    seen = {}

    def compute_loss(x, target):
        seen["x"] = x
        return Trainer.compute_loss(trainer, x, target)
    trainer.compute_loss = compute_loss
    x, y = next(iter(trainer.loader))
    assert not torch.equal(x[..., :2], y[..., :2])                   # raw clips: the detections
    trainer.train_step(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(seen["x"][..., :2], y[..., :2]) and bool((seen["x"][..., 2] == 1).all())


def test_unfused_optimizer_state_resumes_on_the_fused_kernel_with_the_same_step():
    """Checkpoints of older versions hold an unfused AdamW's state_dict (``fused: None``); loading
    it must not switch the run back to the per-parameter loop, and the next update must equal the
    one the unfused optimizer would have made."""
    from lib.engine.trainer import load_optimizer_state

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(8, 5)), torch.nn.Parameter(torch.randn(5))]
    old = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01)           # what older versions built
    for _ in range(3):
        old.zero_grad()
        (params[0].sum() ** 2 + params[1].pow(3).sum()).backward()
        old.step()
    saved = copy.deepcopy(old.state_dict())
    assert not saved["param_groups"][0]["fused"]

    resumed_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    resumed = torch.optim.AdamW(resumed_params, lr=1e-2, weight_decay=0.01, fused=True)
    load_optimizer_state(resumed, saved)
    assert resumed.param_groups[0]["fused"] is True
    for opt, ps in ((old, params), (resumed, resumed_params)):
        opt.zero_grad()
        (ps[0].sum() ** 2 + ps[1].pow(3).sum()).backward()
        opt.step()
    for a, b in zip(params, resumed_params):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
