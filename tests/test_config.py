"""Config schema: closed key set, resolution order, per-key checks, cross-key rules, CLI precedence, docs."""
import glob
import inspect
import os
import re

import pytest

from lib.config.cli import add_training_args, base_parser, resolve_config
from lib.config.docs import render_markdown
from lib.config.schema import (DISTILL_DEFAULTS, ENTRY_POINTS, KEYS, REJECTED, SCHEMA, ConfigError, load_config,
                               parse_override, save_config)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HYPER1 = "hyper_config/method2/manual_joint_label1.yaml"
DISTILL_FILE = "distill_config/distillation_config.yaml"
LABEL = [0, 1, 1, 1, 2, 2, 2, 0, 0, 3, 3, 4, 4, 4, 5, 5, 5]
SMALL = "dim_feat: 16\nnum_heads: 2\ndepth: 2\nmaxlen: 9\nclip_len: 9\n"   # a student the distill file fits
DISTILL_OK = "middle_ids_t: [0, 1]\nmiddle_ids_s: [0, 1]\n"


def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def resolve(tmp_path, *argv, config="", distill=None):
    """resolve_config of train.py's parser over a config file holding ``config``."""
    args = add_training_args(base_parser("test")).parse_args(["--config", write(tmp_path, config), *argv])
    return resolve_config(args, distill_cfg=distill)


# -- the resolution order and the existing behaviour --------------------------------------------

def test_resolution_order_defaults_file_hyper_cli(tmp_path):
    cfg = load_config(write(tmp_path, "depth: 3\nversion: 2\n"), HYPER1, overrides={"depth": 4})
    assert cfg.depth == 4 and cfg.version == 2 and cfg.batch_size == 32
    assert cfg.joint_label == [[0, 1, 1, 1, 2, 2, 2, 0, 0, 3, 3, 4, 4, 4, 5, 5, 5]]
    assert cfg.distill.teacher_ckpt is None


def test_unknown_key_names_key_file_and_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"'dim_fet' in .*cfg.yaml.*'dim_feat'"):
        load_config(write(tmp_path, "dim_fet: 3\n"))
    with pytest.raises(ConfigError, match=r"'depth' in .*h.yaml"):
        load_config(write(tmp_path, ""), hyper_cfg=write(tmp_path, "depth: 3\n", "h.yaml"))


def test_exponent_without_dot_is_a_number(tmp_path):
    cfg = load_config(write(tmp_path, "learning_rate: 2e-4\nepochs: '3'\n"))
    assert cfg.learning_rate == pytest.approx(2e-4) and cfg.epochs == 3
    with pytest.raises(ConfigError, match="must be a number"):
        load_config(write(tmp_path, "learning_rate: fast\n"))


def test_value_checks(tmp_path):
    with pytest.raises(ConfigError, match="--hyper_cfg"):
        load_config(write(tmp_path, "version: 2\n"))
    with pytest.raises(ConfigError, match="maxlen"):
        load_config(write(tmp_path, "clip_len: 300\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "pose3d", "*.yaml"))),
                         ids=os.path.basename)
def test_shipped_configs_pass_the_schema(path):
    distill = os.path.join(ROOT, DISTILL_FILE) if path.endswith("_distill.yaml") else None
    cfg = load_config(path, os.path.join(ROOT, HYPER1), distill, {"version": 2})
    assert cfg.version == 2 and len(cfg.joint_label[0]) == 17


# -- one bad value per rule: ConfigError naming the key and the file -------------------------------

BAD_CONFIG = [
    ("epochs: 1.5", "epochs"), ("epochs: true", "epochs"), ("epochs: 0", "epochs"),
    ("batch_size: 0", "batch_size"), ("num_heads: 0", "num_heads"), ("dim_feat: 0", "dim_feat"),
    ("dim_rep: -1", "dim_rep"), ("depth: 0", "depth"), ("maxlen: 0", "maxlen"), ("mlp_ratio: 0", "mlp_ratio"),
    ("num_joints: 16", "num_joints"), ("learning_rate: 0", "learning_rate"), ("weight_decay: -0.1", "weight_decay"),
    ("drop_path_rate: 1.0", "drop_path_rate"), ("drop_path_rate: -0.1", "drop_path_rate"), ("dropout: 1", "dropout"),
    ("lr_decay: 0", "lr_decay"), ("lr_decay: 1.01", "lr_decay"), ("layernorm_eps: 0", "layernorm_eps"),
    ("clip_len: 0", "clip_len"), ("sample_stride: 0", "sample_stride"), ("data_stride: 0", "data_stride"),
    ("checkpoint_frequency: 0", "checkpoint_frequency"), ("eval_frequency: 0", "eval_frequency"),
    ("num_workers: -1", "num_workers"), ("max_iters_per_epoch: -1", "max_iters_per_epoch"),
    ("flip: 1", "flip"), ("att_fuse: 'yes'", "att_fuse"), ("compile: null", "compile"),
    ("version: 3", "version"), ("hyper_relation_bias: full", "hyper_relation_bias"),
    ("temp_embed_resize: nearest", "temp_embed_resize"), ("clip_store: zip", "clip_store"),
    ("synthetic_data: huge", "synthetic_data"), ("subset_list: []", "subset_list"),
    ("subset_list: H36M", "subset_list"), ("subset_list: [1]", "subset_list"), ("dt_root: ''", "dt_root"),
    ("pretrained: 3", "pretrained"),
    ("backbone_lr_mult: -1", "backbone_lr_mult"), ("freeze_backbone_epochs: 1.5", "freeze_backbone_epochs"),
    ("lambda_3d_velocity: -1", "lambda_3d_velocity"), ("select_on: train", "select_on"),
    ("val_fraction: 0.6", "val_fraction"), ("val_fraction: -0.1", "val_fraction"),
    ("val_subjects: S8", "val_subjects"), ("val_subjects: [8]", "val_subjects"), ("val_subjects: []", "val_subjects"),
    # cross-key rules
    ("dim_feat: 60\nnum_heads: 8", "dim_feat"), ("clip_len: 300", "clip_len"), ("version: 2", "version"),
    ("val_fraction: 0", "select_on"),
]


@pytest.mark.parametrize("text, key", BAD_CONFIG)
def test_bad_config_value_names_key_and_file(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text + "\n"))
    assert key in str(err.value) and "cfg.yaml" in str(err.value)


BAD_HYPER = [
    (f"joint_label: [{LABEL[:16]}]", "joint_label"),                              # 16 labels
    (f"joint_label: [{[6 if i == 5 else i for i in LABEL]}]", "joint_label"),     # id 5 unused: a gap
    (f"joint_label: [{LABEL}, {LABEL}]", "joint_label"),                          # two partitions
    (f"joint_label: {LABEL}", "joint_label"),                                     # not a list of one partition
    (f"joint_label: [{[-1] + LABEL[1:]}]", "joint_label"),
    (f"joint_label: [{[1.5] + LABEL[1:]}]", "joint_label"),
    ("spatial_mode: hyper_independent", "spatial_mode"), ("hyper_head: 2", "hyper_head"),
    ("hyper_multi_merge_mode: mean", "hyper_multi_merge_mode"), ("dataset: coco", "dataset"),
]


@pytest.mark.parametrize("text, key", BAD_HYPER)
def test_bad_hyper_value_names_key_and_file(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, ""), write(tmp_path, text + "\n", "h.yaml"))
    assert key in str(err.value) and "h.yaml" in str(err.value)


@pytest.mark.parametrize("key", ["spatial_mode", "hyper_head", "hyper_multi_merge_mode", "dataset"])
def test_ehgformer_keys_accept_only_what_pose3d_implements(tmp_path, key):
    cfg = load_config(write(tmp_path, ""), write(tmp_path, f"{key}: {SCHEMA[key].default}\n", "h.yaml"))
    assert cfg[key] == SCHEMA[key].default
    with pytest.raises(ConfigError, match=rf"{key}.*h.yaml.*implement only this value"):
        load_config(write(tmp_path, ""), write(tmp_path, f"{key}: other\n", "h.yaml"))


BAD_DISTILL = [
    ("generation_tds: 1", "generation_tds"), ("middle_ids_t: [-1]\nmiddle_ids_s: [0]", "middle_ids_t"),
    ("common_kd_alpha: -1", "common_kd_alpha"), ("t_dep: 0", "t_dep"), ("generation: 1", "generation"),
    ("middle_ids_t: [0]\nmiddle_ids_s: [0, 1]", "middle_ids_t"), ("s_cs: 128", "s_cs"),
    ("middle_ids_t: [0]\nmiddle_ids_s: [5]", "middle_ids_s"), (DISTILL_OK + "middle_kd_alpha: 0", "middle_kd_alpha"),
    ("generation: true", "generation"), (DISTILL_OK + "generation: true\ngeneration_alpha: 0", "generation_alpha"),
]


@pytest.mark.parametrize("text, key", BAD_DISTILL)
def test_bad_distill_value_names_key_and_file(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, SMALL), distill_cfg=write(tmp_path, text + "\n", "d.yaml"))
    assert key in str(err.value) and "d.yaml" in str(err.value)


@pytest.mark.parametrize("key", sorted(REJECTED))
@pytest.mark.parametrize("where", ["file", "set"])
def test_unimplemented_motionbert_keys_are_rejected(tmp_path, key, where):
    with pytest.raises(ConfigError) as err:
        if where == "file":
            load_config(write(tmp_path, f"{key}: null\n"))
        else:
            resolve(tmp_path, "--set", f"{key}=0")
    source = "cfg.yaml" if where == "file" else "--set"
    assert repr(key) in str(err.value) and source in str(err.value) and "not implemented in Pose3D" in str(err.value)


def test_new_keys_defaults_and_rule(tmp_path):
    cfg = load_config(write(tmp_path, ""))
    assert (cfg.layernorm_eps, cfg.select_on, cfg.val_fraction, cfg.val_subjects) == (1e-6, "val", 0.05, None)
    cfg = load_config(write(tmp_path, "val_fraction: 0\nval_subjects: [S8]\n"))
    assert cfg.val_subjects == ["S8"]
    assert load_config(write(tmp_path, "val_fraction: 0\nselect_on: test\n")).select_on == "test"


# -- the command line: --set for every key, flags win only when given, null means None ------------

SET_AND_FLAG = [   # key, --set text, value it gives, flag argv, value the flag gives
    ("version", "version=2", 2, ["--version", "1"], 1),
    ("hyper_relation_bias", "hyper_relation_bias=none", "none", ["--hyper_relation_bias", "uniform"], "uniform"),
    ("pretrained", "pretrained=a.bin", "a.bin", ["--pretrained", "b.bin"], "b.bin"),
    ("backbone_lr_mult", "backbone_lr_mult=0.5", 0.5, ["--backbone_lr_mult", "0.1"], 0.1),
    ("freeze_backbone_epochs", "freeze_backbone_epochs=3", 3, ["--freeze_backbone_epochs", "2"], 2),
    ("bf16", "bf16=true", True, ["--bf16"], True),
    ("gt_2d", "gt_2d=true", True, ["--gt_2d"], True),
]


@pytest.mark.parametrize("key, text, by_set, flag, by_flag", SET_AND_FLAG, ids=[r[0] for r in SET_AND_FLAG])
def test_set_works_for_flagged_keys_and_a_given_flag_wins(tmp_path, key, text, by_set, flag, by_flag):
    hyper = ["--hyper_cfg", HYPER1]
    assert resolve(tmp_path, *hyper)[key] == SCHEMA[key].default          # neither given: the default
    assert resolve(tmp_path, *hyper, "--set", text)[key] == by_set        # the flag's None default does not win
    assert resolve(tmp_path, *hyper, "--set", text, *flag)[key] == by_flag


@pytest.mark.parametrize("flag", [["--version", "3"], ["--version", "two"], ["--hyper_relation_bias", "full"],
                                  ["--backbone_lr_mult", "-1"], ["--freeze_backbone_epochs", "1.5"]])
def test_flag_values_are_checked_by_the_schema(tmp_path, flag):
    with pytest.raises(ConfigError) as err:
        resolve(tmp_path, *flag)
    assert flag[0] in str(err.value) and flag[0][2:] in str(err.value)


def test_set_null_means_none(tmp_path):
    cfg = resolve(tmp_path, "--set", "pretrained=null", "--set", "synthetic_data=~",
                  config="pretrained: a.bin\nsynthetic_data: small\n")
    assert cfg.pretrained is None and cfg.synthetic_data is None
    with pytest.raises(ConfigError, match=r"'epochs' in the command line \(--set\).*got None"):
        resolve(tmp_path, "--set", "epochs=null")


def test_set_distill_keys(tmp_path):
    cfg = resolve(tmp_path, "--set", "distill.generation_tds=3", "--set", "distill.t_dep=null",
                  config="dim_feat: 128\n", distill=DISTILL_FILE)
    assert cfg.distill.generation_tds == 3 and cfg.distill.t_dep is None and cfg.distill.s_cs == 128
    with pytest.raises(ConfigError, match=r"'generation_tds' in the command line \(--set distill"):
        resolve(tmp_path, "--set", "distill.generation_tds=1", config="dim_feat: 128\n", distill=DISTILL_FILE)
    with pytest.raises(ConfigError, match="unknown config key 'depth'"):
        resolve(tmp_path, "--set", "distill.depth=3")


def test_the_saved_resolved_config_is_a_valid_config(tmp_path):
    """config.yaml next to a checkpoint holds every section; loaded as --config it resolves to itself."""
    cfg = load_config(write(tmp_path, SMALL + "version: 2\n"), HYPER1, write(tmp_path, DISTILL_OK, "d.yaml"),
                      overrides={"distill.generation_tds": 3, "epochs": 7})
    save_config(cfg, str(tmp_path / "run_config.yaml"))
    again = load_config(str(tmp_path / "run_config.yaml"))
    assert again.config_path == str(tmp_path / "run_config.yaml")
    assert {**again, "config_path": None} == {**cfg, "config_path": None}
    assert again.joint_label == [LABEL] and again.distill.generation_tds == 3 and again.epochs == 7
    # later files still win over the sections the config file carries
    assert load_config(str(tmp_path / "run_config.yaml"), overrides={"distill.generation_tds": 2}).distill.generation_tds == 2
    with pytest.raises(ConfigError, match=r"'distill' in .*must be a mapping"):
        load_config(write(tmp_path, "distill: 3\n"))
    with pytest.raises(ConfigError, match=r"unknown config key 'depth' in .*bad.yaml"):
        load_config(write(tmp_path, "distill:\n  depth: 3\n", "bad.yaml"))


@pytest.mark.parametrize("text", ["epochs", "subset_list=[a,"])
def test_malformed_override_is_a_config_error(text):
    with pytest.raises(ConfigError, match=re.escape(text)):
        parse_override(text)


# -- one source of truth: docs, other modules' choices and defaults --------------------------------

def test_docs_are_the_current_rendering():
    with open(os.path.join(ROOT, "docs", "config.md"), encoding="utf-8") as f:
        assert f.read() == render_markdown(), "regenerate: python -m lib.config.docs > docs/config.md"


@pytest.mark.parametrize("key", KEYS, ids=[k.name for k in KEYS])
def test_every_key_is_documented_and_read(key):
    assert f"| `{key.name}` |" in render_markdown() and key.meaning and set(key.readers) <= set(ENTRY_POINTS)
    if key.readers and key.section != "distill":
        sources = glob.glob(os.path.join(ROOT, "lib", "**", "*.py"), recursive=True) + \
            [os.path.join(ROOT, p) for p in ENTRY_POINTS]
        code = "".join(open(p, encoding="utf-8").read() for p in sources if "schema.py" not in p and "docs.py" not in p)
        assert re.search(rf"\b{key.name}\b", code), f"{key.name} is read by no module"


def test_choices_and_defaults_agree_with_the_modules_that_use_them():
    from lib.data.clip_store import STORE_CHOICES
    from lib.data.h36m import DataReaderH36M
    from lib.data.synthetic import SIZES
    from lib.model.dstformer import DSTformerConfig
    from lib.model.modules.hypergraph import RELATION_BIAS_INITS
    from lib.model.pretrained import TEMP_EMBED_RESIZE_MODES
    assert SCHEMA["clip_store"].check.choices == STORE_CHOICES
    assert SCHEMA["temp_embed_resize"].check.choices == TEMP_EMBED_RESIZE_MODES
    assert SCHEMA["hyper_relation_bias"].check.choices == RELATION_BIAS_INITS
    assert set(SCHEMA["synthetic_data"].check.inner.choices) == set(SIZES)
    assert SCHEMA["layernorm_eps"].default == DSTformerConfig.layernorm_eps
    params = inspect.signature(DataReaderH36M).parameters
    assert (params["dt_root"].default, params["dt_file"].default) == (SCHEMA["dt_root"].default,
                                                                      SCHEMA["dt_file"].default)
    assert set(DISTILL_DEFAULTS) == {k.name for k in KEYS if k.group == "distill file"}
