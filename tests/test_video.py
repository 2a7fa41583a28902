"""Video in: the BlazePose detector on a real photograph, decoding, frame rate, every output file.

Needs the ``[video]`` extra (imageio-ffmpeg, ai-edge-litert) and scikit-image (its astronaut
photograph); each test skips cleanly without them. The detector's model files come from the
mediapipe 0.10.21 wheel on first use (docs/inference.md); without them the detector tests skip.
"""
import json
import os

import numpy as np
import pytest

from lib.data.keypoint_files import load_track
from lib.inference import detector as det
from deployment import infer_video, infer_wild


def extras():
    for module in ("imageio_ffmpeg", "ai_edge_litert", "skimage"):
        pytest.importorskip(module)


@pytest.fixture(scope="module")
def blazepose():
    extras()
    try:
        folder = det.model_folder()
    except det.DetectorError as err:
        pytest.skip(f"BlazePose model files not available: {err}")
    return det.BlazePose(folder)


@pytest.fixture(scope="module")
def astronaut():
    extras()
    from skimage import data
    return data.astronaut()                     # 512 x 512 RGB photograph of a person facing the camera


NOSE, L_EYE, R_EYE, L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 0, 2, 5, 11, 12, 23, 24


def test_landmarks_on_a_photograph(blazepose, astronaut):
    blazepose.reset()
    points = blazepose(astronaut)
    assert points is not None and points.shape == (33, 3)
    assert ((points[:, 2] >= 0) & (points[:, 2] <= 1)).all()
    assert (points[[NOSE, L_EYE, R_EYE, L_SHOULDER, R_SHOULDER], 2] > 0.9).all()
    assert points[NOSE, 1] < min(points[L_SHOULDER, 1], points[R_SHOULDER, 1]) - 50   # nose above shoulders
    assert points[L_EYE, 1] < points[NOSE, 1]
    # she faces the camera: her left is on the image's right
    assert points[L_SHOULDER, 0] > points[NOSE, 0] > points[R_SHOULDER, 0]
    assert points[L_EYE, 0] > points[R_EYE, 0]
    assert 0 <= points[NOSE, 0] < 512 and 0 <= points[NOSE, 1] < 512


def test_mirrored_photograph_gives_the_mirrored_points(blazepose, astronaut):
    """A mirrored frontal photograph still shows a person facing the camera (her left on the
    image's right); the points land where the mirror puts the original's, which checks the crop
    and its mapping back to pixels."""
    blazepose.reset()
    mirrored = blazepose(astronaut[:, ::-1].copy())
    blazepose.reset()
    original = blazepose(astronaut)
    assert mirrored[L_SHOULDER, 0] > mirrored[NOSE, 0] > mirrored[R_SHOULDER, 0]
    np.testing.assert_allclose(511 - mirrored[[NOSE, L_SHOULDER, R_SHOULDER, L_EYE, R_EYE], 0],
                               original[[NOSE, R_SHOULDER, L_SHOULDER, R_EYE, L_EYE], 0], atol=25)   # 5 % of the image
    np.testing.assert_allclose(mirrored[[NOSE, L_SHOULDER, R_SHOULDER], 1],
                               original[[NOSE, R_SHOULDER, L_SHOULDER], 1], atol=25)


def test_no_person_in_a_blank_frame(blazepose, astronaut):
    blazepose.reset()
    assert blazepose(np.full_like(astronaut, 128)) is None
    assert blazepose(astronaut) is not None                    # and found again afterwards


def test_anchor_layout():
    centres = det.ssd_anchor_centres()
    assert centres.shape == (2254, 2) and centres.min() > 0 and centres.max() < 1
    assert np.allclose(centres[:2], [0.5 / 28, 0.5 / 28]) and np.allclose(centres[-1], [6.5 / 7, 6.5 / 7])


def test_region_is_upright_for_an_upright_body():
    centre, side, rotation = det.roi_from_points(np.array([100.0, 200.0]), np.array([100.0, 100.0]))
    assert rotation == pytest.approx(0) and side == pytest.approx(250)
    _, _, lying = det.roi_from_points(np.array([100.0, 200.0]), np.array([200.0, 200.0]))   # head to the right
    assert lying == pytest.approx(np.pi / 2)


def write_video(path, images, fps):
    import imageio_ffmpeg
    height, width = images[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, macro_block_size=1,
                                         output_params=["-loglevel", "error"])
    writer.send(None)
    for image in images:
        writer.send(np.ascontiguousarray(image))
    writer.close()
    return str(path)


@pytest.fixture(scope="module")
def clip(astronaut, tmp_path_factory):
    """30 fps, 320 x 240: the photograph panned sideways, with 3 blank frames (nobody) in the middle."""
    from PIL import Image
    photo = Image.fromarray(astronaut).resize((320, 320))
    images = [np.asarray(photo.crop((0, 10 + t, 320, 250 + t))) for t in range(24)]
    for t in (10, 11, 12):
        images[t] = np.full_like(images[t], 128)
    return write_video(tmp_path_factory.mktemp("video") / "astronaut.mp4", images, 30), len(images)


@pytest.fixture(scope="module")
def tiny_model(tiny_checkpoint, tmp_path_factory):
    flags, _ = tiny_checkpoint(tmp_path_factory.mktemp("model"), version=1, rootrel=False)
    return flags[flags.index("--evaluate") + 1], flags[:flags.index("--evaluate")]


def test_video_to_every_output(blazepose, clip, tiny_model, tmp_path, capsys):
    path, length = clip
    model, config = tiny_model
    out = tmp_path / "out"
    paths = infer_video.run(infer_video.parse_args(["--video", path, "--model", model, "--out", str(out)] + config))
    printed = capsys.readouterr().out
    assert "320 x 240 at 30 fps" in printed and f"{length} frames, {length - 3} with a person, 3 without" in printed
    assert f"resampled {length} frames at 30 fps to 20 at the model's 25 fps" in printed
    pose3d = np.load(paths["pose3d"])
    assert pose3d.shape == (length, 17, 3) and np.isfinite(pose3d).all()
    with open(paths["keypoints"]) as f:
        stored = json.load(f)
    assert stored["meta_info"]["width"] == 320 and len(stored["instance_info"]) == length
    assert [len(frame["instances"]) for frame in stored["instance_info"]][9:14] == [1, 0, 0, 0, 1]
    track = load_track(paths["keypoints"])                       # other tools' reader: COCO-17, size
    assert track.keypoints.shape == (length, 17, 3) and track.size == (320, 240) and track.filled.sum() == 3
    bvh_text = open(paths["bvh"]).read()
    assert f"Frames: {length}" in bvh_text and "Frame Time: 0.03333333" in bvh_text
    assert os.path.getsize(paths["render"]) > 0


def test_keypoint_file_lifts_like_the_video(blazepose, clip, tiny_model, tmp_path):
    path, _ = clip
    model, config = tiny_model
    out = tmp_path / "out"
    paths = infer_video.run(infer_video.parse_args(["--video", path, "--model", model, "--out", str(out),
                                                    "--model_fps", "30", "--no_render", "--no_bvh"] + config))
    again = str(tmp_path / "again.npy")
    assert infer_wild.main(["--input", paths["keypoints"], "--model", model, "--out", again] + config) == 0
    np.testing.assert_allclose(np.load(again), np.load(paths["pose3d"]), atol=1e-5)


def test_stream_mode_writes_the_same_outputs_and_reports_latency(blazepose, clip, tiny_model, tmp_path, capsys):
    """--stream: the same files as the offline path; the keypoints are identical, the 3D poses close to
    the offline ones (the tiny model's window, 16 frames at 25 fps, covers the whole 20-frame clip
    only in part, and a missing frame is held instead of interpolated)."""
    path, length = clip
    model, config = tiny_model
    common = ["--video", path, "--model", model, "--no_render"] + config
    offline = infer_video.run(infer_video.parse_args(common + ["--out", str(tmp_path / "offline")]))
    capsys.readouterr()
    live = infer_video.run(infer_video.parse_args(common + ["--out", str(tmp_path / "live"), "--stream",
                                                            "--delay", "5"]))
    printed = capsys.readouterr().out
    assert "delay 5 frames (200 ms at the model's 25 fps)" in printed
    assert f"streamed {length} frames in" in printed and "lifter per model frame p50" in printed
    assert "(20 calls)" in printed                                   # one model call per 25 fps frame
    with open(offline["keypoints"]) as a, open(live["keypoints"]) as b:
        assert json.load(a)["instance_info"] == json.load(b)["instance_info"]
    streamed, lifted = np.load(live["pose3d"]), np.load(offline["pose3d"])
    assert streamed.shape == lifted.shape == (length, 17, 3) and np.isfinite(streamed).all()
    assert f"Frames: {length}" in open(live["bvh"]).read()
    scale = np.abs(lifted - lifted[:, :1]).mean()
    assert np.abs(streamed[:, :, :2] - lifted[:, :, :2]).mean() < 0.5 * scale


def test_missing_extra_is_one_line(monkeypatch, capsys, tmp_path):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "imageio_ffmpeg" else real(name, *a))
    (tmp_path / "x.mp4").write_bytes(b"not decoded: the extra is checked first")
    with pytest.raises(SystemExit) as exit_:
        infer_video.main(["--video", str(tmp_path / "x.mp4"), "--model", "m.onnx", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and 'pip install -e ".[video]"' in err[0]


def test_not_a_video_is_an_error(tmp_path, capsys):
    extras()
    bad = tmp_path / "x.mp4"
    bad.write_text("not a video")
    with pytest.raises(SystemExit):
        infer_video.main(["--video", str(bad), "--model", "m.onnx", "--out", str(tmp_path / "o")])
    assert "not a readable video" in capsys.readouterr().err
