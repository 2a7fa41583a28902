"""Config resolution: closed key set, resolution order, numeric coercion, clear errors."""
import pytest

from lib.config.schema import ConfigError, load_config

HYPER1 = "hyper_config/method2/manual_joint_label1.yaml"


def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_resolution_order_defaults_file_hyper_cli(tmp_path):
    cfg = load_config(write(tmp_path, "depth: 3\nversion: 2\n"), HYPER1, overrides={"depth": 4, "version": None})
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
