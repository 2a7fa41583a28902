"""Distillation: the distiller's losses, gradient flow, a tiny end-to-end run, clear errors."""
import re

import pytest
import torch

import train
import train_distill
from lib.model.distiller import Distiller, normalised_mse
from lib.model.factory import build_model, tensor_differences
from lib.io import load_checkpoint
from lib.model.checkpoint import read_checkpoint
from lib.config.schema import load_config
from lib.engine.distill import DistillTrainer
from conftest import write_tiny_config, write_yaml

# The shared tiny config (conftest) with two layers and the protocol evaluation only.
STUDENT = {"depth": 2, "eval_full_coverage": False}
TEACHER = {"dim_feat": 32, "depth": 3, "max_iters_per_epoch": 3, "no_eval": True}
DISTILL = {"middle_ids_t": [0, 2, 2], "middle_ids_s": [0, 1, 1], "common_kd_alpha": 0.5,
           "middle_kd_alpha": 0.1, "generation": True, "generation_tds": 2, "generation_alpha": 0.1,
           "t_dep": 3, "t_cs": 32, "s_dep": 2, "s_cs": 16}


@pytest.fixture(scope="module")
def setup_dir(tiny_data, tmp_path_factory):
    """A trained tiny teacher (static and global) on the shared tiny data, made once; the
    configs written by the tests go here too."""
    root = tmp_path_factory.mktemp("distill")
    root.joinpath("data").symlink_to(tiny_data)
    for name, rootrel in (("teacher", True), ("teacher_global", False)):
        cfg = student_config(root, {**TEACHER, "rootrel": rootrel}, name=f"{name}.yaml")
        train.main(["--config", cfg, "--checkpoint", str(root / name), "--set", "epochs=1"])
    return root


def student_config(root, extra=None, name="student.yaml") -> str:
    return write_tiny_config(root, {**STUDENT, **(extra or {})}, name, data=root / "data")


def distill_config(root, extra=None, name="distill.yaml") -> str:
    teacher = str(root / "teacher" / "latest_epoch.bin")
    return write_yaml(root / name, {**DISTILL, "teacher_ckpt": teacher, **(extra or {})})


def test_feature_loss_is_zero_when_aligned_student_equals_teacher():
    distiller = Distiller(8, 8, num_mimic=2)
    for align in distiller.align:
        torch.nn.init.eye_(align.weight)
        torch.nn.init.zeros_(align.bias)
    feats = [torch.randn(2, 5, 17, 8) for _ in range(2)]
    with torch.no_grad():
        losses = distiller(feats, [f.clone() for f in feats])["mimic"]
        zero_student = distiller([feats[0], torch.zeros_like(feats[1])], feats)["mimic"][1]
    assert [float(v) for v in losses] == [0.0, 0.0]
    assert float(zero_student) == pytest.approx(1.0)
    assert float(normalised_mse(2 * feats[0], feats[0])) == pytest.approx(1.0)


def test_generation_loss_counts_only_masked_frames():
    distiller = Distiller(4, 6, num_mimic=0, generation=True, generation_tds=3)
    assert distiller.masked_frames(7, "cpu").tolist() == [False, True, True, False, True, True, False]
    student, teacher = torch.randn(2, 7, 17, 4), torch.randn(2, 7, 17, 6)
    target = distiller.reconstruct(student).detach()
    changed = teacher.clone()
    changed[:, ::3] = 100.0                                   # visible frames do not count
    changed[:, distiller.masked_frames(7, "cpu")] = target[:, distiller.masked_frames(7, "cpu")]
    assert float(distiller([student], [changed])["generation"].detach()) == 0.0


def test_gradients_reach_student_and_distiller_not_teacher(setup_dir, tmp_path):
    cfg = load_config(student_config(setup_dir), distill_cfg=distill_config(setup_dir))
    trainer = DistillTrainer(cfg, str(tmp_path / "run"))
    trainer.setup()
    before = {k: v.clone() for k, v in trainer.teacher.state_dict().items()}
    x, y = next(iter(trainer.loader))
    loss, terms = trainer.train_step(x, y, torch.Generator().manual_seed(0))
    assert {"kd_out", "kd_feat", "kd_feat_0_0", "kd_feat_1_2", "kd_gen", "3d_pos"} <= set(terms)
    assert all(p.grad is None and not p.requires_grad for p in trainer.teacher.parameters())
    assert not trainer.teacher.training
    assert tensor_differences(before, trainer.teacher.state_dict()) == []
    grads = [p.grad for p in trainer.model.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    for name, p in trainer.distiller.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.slow
def test_tiny_distillation_lowers_loss_and_saves_distiller(setup_dir, tmp_path, capsys):
    ckpt = tmp_path / "run"
    train_distill.main(["--config", student_config(setup_dir), "--checkpoint", str(ckpt),
                        "--distill_cfg", distill_config(setup_dir), "--set", "epochs=3", "--set", "eval_frequency=3"])
    losses = [float(v) for v in re.findall(r"\] .* loss (\S+)", capsys.readouterr().out)]
    assert len(losses) == 3 and losses[-1] < losses[0]
    state = read_checkpoint(str(ckpt / "latest_epoch.bin"))
    assert state.run.epoch == 3 and set(state.extra) == {"distiller"}
    assert "mask_token" in state.extra["distiller"] and "align.0.weight" in state.extra["distiller"]
    assert (ckpt / "best_epoch.bin").is_file()
    model = build_model(load_config(student_config(setup_dir)), verbose=False)
    model.load_state_dict(state.model_state)                 # the student alone, as evaluate.py loads it


def test_resume_restores_the_distiller(setup_dir, tmp_path):
    args = ["--config", student_config(setup_dir), "--checkpoint", str(tmp_path / "run"),
            "--distill_cfg", distill_config(setup_dir), "--set", "no_eval=true", "--set", "max_iters_per_epoch=2"]
    train_distill.main([*args, "--set", "epochs=1"])
    first = read_checkpoint(str(tmp_path / "run" / "latest_epoch.bin")).extra["distiller"]
    cfg = load_config(student_config(setup_dir, {"no_eval": True, "epochs": 2}), distill_cfg=distill_config(setup_dir))
    trainer = DistillTrainer(cfg, str(tmp_path / "run"))
    trainer.setup()                                           # auto-resume from latest_epoch.bin
    assert trainer.start_epoch == 1
    assert tensor_differences(first, trainer.distiller.state_dict()) == []


def run_expecting_error(setup_dir, tmp_path, student_extra=None, distill_extra=None, *extra_args):
    with pytest.raises(SystemExit) as err:
        train_distill.main(["--config", student_config(setup_dir, student_extra, name="bad.yaml"),
                            "--checkpoint", str(tmp_path / "run"),
                            "--distill_cfg", distill_config(setup_dir, distill_extra, name="bad_distill.yaml"),
                            *extra_args])
    return str(err.value)


def test_missing_teacher_is_named(setup_dir, tmp_path):
    msg = run_expecting_error(setup_dir, tmp_path, None, {"teacher_ckpt": str(tmp_path / "nope.bin")})
    assert "teacher checkpoint not found" in msg and "nope.bin" in msg


def test_teacher_of_another_architecture_is_named(setup_dir, tmp_path):
    state = load_checkpoint(str(setup_dir / "teacher" / "latest_epoch.bin"))
    state["config"]["dim_feat"] = 64                          # weights of dim 32, config says 64
    torch.save(state, tmp_path / "odd.bin")
    msg = run_expecting_error(setup_dir, tmp_path, None, {"teacher_ckpt": str(tmp_path / "odd.bin"), "t_cs": None})
    assert "do not fit the config saved with them" in msg and "joints_embed.weight" in msg
    del state["config"]
    torch.save(state, tmp_path / "noconfig.bin")
    msg = run_expecting_error(setup_dir, tmp_path, None, {"teacher_ckpt": str(tmp_path / "noconfig.bin")})
    assert "no saved 'config'" in msg


def test_mismatches_with_the_teacher_are_named(setup_dir, tmp_path):
    assert "rootrel mismatch" in run_expecting_error(setup_dir, tmp_path, {"rootrel": False})
    global_teacher = str(setup_dir / "teacher_global" / "latest_epoch.bin")
    assert "rootrel mismatch" in run_expecting_error(setup_dir, tmp_path, None, {"teacher_ckpt": global_teacher})
    assert "t_dep=5" in run_expecting_error(setup_dir, tmp_path, None, {"t_dep": 5})
    msg = run_expecting_error(setup_dir, tmp_path, None, {"middle_ids_t": [0, 3, 3]})
    assert "middle_ids_t" in msg and "depth 3" in msg


def test_bad_distill_fields_are_rejected(setup_dir, tmp_path):
    assert "s_cs=128" in run_expecting_error(setup_dir, tmp_path, None, {"s_cs": 128})
    assert "middle_ids_s" in run_expecting_error(setup_dir, tmp_path, None, {"middle_ids_s": [0, 1, 2]})
    assert "spatial_mean" in run_expecting_error(setup_dir, tmp_path, None, {"spatial_mean": False})
    assert "middle_kd_alpha is 0" in run_expecting_error(setup_dir, tmp_path, None, {"middle_kd_alpha": 0})
    assert "generation_tds" in run_expecting_error(setup_dir, tmp_path, None, {}, "--set", "distill.generation_tds=1")
