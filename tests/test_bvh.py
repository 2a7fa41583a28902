"""BVH export: rotations solved from 3D joints, read back by this module, bvhio and Blender."""
import os
import shutil

import numpy as np
import pytest

from lib.data.skeleton import NUM_JOINTS
from lib.data.synthetic import make_synthetic_h36m
from lib.errors import InputFileError
from lib.inference import bvh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def sequences():
    """Camera-space joints (mm) of synthetic test videos: walking, eating, sitting down, lying."""
    data = make_synthetic_h36m(seed=0, frames_per_video=90, subjects=[9], cameras=[1], debug=True,
                               actions=["Walking", "Eating", "SittingDown", "Photo"])["test"]
    source = np.array(data["source"])
    return [data["joint3d_camera"][source == s].astype(np.float64) for s in sorted(set(source))]


def lifted_like(seq, seed=0, mm=15.0):
    """A lift's imperfections: every joint moved by smooth noise, so bone lengths change per frame."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, mm, seq.shape)
    kernel = np.ones(5) / 5
    noise = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), 0, noise) * np.sqrt(5)
    return seq + noise


def test_euler_zxy_round_trip():
    rng = np.random.default_rng(0)
    angles = rng.uniform([-180, -89, -180], [180, 89, 180], size=(200, 3))
    matrices = bvh.matrix_zxy(angles)
    np.testing.assert_allclose(bvh.euler_zxy(matrices), angles, atol=1e-9)
    np.testing.assert_allclose(matrices @ np.swapaxes(matrices, -1, -2), np.broadcast_to(np.eye(3), matrices.shape), atol=1e-12)


def test_rigid_body_is_reproduced_exactly(sequences):
    for seq in sequences:
        for rootrel in (False, True):
            motion = bvh.solve(seq, 50, rootrel)
            report = bvh.fit_report(seq, bvh.forward_kinematics(motion), rootrel)
            assert report["joint_error_max_cm"] < 1e-3, report   # float32 input
            assert report["bone_variation_max_cm"] < 1e-3


def test_lifted_sequences_stay_within_their_bone_length_variation(sequences):
    for k, seq in enumerate(sequences):
        noisy = lifted_like(seq, k)
        motion = bvh.solve(noisy, 25, rootrel=False)
        positions = bvh.forward_kinematics(motion)
        report = bvh.fit_report(noisy, positions, rootrel=False)
        assert report["within_chain_variation"] == 1.0, report
        assert 0.5 < report["joint_error_mean_cm"] < report["chain_variation_mean_cm"], report
        lengths = bvh.bone_lengths(positions)[:, 1:]               # the BVH's bones never change length
        np.testing.assert_allclose(lengths, np.broadcast_to(lengths[0], lengths.shape), atol=1e-9)


def test_file_round_trip_header_and_frame_time(sequences, tmp_path):
    seq = lifted_like(sequences[0])
    path = tmp_path / "walk.bvh"
    motion = bvh.write_bvh(str(path), seq, fps=30, rootrel=False)
    text = path.read_text()
    assert text.startswith("HIERARCHY\nROOT pelvis") and f"Frames: {len(seq)}" in text
    assert "Frame Time: 0.03333333" in text and text.count("End Site") == 5
    back = bvh.read_bvh(text)
    np.testing.assert_allclose(bvh.forward_kinematics(back), bvh.forward_kinematics(motion), atol=1e-3)


def test_root_translation_only_for_global_models(sequences):
    seq = sequences[0]
    moving, still = bvh.solve(seq, 25, rootrel=False), bvh.solve(seq, 25, rootrel=True)
    pelvis = bvh.to_bvh_axes(seq[:, 0]) * bvh.body_scale(seq, 170)
    np.testing.assert_allclose(moving.root, pelvis, atol=1e-6)      # the pelvis trajectory
    assert np.ptp(still.root, axis=0).max() == 0 and still.root[0, 1] > 50   # legs' length above the floor


def test_up_axes_and_the_person_upright(sequences):
    seq = sequences[0]
    for up in ("y", "z"):
        positions = bvh.forward_kinematics(bvh.solve(seq, 25, False, up=up))
        axis = 1 if up == "y" else 2
        assert (positions[:, 10, axis] > positions[:, 3, axis] + 100).all()        # head above ankle
        np.testing.assert_allclose(bvh.from_bvh_axes(positions, up) / bvh.body_scale(seq, 170), seq, atol=1e-2)  # mm
    left, right = bvh.solve(seq, 25, False).offsets[[18, 17]]                       # left/right pelvis
    assert left[0] == 0 and right[0] == 0


def test_bad_input_is_refused():
    with pytest.raises(InputFileError, match="T, 17, 3"):
        bvh.solve(np.zeros((5, 16, 3)), 25, False)
    with pytest.raises(InputFileError, match="one point"):
        bvh.solve(np.zeros((5, NUM_JOINTS, 3)), 25, False)
    with pytest.raises(InputFileError, match="frame rate"):
        bvh.solve(np.ones((5, NUM_JOINTS, 3)), 0, False)
    with pytest.raises(InputFileError, match="up axis"):
        bvh.to_bvh_axes(np.ones((5, NUM_JOINTS, 3)), "x")


def test_bvhio_reads_the_joints(sequences, tmp_path):
    pytest.importorskip("bvhio")
    from tools.check_bvh import bvhio_joint_positions
    seq = lifted_like(sequences[2])
    path = str(tmp_path / "a.bvh")
    motion = bvh.write_bvh(path, seq, 25, rootrel=False)
    np.testing.assert_allclose(bvhio_joint_positions(path), bvh.forward_kinematics(motion), atol=5e-3)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("blender") is None, reason="Blender not installed (apt-get install blender)")
@pytest.mark.parametrize("up", ["y", "z"])
def test_blender_imports_the_joints(sequences, tmp_path, up):
    seq = lifted_like(sequences[1])
    path = str(tmp_path / "a.bvh")
    motion = bvh.write_bvh(path, seq, 30, rootrel=False, up=up)
    positions, fps = bvh.blender_joint_positions(path, up)
    assert fps == pytest.approx(30, rel=1e-5)
    np.testing.assert_allclose(positions, bvh.forward_kinematics(motion), atol=5e-3)
    assert bvh.fit_report(seq, positions, False, up)["within_chain_variation"] == 1.0
