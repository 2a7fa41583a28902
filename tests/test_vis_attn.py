"""vis_attn.py: attention heatmaps of tiny version 1 / 2 checkpoints on a hand-made test split."""
import os
import pickle

import numpy as np
import pytest
import torch
from matplotlib.image import imread

import vis_attn
from lib.vis import attention as av
from lib.config.cli import resolve_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HYPER = os.path.join(ROOT, "hyper_config", "method2", "manual_joint_label1.yaml")
# The shared tiny model (conftest TINY_MODEL) with two layers and 9-frame clips of the source below.
CLIPS = {"maxlen": 9, "clip_len": 9, "data_stride": 9, "sample_stride": 2, "depth": 2, "dt_file": "source.pkl"}


def write_source(path, lengths=(40, 24)):
    """A tiny H36M-schema source: one test (and train) video per entry of ``lengths``."""
    rng = np.random.default_rng(0)
    src = [s for v, n in enumerate(lengths) for s in [f"s_09_act_{v + 2:02d}_subact_01_ca_01"] * n]
    j3d = rng.uniform(100, 900, (len(src), 17, 3)).astype(np.float32)
    split = {"joint_2d": j3d[..., :2], "confidence": rng.uniform(0, 1, (len(src), 17)).astype(np.float32),
             "joint3d_image": j3d, "camera_name": ["54138969"] * len(src), "source": src,
             "joints_2.5d_image": j3d * 4, "2.5d_factor": np.full(len(src), 4.0, np.float32),
             "action": [f"act{s[9:11]}" for s in src]}
    with open(path, "wb") as f:
        pickle.dump({"train": split, "test": split}, f)


def args(workdir, version, ckpt=None):
    hyper = ["--hyper_cfg", HYPER] if version == 2 else []
    return ["--config", str(workdir / f"tiny_v{version}.yaml"), *hyper, "--hyper_relation_bias", "uniform",
            "--version", str(version), "--evaluate", str(ckpt or workdir / f"v{version}" / "best_epoch.bin")]


def sharpen(model):
    """Scale the qkv weights so that the attention maps are not uniform."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("qkv.weight"):
                p.mul_(25)


@pytest.fixture(scope="module")
def workdir(tiny_checkpoint, tmp_path_factory):
    """Source, config and one checkpoint per version (sharpened qkv so the maps are not uniform)."""
    root = tmp_path_factory.mktemp("vis")
    write_source(root / "source.pkl")
    for version in (1, 2):
        (root / f"v{version}").mkdir()
        tiny_checkpoint(root, version, perturb=sharpen, ckpt=root / f"v{version}" / "best_epoch.bin",
                        dt_root=str(root), **CLIPS)
    return root


def loaded(workdir, version):
    cfg = resolve_config(vis_attn.build_parser().parse_args(args(workdir, version)))
    return cfg, av.load_model(cfg, str(workdir / f"v{version}" / "best_epoch.bin"))


def test_v2_command_writes_readable_labelled_figures(workdir, tmp_path):
    out = vis_attn.main(args(workdir, 2) + ["--out_dir", str(tmp_path / "out"), "--layers", "1", "--heads", "0",
                                            "--joint", "right_wrist", "--clips", "all"])
    names = sorted(f for f in os.listdir(out) if f.endswith(".png"))
    assert names == ["hyperedge_layer1.png", "hypergraph.png", "relation_bias_layer1.png",
                     "spatial_layer1.png", "temporal_layer1.png"]
    for name in names:
        image = imread(os.path.join(out, name))
        assert image.shape[0] > 200 and image.shape[1] > 250 and image.std() > 0.05, name
    index = (tmp_path / "out" / "index.md").read_text()
    assert all(f"]({name})" in index for name in names) and "right_wrist" in index
    assert all(name in (tmp_path / "out" / "index.html").read_text() for name in names)


def test_saved_maps_are_the_models_own_attention(workdir, tmp_path):
    """attention.npz (what is plotted) == forward_with_extras averaged over the same clips."""
    out = vis_attn.main(args(workdir, 2) + ["--out_dir", str(tmp_path / "out"), "--clips", "0,2", "--layers", "0"])
    saved = np.load(os.path.join(out, "attention.npz"))
    cfg, model = loaded(workdir, 2)
    clips = av.load_test_clips(cfg, "0,2")[0]
    with torch.no_grad():
        att = model.forward_with_extras(torch.from_numpy(clips), return_attention=True)["attention"]
    for layer in range(2):
        for s, stream in enumerate(av.STREAMS):
            spatial = att["spatial"][layer][stream].mean(dim=(0, 1)).numpy()
            temporal = att["temporal"][layer][stream].mean(dim=(0, 1)).numpy()
            np.testing.assert_allclose(saved["spatial"][layer, s], spatial, atol=1e-6)
            np.testing.assert_allclose(saved["temporal"][layer, s], temporal, atol=1e-6)
            np.testing.assert_allclose(saved["relation_bias"][layer, s],
                                       att["relation_bias"][layer][stream].numpy(), atol=1e-6)
    np.testing.assert_allclose(saved["spatial"].sum(-1), 1, atol=1e-5)     # joints + hyperedges
    np.testing.assert_allclose(saved["temporal"].sum(-1), 1, atol=1e-5)
    assert saved["spatial"].shape == (2, 2, 2, 17, 17 + 6) and saved["incidence"].shape == (17, 6)
    assert saved["spatial"].std() > 0.01                                  # not a uniform map


def test_v1_maps_rows_sum_to_one_and_joint_selection(workdir):
    cfg, model = loaded(workdir, 1)
    clips = av.load_test_clips(cfg, "all")[0]
    mean_maps = av.collect_attention(model, clips)
    wrist = av.collect_attention(model, clips, joint=av.select_joint("16"))
    assert mean_maps.spatial.shape == (2, 2, 2, 17, 17) and mean_maps.num_edges == 0
    assert mean_maps.relation_bias is None and mean_maps.incidence is None
    np.testing.assert_allclose(mean_maps.spatial.sum(-1), 1, atol=1e-5)
    with torch.no_grad():
        att = model.forward_with_extras(torch.from_numpy(clips), return_attention=True)["attention"]
    np.testing.assert_allclose(wrist.temporal[1, 1], att["temporal"][1]["ts"][:, 16].mean(0).numpy(), atol=1e-6)
    np.testing.assert_allclose(mean_maps.temporal[0, 0], att["temporal"][0]["st"].mean(dim=(0, 1)).numpy(),
                               atol=1e-6)


def test_v1_command_writes_only_joint_and_frame_maps(workdir, tmp_path):
    out = vis_attn.main(args(workdir, 1) + ["--out_dir", str(tmp_path / "v1"), "--clips", "2", "--layers", "0"])
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == ["spatial_layer0.png", "temporal_layer0.png"]


def test_default_out_dir_is_the_run_name():
    assert av.default_out_dir("checkpoint/pose3d/h36m_small/best_epoch.bin") == os.path.join("vis_data", "h36m_small")


def test_wrong_checkpoint_or_selection_exits_with_a_clear_message(workdir):
    with pytest.raises(SystemExit, match=r"does not fit(.|\n)*version: command line 1, checkpoint 2"):
        vis_attn.main(args(workdir, 1, ckpt=workdir / "v2" / "best_epoch.bin"))
    with pytest.raises(SystemExit, match="checkpoint not found"):
        vis_attn.main(args(workdir, 1, ckpt=workdir / "nope.bin"))
    with pytest.raises(SystemExit, match="--layers"):
        vis_attn.main(args(workdir, 1) + ["--layers", "7"])
    with pytest.raises(SystemExit, match="--joint"):
        vis_attn.main(args(workdir, 1) + ["--joint", "elbow"])


def test_selections_and_part_names():
    assert av.select_clips("all", 5).tolist() == [0, 1, 2, 3, 4]
    assert av.select_clips("3", 9).tolist() == [0, 4, 8]
    assert av.select_clips("4,", 9).tolist() == [4] and av.select_clips("2:4", 9).tolist() == [2, 3]
    with pytest.raises(av.SelectionError):
        av.select_clips("12,", 9)
    assert av.select_joint("mean") is None and av.select_joint("left_wrist") == 13
    assert av.part_names([0, 1, 1, 1, 2, 2, 2, 0, 0, 3, 3, 4, 4, 4, 5, 5, 5])[3] == "head"
    assert av.part_names([0] * 16 + [1])[1] == "edge 1: right_wrist"
