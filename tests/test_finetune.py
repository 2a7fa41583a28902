"""Fine-tuning from pretrained checkpoints (lib/model/pretrained.py, Trainer groups and freezing)."""
import json
import os

import pytest
import torch
import yaml
from easydict import EasyDict

from lib.model.factory import CheckpointMismatchError, build_model, extract_state_dict, load_weights, tensor_differences
from lib.model.pretrained import infer_architecture, load_pretrained, resize_temporal_embedding
from lib.io import load_checkpoint
from lib.model.checkpoint import read_checkpoint
from lib.config.cli import add_training_args, base_parser, resolve_config
from lib.errors import ConfigError
from lib.data.codec import PoseCodec
from lib.data.prepare import ensure_clips
from lib.engine.trainer import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "motionbert_tiny", "tiny_dstformer_checkpoint.bin")
with open(os.path.join(ROOT, "tests", "fixtures", "motionbert_tiny", "tiny_dstformer_config.json")) as f:
    MB_TINY = json.load(f)   # dim_feat 64, dim_rep 128, depth 2, 4 heads, mlp 2, maxlen 27
with open(os.path.join(ROOT, "hyper_config", "method2", "manual_joint_label1.yaml")) as f:
    LABEL1 = yaml.safe_load(f)["joint_label"]
with open(os.path.join(ROOT, "hyper_config", "method2", "manual_joint_label2.yaml")) as f:
    LABEL2 = yaml.safe_load(f)["joint_label"]
SMALL = {"dim_feat": 16, "dim_rep": 16, "depth": 1, "num_heads": 2, "mlp_ratio": 2, "maxlen": 243}


def model_cfg(base=MB_TINY, **changes):
    cfg = {**base, **changes}
    if cfg.get("version") == 2:
        cfg.setdefault("joint_label", LABEL1)
    return cfg


def save_motionbert_style(model, path):
    """A checkpoint as MotionBERT writes it: ``model_pos`` of a DataParallel model."""
    torch.save({"epoch": 3, "model_pos": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    return str(path)


def names(model):
    return {n for n, _ in model.named_parameters()}


# -- loading -----------------------------------------------------------------------------------
def test_motionbert_checkpoint_into_version2_reports_exactly_the_hypergraph_params_as_new(capsys):
    torch.manual_seed(0)
    model = build_model(model_cfg(version=2), verbose=False)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_pretrained(model, FIXTURE)
    hyper = names(model) - names(build_model(model_cfg(version=1), verbose=False))
    assert len(hyper) == 16 and set(report.new) == hyper      # 4 per spatial attention, 2 streams x 2 layers
    assert report.unexpected == [] and report.from_config == ["hypergraph.joint_label"]
    state = extract_state_dict(load_checkpoint(FIXTURE))
    assert sorted(report.loaded) == sorted(state)
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items())
    assert all(torch.equal(own[k], initial[k]) for k in hyper)
    out = capsys.readouterr().out
    assert "loaded: 110 tensors" in out and "newly initialised: 16 tensors" in out
    assert "blocks_st.*.attn_s.relation_bias  (x2)" in out


def test_motionbert_checkpoint_into_version1_loads_everything():
    report = load_pretrained(build_model(model_cfg(version=1), verbose=False), FIXTURE, verbose=False)
    assert len(report.loaded) == 110 and not report.new and not report.unexpected and not report.messages


def test_motionbert_fixture_reproduced_after_load_pretrained():
    """Fine-tuning initialisation of the config's model (eps 1e-6 by default) gives MotionBERT's numbers."""
    model = build_model(model_cfg(version=1), verbose=False).eval()
    load_pretrained(model, FIXTURE, verbose=False)
    io = torch.load(os.path.join(os.path.dirname(FIXTURE), "tiny_dstformer_io.pt"), weights_only=True)
    with torch.no_grad():
        torch.testing.assert_close(model(io["input"]), io["output"], atol=1e-5, rtol=0)
        torch.testing.assert_close(model(io["input"], return_rep=True), io["representation"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("saved, expected_eps", [({}, 1e-5), ({"layernorm_eps": 1e-4}, 1e-4)])
def test_finetuned_model_keeps_its_eps_and_notes_the_checkpoints(tmp_path, saved, expected_eps):
    """A legacy (1e-5) or other-eps Pose3D checkpoint: weights load, the model keeps the config's eps, a note says so."""
    config = {**{k: v for k, v in model_cfg(version=1).items() if k != "layernorm_eps"}, **saved}
    torch.save({"model_pos": build_model(model_cfg(version=1), verbose=False).state_dict(), "config": config},
               tmp_path / "p.bin")
    model = build_model(model_cfg(version=1), verbose=False)
    report = load_pretrained(model, str(tmp_path / "p.bin"), verbose=False)
    assert model.config.layernorm_eps == 1e-6 and len(report.loaded) == 110
    assert len(report.messages) == 1 and f"LayerNorm eps {expected_eps:g}" in report.messages[0]
    same = load_pretrained(build_model(model_cfg(version=1, layernorm_eps=expected_eps), verbose=False),
                           str(tmp_path / "p.bin"), verbose=False)
    assert same.messages == []


def test_version2_checkpoint_into_version1_ignores_the_hypergraph_tensors(tmp_path):
    path = save_motionbert_style(build_model(model_cfg(SMALL, version=2), verbose=False), tmp_path / "v2.bin")
    model = build_model(model_cfg(SMALL, version=1), verbose=False)
    report = load_pretrained(model, path, verbose=False)
    assert set(report.unexpected) == {"hypergraph.joint_label"} | {
        f"blocks_{s}.0.attn_s.{n}" for s in ("st", "ts")
        for n in ("relation_bias", "relation_alpha", "edge_bias", "edge_proj.weight")}
    assert set(report.loaded) == set(model.state_dict())


def test_width_mismatch_is_an_error_naming_keys_and_shapes():
    with pytest.raises(CheckpointMismatchError) as err:
        load_pretrained(build_model(model_cfg(version=2, dim_feat=32), verbose=False), FIXTURE, verbose=False)
    message = str(err.value)
    assert "shape differs: joints_embed.weight model (32, 3) vs checkpoint (64, 3)" in message
    assert "dim_feat 64 (model 32)" in message


def test_depth_mismatch_is_an_error_naming_the_missing_layer():
    with pytest.raises(CheckpointMismatchError) as err:
        load_pretrained(build_model(model_cfg(version=1, depth=3), verbose=False), FIXTURE, verbose=False)
    assert "missing in checkpoint: blocks_st.2.attn_s.qkv.weight (192, 64)" in str(err.value)
    assert "depth 2 (model 3)" in str(err.value)


def test_pose3d_checkpoint_with_other_num_heads_is_an_error(tmp_path):
    model = build_model(model_cfg(SMALL, version=1), verbose=False)
    torch.save({"model_pos": model.state_dict(), "config": {**SMALL, "num_heads": 2}}, tmp_path / "h2.bin")
    load_pretrained(model, str(tmp_path / "h2.bin"), verbose=False)
    with pytest.raises(CheckpointMismatchError, match="num_heads differs: model 4 vs checkpoint config 2"):
        load_pretrained(build_model(model_cfg(SMALL, version=1, num_heads=4), verbose=False), str(tmp_path / "h2.bin"))


def test_other_hyperedge_partition_is_an_error(tmp_path):
    path = save_motionbert_style(build_model(model_cfg(SMALL, version=2), verbose=False), tmp_path / "v2.bin")
    with pytest.raises(CheckpointMismatchError, match="joint_label|edge_bias"):
        load_pretrained(build_model(model_cfg(SMALL, version=2, joint_label=LABEL2), verbose=False), path)


def test_243_frame_checkpoint_loads_into_81_frame_model_by_truncation(tmp_path):
    long = build_model(model_cfg(SMALL, version=1), verbose=False).eval()
    path = save_motionbert_style(long, tmp_path / "f243.bin")
    short = build_model(model_cfg(SMALL, version=2, maxlen=81), verbose=False)
    report = load_pretrained(short, path, verbose=False)
    assert torch.equal(short.temp_embed, long.temp_embed[:, :81])
    assert report.messages == ["temp_embed truncated from 243 to its first 81 frames "
                               "(what the pretrained model used for clips of <= 81 frames)"]
    same_version = build_model(model_cfg(SMALL, version=1, maxlen=81), verbose=False).eval()
    load_pretrained(same_version, path, verbose=False)
    x = torch.randn(2, 81, 17, 3)
    torch.testing.assert_close(same_version(x), long(x), rtol=0, atol=0)   # exact at <= 81 frames


def test_temp_embed_interpolation_keeps_the_ends_and_is_linear():
    weight = torch.randn(1, 27, 1, 8)
    longer, message = resize_temporal_embedding(weight, 81)               # shorter checkpoint: interpolate
    assert longer.shape == (1, 81, 1, 8) and "interpolated in time from 27 to 81" in message
    torch.testing.assert_close(longer[:, [0, 40, 80]], weight[:, [0, 13, 26]])
    torch.testing.assert_close(longer[:, 1], weight[:, 0] + (weight[:, 1] - weight[:, 0]) * 26 / 80)
    shorter, _ = resize_temporal_embedding(weight, 14, mode="interpolate")
    torch.testing.assert_close(shorter[:, [0, 13]], weight[:, [0, 26]])
    torch.testing.assert_close(shorter[:, 1], weight[:, 2])


def test_infer_architecture_from_shapes():
    arch = infer_architecture(extract_state_dict(load_checkpoint(FIXTURE)))
    assert arch == {"num_joints": 17, "dim_feat": 64, "maxlen": 27, "dim_rep": 128, "depth": 2,
                    "mlp_ratio": 2.0, "version": 1}


def test_cli_flags_and_finetune_config_need_a_checkpoint(tmp_path):
    parser = add_training_args(base_parser("test"))
    config = os.path.join(ROOT, "configs", "pose3d", "finetune_h36m.yaml")
    cfg = resolve_config(parser.parse_args(["--config", config, "-p", FIXTURE, "--backbone_lr_mult", "0.1",
                                            "--freeze_backbone_epochs", "2"]))
    assert (cfg.pretrained, cfg.backbone_lr_mult, cfg.freeze_backbone_epochs) == (FIXTURE, 0.1, 2)
    with pytest.raises(ConfigError, match="--pretrained PATH"):
        resolve_config(parser.parse_args(["--config", config]))


# -- training ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_root(tiny_data, tmp_path_factory):
    """27-frame clips of the shared tiny synthetic source (conftest)."""
    root = tmp_path_factory.mktemp("ft_data")
    root.joinpath("src").symlink_to(tiny_data / "src")
    ensure_clips(train_cfg(root))
    return root


def train_cfg(data_root, **changes):
    from lib.config.schema import load_config
    sizes = {k: v for k, v in MB_TINY.items() if k not in ("dim_in", "dim_out")}
    cfg = {**sizes, "epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "lr_decay": 0.5,
           "clip_len": 27, "data_stride": 27, "sample_stride": 1, "num_workers": 0, "no_eval": True,
           "max_iters_per_epoch": 2, "checkpoint_frequency": 100, "dt_root": str(data_root / "src"),
           "data_root": str(data_root), "subset_list": ["clips"], "pretrained": FIXTURE, **changes}
    path = data_root / "ft.yaml"
    path.write_text(yaml.safe_dump(cfg))
    hyper = os.path.join(ROOT, "hyper_config", "method2", "manual_joint_label1.yaml")
    return load_config(str(path), hyper if cfg.get("version") == 2 else None)


class RecordingTrainer(Trainer):
    """Keeps the first step's input and output and each epoch's per-group learning rates."""

    def compute_loss(self, x, target):
        if not hasattr(self, "first"):
            with torch.no_grad():
                self.first = (x.clone(), self.ddp_model(PoseCodec(no_conf=self.cfg.no_conf).model_channels(x)).clone())
        return super().compute_loss(x, target)

    def train_epoch(self, epoch):
        self.lrs = getattr(self, "lrs", []) + [[g["lr"] for g in self.optimizer.param_groups]]
        return super().train_epoch(epoch)


def test_finetuning_starts_from_the_pretrained_weights(data_root, tmp_path):
    trainer = RecordingTrainer(train_cfg(data_root), str(tmp_path / "ft"), seed=3)
    trainer.setup()
    trainer.fit()
    pretrained = load_weights(build_model(model_cfg(version=1), verbose=False),
                              extract_state_dict(load_checkpoint(FIXTURE))).train()
    x, out = trainer.first
    with torch.no_grad():
        torch.testing.assert_close(out, pretrained(x), rtol=0, atol=1e-6)
    assert len(trainer.optimizer.param_groups) == 1 and trainer.optimizer.param_groups[0]["backbone"]


@pytest.fixture(scope="module")
def frozen_run(data_root, tmp_path_factory):
    """Version 2 from the version-1 fixture: backbone lr x0.1, frozen in epoch 0; 1 of 2 epochs run."""
    run = tmp_path_factory.mktemp("frozen") / "run"
    cfg = train_cfg(data_root, version=2, epochs=1, backbone_lr_mult=0.1, freeze_backbone_epochs=1)
    trainer = RecordingTrainer(cfg, str(run), seed=0)
    trainer.setup()
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    return cfg, run, trainer, start


def test_frozen_backbone_does_not_move_and_new_params_train(frozen_run):
    _, _, trainer, start = frozen_run
    backbone, new = trainer.optimizer.param_groups
    assert backbone["backbone"] and len(backbone["params"]) == 110 and len(new["params"]) == 16
    assert trainer.lrs == [[0.0, 1e-3]]
    end = trainer.model.state_dict()
    pretrained = extract_state_dict(load_checkpoint(FIXTURE))
    assert all(torch.equal(end[k], pretrained[k]) for k in pretrained)
    assert any(not torch.equal(end[k], start[k]) for k in end if "edge_proj" in k or "relation" in k)


def test_resume_takes_precedence_over_pretrained(frozen_run, capsys):
    cfg, run, _, _ = frozen_run
    saved = read_checkpoint(str(run / "latest_epoch.bin")).model_state
    trainer = RecordingTrainer(EasyDict(cfg, epochs=2), str(run), seed=0)
    trainer.setup()                                                       # auto-resume from latest
    assert "take precedence over --pretrained" in capsys.readouterr().out
    assert trainer.start_epoch == 1
    assert tensor_differences(trainer.model.state_dict(), saved) == []
    trainer.fit()
    assert trainer.lrs == [[1e-3 * 0.5 * 0.1, 1e-3 * 0.5]]               # unfrozen: lr x decay x mult
