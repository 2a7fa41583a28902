"""DSTformer (version 1) and hypergraph DSTformer (version 2): shapes, gradients, init, compatibility."""
import json
import os

import pytest
import torch
from easydict import EasyDict

from lib.data.skeleton import NUM_JOINTS, adjacency
from lib.model.dstformer import DSTformer, DSTformerConfig
from lib.io import load_checkpoint
from lib.model.factory import (CheckpointMismatchError, build_model, clean_state_dict, count_parameters,
                               extract_state_dict, layernorm_eps_note, load_model, load_weights, model_config)
from lib.model.modules import Hypergraph, HypergraphAttention, relation_bias_init
from lib.config.schema import HYPER_DEFAULTS, TRAIN_DEFAULTS, read_yaml, to_plain
from lib.model.checkpoint import Checkpoint, model_args_of, write_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPAT = os.path.join(ROOT, "tests", "fixtures", "motionbert_tiny")   # made with MotionBERT's own code
LABEL1 = (0, 1, 1, 1, 2, 2, 2, 0, 0, 3, 3, 4, 4, 4, 5, 5, 5)   # 6 body parts
LABEL2 = (0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2)   # 3 parts


def tiny(version=1, **kw):
    """A tiny model config: dim 32, depth 2, 4 heads, maxlen 9."""
    base = dict(dim_feat=32, dim_rep=16, depth=2, num_heads=4, mlp_ratio=2, maxlen=9, version=version,
                joint_label=LABEL1 if version == 2 else None)
    return DSTformerConfig(**{**base, **kw})


def randomize_hyper(model):
    """Give the version-2 parameters that start at a fixed value some random, non-trivial values."""
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if name.split(".")[-1] in ("relation_bias", "edge_bias", "relation_alpha"):
            p.data.normal_(0.0, 1.0)
        if "ts_attn" in name:
            p.data.normal_(0.0, 0.1)
    return model


@pytest.mark.parametrize("cfg, T", [
    (tiny(1), 5), (tiny(1, att_fuse=False), 1), (tiny(1, dim_in=2), 9),
    (tiny(2, hyper_relation_bias="uniform"), 5), (tiny(2, hyper_relation_bias="none", joint_label=LABEL2), 1),
    (tiny(2, drop_path_rate=0.2, dropout=0.1), 9),
])
def test_shapes_and_gradients(cfg, T):
    torch.manual_seed(0)
    model = DSTformer(cfg).train()
    x = torch.randn(2, T, NUM_JOINTS, cfg.dim_in)
    out = model(x)
    assert out.shape == (2, T, NUM_JOINTS, 3)
    assert model(x, return_rep=True).shape == (2, T, NUM_JOINTS, cfg.dim_rep)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_parameter_counts_and_motionbert_keys():
    with torch.device("meta"):
        full, lite = DSTformer(DSTformerConfig()), DSTformer(DSTformerConfig(dim_feat=256, mlp_ratio=4))
        v2 = DSTformer(DSTformerConfig(version=2, joint_label=LABEL1))
    assert count_parameters(full) == 42_466_317
    assert count_parameters(lite) == 16_001_549
    per_attention = 8 * 17 * 17 + 1 + 8 * 6 + 512 * 512          # B_h, alpha, w1, edge_proj
    assert count_parameters(v2) == 42_466_317 + 2 * 5 * per_attention
    with open(os.path.join(COMPAT, "dstformer_full_state_dict_keys.txt")) as f:
        expected = [(k, tuple(json.loads(s.replace("(", "[").replace(",)", "]").replace(")", "]"))))
                    for k, s in (line.split(" ", 1) for line in f if not line.startswith("#"))]
    assert [(k, tuple(v.shape)) for k, v in full.state_dict().items()] == expected


def fixture_cfg(**changes):
    """The training config that describes the fixture's tiny MotionBERT model."""
    with open(os.path.join(COMPAT, "tiny_dstformer_config.json")) as f:
        arch = json.load(f)
    return EasyDict({**TRAIN_DEFAULTS, **{k: v for k, v in arch.items() if k not in ("dim_in", "dim_out",
                                                                                  "layernorm_eps")}, **changes})


def fixture_errors(model):
    """Max abs difference of ``model``'s output and representation from MotionBERT's on the fixture input."""
    io = torch.load(os.path.join(COMPAT, "tiny_dstformer_io.pt"), weights_only=True)
    with torch.no_grad():
        return ((model(io["input"]) - io["output"]).abs().max().item(),
                (model(io["input"], return_rep=True) - io["representation"]).abs().max().item())


@pytest.mark.parametrize("config_eps", [1e-6, 1e-5])
def test_motionbert_fixture_reproduced_by_load_model_with_eps_1e6(config_eps, capsys):
    """MotionBERT rule: a checkpoint without a Pose3D config is built with eps 1e-6, whatever the config says."""
    model = load_model(fixture_cfg(layernorm_eps=config_eps), os.path.join(COMPAT, "tiny_dstformer_checkpoint.bin"))
    assert {m.eps for m in norms(model)} == {1e-6}
    assert max(fixture_errors(model)) < 1e-5
    assert ("not the command line's layernorm_eps 1e-05" in capsys.readouterr().out) == (config_eps == 1e-5)


def test_eps_1e5_does_not_reproduce_the_fixture():
    """The fixture tells the two eps apart (the old, wrong fixture was built with 1e-5)."""
    model = DSTformer(model_config(fixture_cfg(layernorm_eps=1e-5))).eval()
    load_weights(model, extract_state_dict(load_checkpoint(os.path.join(COMPAT, "tiny_dstformer_checkpoint.bin"))))
    assert min(fixture_errors(model)) > 1e-4


def norms(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]


@pytest.mark.parametrize("version", [1, 2])
def test_every_layernorm_uses_the_config_eps(version):
    assert DSTformerConfig().layernorm_eps == 1e-6
    assert len(norms(DSTformer(tiny(version)))) == 2 * 2 * 4 + 1
    assert {n.eps for n in norms(DSTformer(tiny(version)))} == {1e-6}
    assert {n.eps for n in norms(DSTformer(tiny(version, layernorm_eps=1e-5)))} == {1e-5}


def tiny_cfg(**changes):
    return EasyDict({**TRAIN_DEFAULTS, **HYPER_DEFAULTS, "dim_feat": 32, "dim_rep": 16, "depth": 2, "num_heads": 4,
                     "maxlen": 9, **changes})


def test_legacy_pose3d_checkpoint_loads_with_eps_1e5_and_reproduces_its_outputs(tmp_path, capsys):
    """A checkpoint whose saved config has no layernorm_eps was trained with 1e-5 (before this key existed)."""
    torch.manual_seed(0)
    old = randomize_hyper(build_model(tiny_cfg(layernorm_eps=1e-5), verbose=False)).eval()
    x = torch.randn(2, 9, NUM_JOINTS, 3)
    with torch.no_grad():
        expected = old(x)
    legacy_config = {k: v for k, v in tiny_cfg().items() if k != "layernorm_eps"}
    torch.save({"model_pos": old.state_dict(), "config": legacy_config}, tmp_path / "old.bin")
    model = load_model(tiny_cfg(layernorm_eps=1e-6), str(tmp_path / "old.bin"))
    assert model.config.layernorm_eps == 1e-5
    with torch.no_grad():
        assert torch.equal(model(x), expected)
        new = load_weights(build_model(tiny_cfg(), verbose=False), old.state_dict()).eval()
        assert (new(x) - expected).abs().max() > 1e-6        # the eps matters for these weights
    out = capsys.readouterr().out
    assert out.count("note:") == 1 and "saved before checkpoints recorded layernorm_eps" in out


def test_checkpoint_saves_the_models_eps_and_load_model_uses_it(tmp_path, capsys):
    model = build_model(tiny_cfg(layernorm_eps=1e-5), verbose=False)
    write_checkpoint(str(tmp_path / "ckpt.bin"), Checkpoint(model.state_dict(), model_args_of(model), to_plain(tiny_cfg())))
    state = torch.load(tmp_path / "ckpt.bin", weights_only=True)
    assert state["model_args"]["layernorm_eps"] == 1e-5         # the model's, not the config's 1e-6
    assert load_model(tiny_cfg(), str(tmp_path / "ckpt.bin")).config.layernorm_eps == 1e-5
    assert "not the command line's layernorm_eps 1e-06" in capsys.readouterr().out
    assert load_model(tiny_cfg(layernorm_eps=1e-5), str(tmp_path / "ckpt.bin")).config.layernorm_eps == 1e-5
    assert "note:" not in capsys.readouterr().out


def eps_rule(raw: dict, wanted: float = 1e-6):
    """``(eps the model is built with, note)`` for a checkpoint dict, the command line wanting ``wanted``."""
    checkpoint = Checkpoint.from_dict({"model_pos": {}, **raw})
    return checkpoint.layernorm_eps, layernorm_eps_note(checkpoint, wanted)


def test_layernorm_eps_rules():
    assert eps_rule({}, 1e-5)[0] == 1e-6                                                # MotionBERT
    assert eps_rule({}) == (1e-6, None)
    assert eps_rule({"config": {"depth": 5}})[0] == 1e-5                               # legacy Pose3D
    assert eps_rule({"config": {"depth": 5}}, 1e-5)[1] is not None
    assert eps_rule({"config": {"layernorm_eps": 1e-4}})[0] == 1e-4                    # saved
    assert eps_rule({"config": {"layernorm_eps": 1e-4}}, 1e-4) == (1e-4, None)
    current = {"format": 2, "model_args": {"layernorm_eps": 1e-4}, "config": {"layernorm_eps": 1e-6}}
    assert eps_rule(current, 1e-4) == (1e-4, None)                                     # model_args win


def test_init_matches_motionbert():
    model = DSTformer(tiny(2))
    assert all((fc.weight == 0).all() and (fc.bias == 0.5).all() for fc in model.ts_attn)
    assert (model.blocks_st[0].norm1_s.weight == 1).all() and (model.blocks_st[0].norm1_s.bias == 0).all()
    assert (model.head.bias == 0).all() and 0.01 < model.head.weight.std() < 0.03
    attn = model.blocks_ts[1].attn_s
    assert attn.relation_alpha.item() == 1 and (attn.edge_bias == 0).all()


@pytest.mark.parametrize("version", [1, 2])
def test_fused_equals_explicit_and_extras(version):
    torch.manual_seed(0)
    model = randomize_hyper(DSTformer(tiny(version))).eval()
    x = torch.randn(2, 7, NUM_JOINTS, 3)
    with torch.no_grad():
        fused = model(x)
        extras = model.forward_with_extras(x, return_attention=True)
    torch.testing.assert_close(extras["output"], fused, atol=1e-5, rtol=0)
    assert len(extras["features"]) == 2 and extras["features"][0].shape == (2, 7, NUM_JOINTS, 32)
    att, E = extras["attention"], 6 if version == 2 else 0
    assert att["spatial"][1]["ts"].shape == (2, 7, 4, NUM_JOINTS, NUM_JOINTS + E)
    assert att["temporal"][0]["st"].shape == (2, NUM_JOINTS, 4, 7, 7)
    torch.testing.assert_close(att["spatial"][0]["st"].sum(-1), torch.ones(2, 7, 4, NUM_JOINTS))
    if version == 2:
        assert att["incidence"].shape == (NUM_JOINTS, 6) and att["relation_bias"][0]["st"].shape == (4, 17, 17)
    else:
        assert att["incidence"] is None and att["relation_bias"] == []



@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("min_len", [0, 10 ** 9])
def test_fused_dispatch_matches_explicit_in_output_and_gradients(version, min_len, monkeypatch):
    """Both fused dispatches (SDPA kernel forced, batched-matmul path forced) equal the explicit path."""
    import lib.model.modules.attention as attention
    monkeypatch.setattr(attention, "CPU_SDPA_MIN_LEN", min_len)
    torch.manual_seed(0)
    model = randomize_hyper(DSTformer(tiny(version)))
    x = torch.randn(2, 9, NUM_JOINTS, 3)
    grads = []
    for explicit in (False, True):
        out = model.forward_with_extras(x, return_attention=True)["output"] if explicit else model(x)
        out.square().mean().backward()
        grads.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
        model.zero_grad(set_to_none=True)
    (fused, g_fused), (explicit, g_explicit) = grads
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=0)
    for name, g in g_fused.items():
        torch.testing.assert_close(g, g_explicit[name], atol=1e-5, rtol=1e-4, msg=name)


def test_cpu_dispatch_uses_sdpa_for_long_sequences_only():
    from lib.model.modules.attention import CPU_SDPA_MIN_LEN, use_sdpa
    short, long = torch.zeros(1, 1, CPU_SDPA_MIN_LEN - 1, 4), torch.zeros(1, 1, CPU_SDPA_MIN_LEN, 4)
    assert not use_sdpa(short, short) and use_sdpa(long, long)

def test_relation_bias_init_matches_skeleton():
    U, adj = relation_bias_init("uniform"), torch.from_numpy(adjacency(self_loops=True))
    torch.testing.assert_close(U.sum(0), torch.ones(NUM_JOINTS))
    assert (U[adj == 0] == 0).all() and (U[adj > 0] > 0).all()
    assert U[0, 16] == 0 and U[16, 0] == 0                         # no spurious pelvis-wrist edge
    degree = {0: 4, 8: 5, 16: 2, 3: 2, 1: 3}                       # self-loop included; EHGFormer's has 0: 5, 16: 3
    assert all(U[j, j] == pytest.approx(1 / d) for j, d in degree.items())
    assert torch.equal(relation_bias_init("none"), torch.eye(NUM_JOINTS))
    model = DSTformer(tiny(2, hyper_relation_bias="uniform"))
    assert torch.equal(model.blocks_st[1].attn_s.relation_bias, U.repeat(4, 1, 1))
    with pytest.raises(ValueError):
        relation_bias_init("foa")


def test_hyperedge_pooling_respects_partition():
    graph = Hypergraph(LABEL1)
    pool = graph()
    assert pool.shape == (NUM_JOINTS, 6)
    torch.testing.assert_close(pool.sum(0), torch.ones(6))
    assert torch.equal(graph.incidence()[[0, 7, 8], 0], torch.ones(3))
    x = torch.randn(3, NUM_JOINTS, 8)
    inside, across = list(range(17)), list(range(17))
    inside[1], inside[3] = 3, 1                                    # both right leg
    across[1], across[4] = 4, 1                                    # right and left leg
    torch.testing.assert_close(pool.t() @ x[:, inside], pool.t() @ x)
    assert not torch.allclose(pool.t() @ x[:, across], pool.t() @ x)


def test_hypergraph_attention_is_partition_equivariant():
    """With the joint-specific bias off, permuting joints within a hyperedge just permutes the output."""
    torch.manual_seed(0)
    attn = HypergraphAttention(16, 4, num_edges=6)
    attn.relation_alpha.data.zero_()
    attn.edge_bias.data.normal_()
    pool, x = Hypergraph(LABEL1)(), torch.randn(2, NUM_JOINTS, 16)
    out = attn(x, pool)[0]
    inside, across = list(range(17)), list(range(17))
    inside[11], inside[13] = 13, 11                                # both left arm
    across[11], across[14] = 14, 11                                # left and right arm
    torch.testing.assert_close(attn(x[:, inside], pool)[0], out[:, inside], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(attn(x[:, across], pool)[0], out[:, across], atol=1e-4)


def test_hypergraph_term_changes_output_and_v1_is_subset():
    torch.manual_seed(0)
    v1, v2 = DSTformer(tiny(1)).eval(), DSTformer(tiny(2, hyper_relation_bias="none")).eval()
    v1_sd, v2_sd = v1.state_dict(), v2.state_dict()
    assert all(k in v2_sd and v2_sd[k].shape == v.shape for k, v in v1_sd.items())
    load_weights(v2, v1_sd, strict=False)
    x = torch.randn(1, 5, NUM_JOINTS, 3)
    with torch.no_grad():
        assert (v2(x) - v1(x)).abs().max() > 1e-4


def test_load_weights_reports_mismatch_and_strips_prefixes():
    v1, v2 = DSTformer(tiny(1)), DSTformer(tiny(2))
    wrapped = {"module." + k: v for k, v in v1.state_dict().items()}
    load_weights(DSTformer(tiny(1)), wrapped)                      # 'module.' stripped
    assert set(clean_state_dict({"_orig_mod.module.a": 1, "b": 2})) == {"a", "b"}
    assert set(extract_state_dict({"model_pos": wrapped, "epoch": 3})) == set(v1.state_dict())
    assert set(extract_state_dict({"model": wrapped})) == set(extract_state_dict(wrapped))
    with pytest.raises(CheckpointMismatchError, match=r"missing in checkpoint: blocks_st\.0\.attn_s\.relation_bias"):
        load_weights(v2, v1.state_dict())
    with pytest.raises(CheckpointMismatchError, match=r"shape differs: temp_embed model \(1, 9, 1, 32\)"):
        load_weights(v1, DSTformer(tiny(1, maxlen=12)).state_dict())
    with pytest.raises(CheckpointMismatchError, match="unexpected in checkpoint: hypergraph.joint_label"):
        load_weights(v1, v2.state_dict())


@pytest.mark.parametrize("version", [1, 2])
def test_build_model_from_config(version, capsys):
    hyper = read_yaml(os.path.join(ROOT, "hyper_config", "method2", "manual_joint_label2.yaml"))
    cfg = EasyDict({**TRAIN_DEFAULTS, **HYPER_DEFAULTS, **hyper, "version": version,
                    "dim_feat": 32, "dim_rep": 32, "depth": 1, "num_heads": 4, "maxlen": 5, "no_conf": True})
    model = build_model(cfg)
    assert f"version {version}" in capsys.readouterr().out
    assert model.config.dim_in == 2 and model(torch.randn(1, 5, NUM_JOINTS, 2)).shape == (1, 5, NUM_JOINTS, 3)
    if version == 2:
        assert model.hypergraph.num_edges == 3 and "hypergraph.joint_label" in model.state_dict()


def test_clip_longer_than_maxlen_is_rejected():
    with pytest.raises(ValueError, match="longer than the model's maxlen 9"):
        DSTformer(tiny(1))(torch.randn(1, 10, NUM_JOINTS, 3))
