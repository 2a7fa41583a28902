"""Data layer: skeleton flip, normalisation, clip slicing, the reader and its errors."""
import pickle

import numpy as np
import pytest
import torch

from lib.data import skeleton
from lib.data.camera import UnknownCameraError
from lib.data.h36m import DataError, DataReaderH36M, split_clips, video_bounds
from lib.data.normalize import denormalize_3d, normalize_2d, normalize_3d

CAMS = ("54138969", "55011271")


def make_source(lengths=(50, 30, 12), cams=CAMS, seed=0) -> dict:
    """A hand-made source dict in the H36M schema: one video per entry of ``lengths``."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split in ("train", "test"):
        src, cam = [], []
        for v, n in enumerate(lengths):
            src += [f"s_09_act_{v + 2:02d}_subact_01_ca_0{v % 2 + 1}"] * n
            cam += [cams[v % len(cams)]] * n
        nf = len(src)
        j3d = rng.uniform(100, 900, (nf, 17, 3)).astype(np.float32)
        factor = rng.uniform(3, 6, nf).astype(np.float32)
        splits[split] = {
            "joint_2d": j3d[..., :2] + rng.normal(0, 2, (nf, 17, 2)).astype(np.float32),
            "confidence": rng.uniform(0, 1, (nf, 17)).astype(np.float32),
            "joint3d_image": j3d, "camera_name": cam, "source": src,
            "joints_2.5d_image": j3d * factor[:, None, None], "2.5d_factor": factor,
            "action": [f"act{s[9:11]}" for s in src],
        }
    return splits


# -- skeleton ------------------------------------------------------------------------------

def test_flip_is_involution_and_swaps_sides():
    pose = np.random.default_rng(0).normal(size=(4, 17, 3)).astype(np.float32)
    flipped = skeleton.flip(pose)
    np.testing.assert_array_equal(skeleton.flip(flipped), pose)
    for left, right in zip(skeleton.LEFT, skeleton.RIGHT):
        np.testing.assert_array_equal(flipped[:, left, 0], -pose[:, right, 0])
        np.testing.assert_array_equal(flipped[:, left, 1:], pose[:, right, 1:])
    np.testing.assert_array_equal(flipped[:, 0, 0], -pose[:, 0, 0])
    torch.testing.assert_close(skeleton.flip(torch.from_numpy(pose)), torch.from_numpy(flipped))


def test_flip_does_not_modify_input_and_checks_shape():
    pose = torch.ones(2, 17, 3)
    skeleton.flip(pose)
    assert torch.all(pose == 1)
    with pytest.raises(ValueError, match="17"):
        skeleton.flip(np.zeros((3, 16, 3)))


def test_skeleton_tables_are_consistent():
    assert len(skeleton.JOINT_NAMES) == len(skeleton.PARENTS) == 17
    assert len(skeleton.LIMBS) == 16
    adj = skeleton.adjacency()
    assert adj[0, 16] == 0 and adj[15, 16] == 1 and np.allclose(adj, adj.T)
    for left, right in zip(skeleton.LEFT, skeleton.RIGHT):
        assert skeleton.JOINT_NAMES[left].replace("left", "right") == skeleton.JOINT_NAMES[right]


# -- normalisation -------------------------------------------------------------------------

def test_normalise_denormalise_identity_and_range():
    rng = np.random.default_rng(1)
    w = np.array([1000.0, 1000.0])
    h = np.array([1002.0, 1000.0])
    pose = rng.uniform(0, 1000, (2, 17, 3)).astype(np.float32)
    np.testing.assert_allclose(denormalize_3d(normalize_3d(pose, w, h), w, h), pose, rtol=1e-5, atol=1e-3)
    corners = np.array([[[0, 0, 0.5], [1000, 1002, 0.5]]], np.float32)   # x, y, confidence
    n = normalize_2d(corners, [1000.0], [1002.0])
    np.testing.assert_allclose(n[0, :, 0], [-1, 1])
    np.testing.assert_allclose(n[0, :, 1], [-1.002, 1.002], rtol=1e-6)
    assert np.all(n[..., 2] == 0.5)                                      # confidence untouched


# -- slicing -------------------------------------------------------------------------------

def test_split_clips_never_crosses_videos_and_drops_tails():
    sources = ["a"] * 100 + ["b"] * 40 + ["c"] * 10
    clips = split_clips(sources, n_frames=27, stride=27)
    src = np.asarray(sources)
    assert all(len(set(src[c])) == 1 for c in clips)
    starts = clips[:, 0].tolist()
    assert starts[:3] == [0, 27, 54] and 81 not in starts        # tail 81..99 of 'a' left out
    assert starts[3] == 100                                      # 'b': one full clip
    short = clips[-1]                                            # 'c' shorter than 27: resampled
    assert short.min() == 140 and short.max() == 149 and len(short) == 27
    np.testing.assert_array_equal(short, np.sort(short))


def test_split_clips_train_stride_and_tail_cover():
    sources = ["a"] * 100
    assert split_clips(sources, 27, 9)[:, 0].tolist() == list(range(0, 74, 9))
    full = split_clips(sources, 27, 27, cover_tail=True)
    assert full[-1, -1] == 99 and full[-1, 0] == 73
    covered = np.zeros(100, bool)
    covered[full.ravel()] = True
    assert covered.all()


def test_split_clips_is_deterministic():
    sources = ["a"] * 5 + ["b"] * 13
    np.testing.assert_array_equal(split_clips(sources, 8, 8), split_clips(sources, 8, 8))


def test_video_bounds():
    assert video_bounds(["a", "a", "b", "a"]) == [(0, 2), (2, 3), (3, 4)]
    assert video_bounds([]) == []


# -- reader --------------------------------------------------------------------------------

def test_reader_strides_every_array_consistently():
    raw = make_source(lengths=(50, 31), cams=("54138969", "55011271"))
    reader = DataReaderH36M(n_frames=8, sample_stride=2, data_stride_train=4, data_stride_test=8, source=raw)
    x = reader.read_2d("test")
    assert x.shape == (41, 17, 3)
    w, h = reader.resolution("test")
    assert h[0] == 1002 and h[-1] == 1000                     # camera names strided with the frames
    np.testing.assert_allclose(x[:, :, 2], raw["test"]["confidence"][::2])
    meta = reader.test_meta()
    assert len(meta.actions) == len(meta.factor) == len(meta.sources) == 41
    assert reader.original_frames(np.array([3])) == 6
    odd = DataReaderH36M(8, 2, 4, 8, frame_offset=1, source=raw)
    assert odd.original_frames(np.array([0])) == 1 and len(odd.read_2d("test")) == 40


def test_reader_denormalize_inverts_labels():
    raw = make_source()
    reader = DataReaderH36M(n_frames=10, sample_stride=1, data_stride_train=5, data_stride_test=10, source=raw)
    idx = reader.clip_indices("test")
    back = reader.denormalize(reader.read_3d("test")[idx], idx)
    np.testing.assert_allclose(back, np.asarray(raw["test"]["joint3d_image"])[idx], rtol=1e-5, atol=1e-3)


def test_missing_file_error_names_path_and_command(tmp_path):
    with pytest.raises(DataError) as err:
        DataReaderH36M(dt_root=str(tmp_path), dt_file="nope.pkl")
    assert "nope.pkl" in str(err.value) and "make_synthetic_h36m.py" in str(err.value)


def write_pickle(path, data):
    with open(path, "wb") as f:
        pickle.dump(data, f)


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: d["test"].pop("joints_2.5d_image"), "joints_2.5d_image"),
    (lambda d: d["train"].__setitem__("joint3d_image", np.zeros((92, 16, 3))), "joint3d_image"),
    (lambda d: d["test"].__setitem__("2.5d_factor", np.ones(5)), "2.5d_factor"),
    (lambda d: d.pop("test"), "'train' and 'test'"),
])
def test_malformed_source_errors(tmp_path, corrupt, message):
    data = make_source()
    corrupt(data)
    write_pickle(tmp_path / "src.pkl", data)
    with pytest.raises(DataError, match=message):
        DataReaderH36M(dt_root=str(tmp_path), dt_file="src.pkl")


def test_unknown_camera_error():
    raw = make_source(cams=("12345678",))
    with pytest.raises(UnknownCameraError, match="12345678"):
        DataReaderH36M(source=raw)
