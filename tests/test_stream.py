"""Streaming lifting (lib/inference/stream.py): a window equals the offline lift of the same frames,
start and end padding, depth continuity of a global model, ONNX = PyTorch, the online resampler."""
import numpy as np
import pytest
import torch

from lib.data.normalize import normalize_2d
from lib.data.skeleton import NUM_JOINTS
from lib.errors import ConfigError, InputFileError
from lib.inference.export import sample_input
from lib.inference.lift import OnnxRunner, TorchRunner, lift
from lib.inference.stream import RateConverter, StreamLifter
from lib.inference.video import resample
from lib.model.dstformer import DSTformer, DSTformerConfig
from deployment import deployment_pose3d

MAXLEN, WIDTH, HEIGHT = 8, 640.0, 480.0


def pixels(frames: int, seed: int = 0) -> np.ndarray:
    """A synthetic person's H36M-17 keypoints in pixels of a 640 x 480 image, ``[T, 17, 3]``."""
    pose = sample_input(1, frames, seed=seed)[0]
    return np.concatenate([(pose[..., :2] + [1, HEIGHT / WIDTH]) * WIDTH / 2, pose[..., 2:]], -1)


@pytest.fixture(scope="module")
def runner():
    torch.manual_seed(0)
    model = DSTformer(DSTformerConfig(dim_feat=16, dim_rep=16, depth=1, num_heads=2, maxlen=MAXLEN))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return TorchRunner(model)


def stream(runner, keypoints, rootrel, delay, flip_tta=True):
    lifter = StreamLifter(runner, MAXLEN, rootrel, WIDTH, HEIGHT, delay, flip_tta)
    out = [lifter.push(k) for k in keypoints]
    assert all(o is None for o in out[:delay]) and all(o is not None for o in out[delay:])
    rest = lifter.flush()
    assert len(rest) == delay and lifter.model_calls == len(keypoints)
    return np.stack([o for o in out if o is not None] + rest)


def offline_window(runner, window_pixels, rootrel):
    return lift(normalize_2d(window_pixels, WIDTH, HEIGHT), runner, MAXLEN, rootrel, overlap=MAXLEN // 3)


@pytest.mark.parametrize("delay", [MAXLEN - 1, MAXLEN // 2, 0])
def test_each_pose_is_the_offline_lift_of_its_window(runner, delay):
    """Once the buffer is full, the pose of frame s is the offline lift of the window of maxlen frames
    ending at s + delay, at position maxlen - 1 - delay (static model: exact)."""
    keypoints = pixels(20)
    poses = stream(runner, keypoints, True, delay)
    for s in range(MAXLEN - 1 - delay, len(keypoints) - delay):
        window = keypoints[s + delay - MAXLEN + 1: s + delay + 1]
        np.testing.assert_allclose(poses[s], offline_window(runner, window, True)[MAXLEN - 1 - delay], atol=1e-5)
    assert (poses[:, 0] == 0).all()


def test_start_and_end_padding_repeat_the_first_and_last_frame(runner):
    keypoints, delay = pixels(12, seed=1), 3
    poses = stream(runner, keypoints, True, delay)
    position = MAXLEN - 1 - delay
    for s in (0, 2):                                    # the window of frame s starts before frame 0
        t = s + delay
        window = np.concatenate([np.repeat(keypoints[:1], MAXLEN - 1 - t, 0), keypoints[:t + 1]])
        np.testing.assert_allclose(poses[s], offline_window(runner, window, True)[position], atol=1e-5)
    for s in range(len(keypoints) - delay, len(keypoints)):   # flushed: windows run past the last frame
        t = s + delay
        window = np.concatenate([keypoints[t - MAXLEN + 1:], np.repeat(keypoints[-1:], t - len(keypoints) + 1, 0)])
        np.testing.assert_allclose(poses[s], offline_window(runner, window, True)[position], atol=1e-5)


def test_a_short_stream_is_all_flushed(runner):
    keypoints = pixels(3, seed=2)
    lifter = StreamLifter(runner, MAXLEN, True, WIDTH, HEIGHT, delay=5)
    assert [lifter.push(k) for k in keypoints] == [None] * 3
    flushed = lifter.flush()                            # fewer frames than the delay: all come from flush
    assert len(flushed) == 3 and lifter.model_calls == 3
    window = np.concatenate([np.repeat(keypoints[:1], MAXLEN - 1 - 5, 0), keypoints, np.repeat(keypoints[-1:], 3, 0)])
    np.testing.assert_allclose(flushed[0], offline_window(runner, window, True)[MAXLEN - 1 - 5], atol=1e-5)
    with pytest.raises(InputFileError, match="flushed"):
        lifter.push(keypoints[0])


def test_global_model_keeps_one_depth_trajectory(runner):
    """Global model: x, y and the depth relative to the root are the window's offline lift; the root
    depth starts at 0 and each window's z is aligned with the previous window (no jump per window)."""
    keypoints, delay = pixels(24, seed=3), 2
    poses = stream(runner, keypoints, False, delay)
    assert poses[0, 0, 2] == pytest.approx(0, abs=1e-6)
    for s in range(MAXLEN - 1 - delay, len(keypoints) - delay):
        window = keypoints[s + delay - MAXLEN + 1: s + delay + 1]
        expected = offline_window(runner, window, False)[MAXLEN - 1 - delay]
        np.testing.assert_allclose(poses[s, :, :2], expected[:, :2], atol=1e-5)
        np.testing.assert_allclose(poses[s, :, 2] - poses[s, 0, 2], expected[:, 2] - expected[0, 2], atol=1e-5)


class RelativeDepthEcho(torch.nn.Module):
    """Stand-in global model with a known output: x, y copied from the input, z = the input's channel 2
    minus its value at the clip's root in the first frame (depth relative to the window's start)."""

    def forward(self, x):
        return torch.cat([x[..., :2], x[..., 2:] - x[:, :1, :1, 2:]], -1)


def test_global_depth_is_aligned_across_windows_not_reset():
    """Each window's z is relative to its own first frame; aligned window to window, the stream gives
    the whole sequence's depth relative to frame 0 exactly (a per-window reset would not)."""
    keypoints, delay = pixels(30, seed=5), 2
    keypoints[:, :, 2] = np.linspace(0.1, 0.9, len(keypoints))[:, None]       # a steadily rising "depth"
    poses = stream(TorchRunner(RelativeDepthEcho()), keypoints, False, delay, flip_tta=False)
    np.testing.assert_allclose(poses[:, 0, 2], keypoints[:, 0, 2] - keypoints[0, 0, 2], atol=1e-5)
    np.testing.assert_allclose(poses[:, :, :2], normalize_2d(keypoints, WIDTH, HEIGHT)[..., :2], atol=1e-5)


def test_onnx_and_pytorch_backends_agree(tiny_checkpoint, tmp_path):
    flags, model = tiny_checkpoint(tmp_path, version=1, rootrel=False)
    path = str(tmp_path / "tiny.onnx")
    assert deployment_pose3d.main(flags + ["--deployment", path]) == 0
    maxlen = model.config.maxlen
    keypoints = pixels(maxlen + 5, seed=4)
    results = []
    for run in (TorchRunner(model), OnnxRunner(path)):
        lifter = StreamLifter(run, maxlen, False, WIDTH, HEIGHT, delay=maxlen // 2)
        results.append(np.stack([p for p in (lifter.push(k) for k in keypoints) if p is not None] + lifter.flush()))
    assert results[0].shape == (len(keypoints), NUM_JOINTS, 3)
    np.testing.assert_allclose(results[1], results[0], atol=1e-4)


def test_bad_settings_and_frames_are_errors(runner):
    with pytest.raises(ConfigError, match="delay"):
        StreamLifter(runner, MAXLEN, True, WIDTH, HEIGHT, delay=MAXLEN)
    lifter = StreamLifter(runner, MAXLEN, True, WIDTH, HEIGHT, delay=0)
    with pytest.raises(InputFileError, match=r"\[17, 3\]"):
        lifter.push(np.zeros((26, 3)))
    with pytest.raises(InputFileError, match="NaN"):
        lifter.push(np.full((17, 3), np.nan))
    fixed = TorchRunner(runner.model)
    fixed.fixed_len = MAXLEN + 1
    with pytest.raises(InputFileError, match="exactly"):
        StreamLifter(fixed, MAXLEN, True, WIDTH, HEIGHT)


@pytest.mark.parametrize("source, target", [(30, 25), (25, 25), (24, 50), (29.97, 25)])
def test_rate_converter_gives_the_offline_resampling(source, target):
    series = np.random.default_rng(0).normal(size=(37, 17, 3)).astype(np.float32)
    converter = RateConverter(source, target)
    live = np.stack([f for frame in series for f in converter.push(frame)])
    np.testing.assert_allclose(live, resample(series, source, target), atol=1e-5)


def causal_model(**extra):
    torch.manual_seed(1)
    model = DSTformer(DSTformerConfig(dim_feat=16, dim_rep=16, depth=2, num_heads=2, maxlen=MAXLEN, causal=True, **extra))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_causal_model_sees_no_future_frame():
    """causal: true: a frame's output does not change when later frames change; it does when earlier
    ones change; the fused and the explicit (attention-map) paths agree."""
    model = causal_model()
    x = torch.from_numpy(sample_input(1, MAXLEN, seed=6))
    changed = x.clone()
    changed[:, 5:] += 0.3
    with torch.no_grad():
        a, b = model(x), model(changed)
        explicit = model.forward_with_extras(x, return_attention=True)
    torch.testing.assert_close(a[:, :5], b[:, :5], atol=1e-6, rtol=0)
    assert (a[:, 5:] - b[:, 5:]).abs().max() > 1e-3
    torch.testing.assert_close(explicit["output"], a, atol=1e-5, rtol=0)
    temporal = explicit["attention"]["temporal"][0]["st"]          # [N, J, H, T, T]
    assert temporal.triu(1).abs().max() == 0


def test_causal_model_exports_and_checkpoint_needs_its_config(tiny_checkpoint, tmp_path, capsys):
    flags, model = tiny_checkpoint(tmp_path, version=1, rootrel=True, causal=True)
    path = str(tmp_path / "causal.onnx")
    assert deployment_pose3d.main(flags + ["--deployment", path]) == 0        # its parity check passed
    keypoints = pixels(MAXLEN + 4, seed=7)
    streams = []
    for run in (TorchRunner(model), OnnxRunner(path)):
        lifter = StreamLifter(run, model.config.maxlen, True, WIDTH, HEIGHT, delay=0)
        streams.append(np.stack([lifter.push(k) for k in keypoints]))
    np.testing.assert_allclose(streams[1], streams[0], atol=1e-4)
    # the same weights under a non-causal config are refused (no parameter tells them apart)
    config = flags[flags.index("--config") + 1]
    wrong = tmp_path / "not_causal.yaml"
    wrong.write_text(open(config).read().replace("causal: true", "causal: false"))
    with pytest.raises(SystemExit):
        deployment_pose3d.main(["--config", str(wrong)] + flags[2:] + ["--deployment", str(tmp_path / "x.onnx")])
    assert "trained with causal: true" in capsys.readouterr().err
