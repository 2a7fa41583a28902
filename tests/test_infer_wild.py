"""In-the-wild lifting: windowing/stitching, root handling, rendering and the infer_wild CLI."""
import json
import os

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from lib.data.normalize import normalize_2d
from lib.data.skeleton import NUM_JOINTS
from lib.model.dstformer import DSTformer, DSTformerConfig
from lib.inference.export import sample_input
from lib.inference.render import render
from lib.inference.lift import TorchRunner, finish_root, lift, predict, to_pixels, window_starts
from deployment import deployment_pose3d, infer_wild


class RelativeDepthEcho(torch.nn.Module):
    """Stand-in model with a known output: x, y copied from the input and, as a global model does,
    z = (channel 2 of the input) minus its value at the clip's first frame."""

    def forward(self, x):
        return torch.cat([x[..., :2], x[..., 2:] - x[:, :1, :1, 2:]], -1)


def test_window_starts_cover_every_frame_with_overlap():
    starts = window_starts(40, 16, 5)
    assert starts == [0, 11, 22, 24]
    covered = np.zeros(40, bool)
    for s in starts:
        covered[s:s + 16] = True
    assert covered.all()
    with pytest.raises(ValueError, match="overlap"):
        window_starts(40, 16, 16)


def test_short_input_equals_a_direct_forward():
    torch.manual_seed(0)
    model = DSTformer(DSTformerConfig(dim_feat=16, dim_rep=16, depth=1, num_heads=2, maxlen=16)).eval()
    x = sample_input(1, 12)[0]
    with torch.no_grad():
        direct = model(torch.from_numpy(x)[None]).numpy()[0]
    runner = TorchRunner(model)
    np.testing.assert_allclose(lift(x, runner, 16, rootrel=False, overlap=5, flip_tta=False),
                               finish_root(direct, rootrel=False), atol=1e-6)
    np.testing.assert_allclose(lift(x, runner, 16, rootrel=True, overlap=5),
                               finish_root(predict(runner, x[None])[0], rootrel=True), atol=1e-6)


def test_long_input_keeps_every_frame_and_a_continuous_depth():
    maxlen, frames = 16, 40                                   # 2.5 x maxlen
    rng = np.random.default_rng(0)
    x = rng.normal(size=(frames, NUM_JOINTS, 3)).astype(np.float32)
    depth = np.cumsum(rng.normal(size=frames)).astype(np.float32)
    x[..., 2] = depth[:, None]                                # the echo's "true" global depth
    runner = TorchRunner(RelativeDepthEcho())
    out = lift(x, runner, maxlen, rootrel=False, overlap=5)
    assert out.shape == (frames, NUM_JOINTS, 3)
    np.testing.assert_allclose(out[..., :2], x[..., :2], atol=1e-6)   # every frame, flip-averaged
    np.testing.assert_allclose(out[..., 2], np.broadcast_to((depth - depth[0])[:, None], out.shape[:2]),
                               atol=1e-5)                          # one depth trajectory over windows
    for overlap in (0, 5):
        static = lift(x, runner, maxlen, rootrel=True, overlap=overlap)
        np.testing.assert_allclose(static[:, 0], 0)
        np.testing.assert_allclose(static[:, 1:, :2], x[:, 1:, :2], atol=1e-6)
    with pytest.raises(ValueError, match="global model needs overlap"):
        lift(x, runner, maxlen, rootrel=False, overlap=0)


def test_pixels_invert_the_normalisation():
    pixels = np.random.default_rng(1).uniform(0, 600, (5, NUM_JOINTS, 3))
    norm = normalize_2d(pixels, 640, 480)
    norm[..., 2] = pixels[..., 2] * 2 / 640
    np.testing.assert_allclose(to_pixels(norm, 640, 480, rootrel=False), pixels, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(to_pixels(norm, 640, 480, rootrel=True), norm * 320, rtol=1e-6)


def test_render_writes_a_readable_gif(tmp_path):
    pose2d = sample_input(1, 5)[0]
    pose3d = pose2d.copy()
    path = render(pose3d, pose2d, str(tmp_path / "skeleton.mp4"), 0.75, fps=10)
    assert os.path.isfile(path)
    if path.endswith(".gif"):
        with Image.open(path) as gif:
            assert gif.n_frames == 5


def coco_json(path, frames=40, width=640, height=480, people=1):
    """Per-frame COCO-17 list (pixels) of a synthetic person; frame 3 has nobody."""
    pose = sample_input(1, frames)[0]
    pixels = (pose[..., :2] + [1, height / width]) * width / 2
    coco = np.concatenate([pixels, pose[..., 2:]], -1)[:, :17]
    data = [[{"keypoints": p.ravel().tolist()}] * people if t != 3 else [] for t, p in enumerate(coco)]
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture(scope="module")
def tiny_onnx(tiny_checkpoint, tmp_path_factory):
    """A tiny global version-1 model exported by the deployment command (default: fused attention)."""
    folder = tmp_path_factory.mktemp("onnx")
    flags, _ = tiny_checkpoint(folder, version=1, rootrel=False)
    path = str(folder / "tiny.onnx")
    assert deployment_pose3d.main(flags + ["--deployment", path]) == 0
    return path, flags


def test_cli_onnx_end_to_end_with_pixels_and_render(tiny_onnx, tmp_path, capsys):
    onnx_path, _ = tiny_onnx
    out = tmp_path / "out.npy"
    args = ["--input", coco_json(tmp_path / "kp.json", frames=20), "--width", "640", "--height", "480",
            "--model", onnx_path, "--out", str(out), "--pixel", "--render", str(tmp_path / "v.gif")]
    assert "MultiHeadAttention" in {node.op_type for node in onnx.load(onnx_path).graph.node}
    assert infer_wild.main(args) == 0
    pose3d = np.load(out)
    assert pose3d.shape == (20, NUM_JOINTS, 3) and np.isfinite(pose3d).all()
    assert "1 frames without a detection filled" in capsys.readouterr().out
    with Image.open(tmp_path / "v.gif") as gif:
        assert gif.n_frames == 20


def test_cli_checkpoint_matches_onnx(tiny_onnx, tmp_path):
    onnx_path, flags = tiny_onnx
    kp = coco_json(tmp_path / "kp.json")
    common = ["--input", kp, "--width", "640", "--height", "480"]
    assert infer_wild.main(common + ["--model", onnx_path, "--out", str(tmp_path / "a.npy")]) == 0
    ckpt = flags[flags.index("--evaluate") + 1]
    cfg = flags[:flags.index("--evaluate")]
    assert infer_wild.main(common + cfg + ["--model", ckpt, "--out", str(tmp_path / "b.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"), atol=1e-4)


@pytest.mark.parametrize("extra, message", [
    ([], "image size unknown: pass --width and --height"),
    (["--width", "640", "--height", "480", "--format", "halpe"], "halpe keypoints need 26 joints"),
    (["--width", "640", "--height", "480", "--people", "2"], "frame 0 has 2 people"),
])
def test_cli_errors_are_clear(tiny_onnx, tmp_path, capsys, extra, message):
    people = 2 if "--people" in extra else 1
    extra = [e for e in extra if e not in ("--people", "2")]
    args = ["--input", coco_json(tmp_path / "kp.json", people=people), "--model", tiny_onnx[0]] + extra
    with pytest.raises(SystemExit) as exit_:
        infer_wild.main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_writes_a_bvh_with_the_frame_rate(tiny_onnx, tmp_path, capsys):
    from lib.inference.bvh import forward_kinematics, read_bvh
    onnx_path, _ = tiny_onnx
    out, path = tmp_path / "out.npy", tmp_path / "anim.bvh"
    args = ["--input", coco_json(tmp_path / "kp.json", frames=12), "--width", "640", "--height", "480",
            "--model", onnx_path, "--out", str(out), "--bvh", str(path), "--fps", "30", "--bvh_up", "z"]
    assert infer_wild.main(args) == 0
    motion = read_bvh(path.read_text())
    assert len(motion.root) == 12 and motion.frame_time == pytest.approx(1 / 30)
    assert np.isfinite(forward_kinematics(motion)).all()
    assert "Z-up" in capsys.readouterr().out
