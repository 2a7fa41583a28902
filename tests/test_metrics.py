"""Evaluation metrics on hand-made poses with known answers."""
import numpy as np
import pytest

from lib.engine import metrics as M


def random_pose(seed=0, frames=None):
    rng = np.random.default_rng(seed)
    shape = (17, 3) if frames is None else (frames, 17, 3)
    return rng.normal(scale=300.0, size=shape)


def rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_mpjpe_of_shift_is_its_length():
    gt = random_pose()
    assert M.mpjpe(gt + [3.0, 4.0, 0.0], gt) == pytest.approx(5.0)


def test_identical_poses_score_zero_everywhere():
    seq = random_pose(frames=5)
    for fn in (M.mpjpe, M.p_mpjpe, M.n_mpjpe, M.mpjve, M.acceleration_error):
        np.testing.assert_allclose(fn(seq, seq), 0.0, atol=1e-9)


def test_shapes_and_inputs_untouched():
    pred, gt = random_pose(1, frames=6), random_pose(2, frames=6)
    before = pred.copy()
    assert M.mpjpe(pred, gt).shape == (6,)
    assert M.p_mpjpe(pred, gt).shape == (6,)
    assert M.n_mpjpe(pred, gt).shape == (6,)
    assert M.mpjve(pred, gt).shape == (5,)
    assert M.acceleration_error(pred, gt).shape == (4,)
    np.testing.assert_array_equal(pred, before)


def test_p_mpjpe_undoes_similarity_transform():
    gt = random_pose(3, frames=4)
    rots = np.stack([rotation([1, 2, 3], 0.7), rotation([0, 0, 1], 2.5),
                     rotation([1, -1, 0], -1.2), rotation([0, 1, 0], np.pi - 0.01)])
    pred = 1.7 * gt @ rots + [10.0, -20.0, 300.0]
    np.testing.assert_allclose(M.p_mpjpe(pred, gt), 0.0, atol=1e-6)
    assert np.all(M.mpjpe(pred, gt) > 1.0)


def test_p_mpjpe_excludes_reflection():
    gt = random_pose(4)                       # random points: non-planar
    mirrored = gt * [-1.0, 1.0, 1.0]
    assert M.p_mpjpe(mirrored, gt) > 10.0


def test_p_mpjpe_never_worse_than_mpjpe():
    pred, gt = random_pose(5, frames=20), random_pose(6, frames=20)
    assert np.all(M.p_mpjpe(pred, gt) <= M.mpjpe(pred, gt) + 1e-9)


def test_n_mpjpe_undoes_scale_only():
    gt = random_pose(7)
    assert M.n_mpjpe(0.6 * gt, gt) == pytest.approx(0.0, abs=1e-9)
    assert M.n_mpjpe(gt @ rotation([0, 0, 1], 0.5), gt) > 1.0
    assert M.n_mpjpe(gt + 50.0, gt) > 1.0


def test_velocity_error_ignores_constant_offset():
    gt = random_pose(8, frames=6)
    np.testing.assert_allclose(M.mpjve(gt + [5.0, -2.0, 1.0], gt), 0.0, atol=1e-9)


def test_acceleration_error_ignores_constant_velocity_drift():
    gt = random_pose(9, frames=6)
    drift = np.arange(6)[:, None, None] * np.array([1.0, 2.0, -3.0])
    np.testing.assert_allclose(M.acceleration_error(gt + drift, gt), 0.0, atol=1e-9)
    assert np.all(M.mpjve(gt + drift, gt) > 1.0)


def test_root_relative():
    pose = random_pose(10, frames=3)
    rel = M.root_relative(pose)
    np.testing.assert_allclose(rel[:, 0], 0.0)
    np.testing.assert_allclose(rel[:, 5] - rel[:, 3], pose[:, 5] - pose[:, 3])


def test_sequence_id_strips_camera():
    assert M.sequence_id("s_09_act_05_subact_02_ca_01") == "s_09_act_05_subact_02"


# ---------------------------------------------------------------------------------------------
# Aggregation


def test_accumulate_averages_overlaps_and_counts_zero_error_frames():
    errors = np.array([[0.0, 2.0, 4.0], [6.0, 8.0, 0.0]])
    index = np.array([[0, 1, 2], [1, 2, 3]])
    sums, counts = M.accumulate_clip_errors(errors, index, num_frames=5)
    np.testing.assert_array_equal(counts, [1, 2, 2, 1, 0])
    np.testing.assert_allclose(sums[:4] / counts[:4], [0.0, 4.0, 6.0, 0.0])


def test_per_action_means_and_unweighted_summary():
    frame_err = np.array([1.0, 1.0, 1.0, 10.0, 0.0])
    covered = np.array([True, True, True, True, False])
    actions = np.array(["Walk", "Walk", "Walk", "Eat", "Eat"])
    per_action = M.per_action_means(frame_err, covered, actions)
    assert per_action == {"Eat": 10.0, "Walk": 1.0}
    assert M.protocol_summary(per_action) == pytest.approx(5.5)       # frame mean would be 3.25


def make_protocol_case():
    """Two sequences x one camera: 'Walk' (frames 0-3), blocked 'Greet' (4-5), 'Eat' (6-9)."""
    sources = (["s_09_act_15_subact_01_ca_01"] * 4 + ["s_09_act_05_subact_02_ca_01"] * 2
               + ["s_11_act_03_subact_01_ca_02"] * 4)
    actions = ["Walk"] * 4 + ["Greet"] * 2 + ["Eat"] * 4
    clips = np.array([[0, 1], [2, 3], [4, 5], [6, 7], [7, 8]])          # frame 9 uncovered
    gt = np.tile(random_pose(11), (5, 2, 1, 1))
    pred = gt.copy()
    pred[:, :, 1:] += [3.0, 4.0, 0.0]          # 16 of 17 joints off by 5 mm: P1 = 80/17
    pred[3] = gt[3]                           # Eat clip 3: exact -> error 0, still covered
    pred[2, :, 1:] += 1000.0                  # blocked clip: would dominate if counted
    return pred, gt, clips, actions, sources


def test_evaluate_frames_protocol():
    pred, gt, clips, actions, sources = make_protocol_case()
    result = M.evaluate_frames(pred, gt, clips, actions, sources)
    p1 = 80.0 / 17
    assert set(result["per_action"]) == {"Walk", "Eat"}
    walk, eat = result["per_action"]["Walk"], result["per_action"]["Eat"]
    assert walk["p1"] == pytest.approx(p1) and walk["frames"] == 4
    # Eat frames: 6 -> 0, 7 -> (0 + p1) / 2 (overlap), 8 -> p1; frame 9 uncovered.
    assert eat["frames"] == 3
    assert eat["p1"] == pytest.approx((0 + p1 / 2 + p1) / 3)
    assert result["p1"] == pytest.approx((walk["p1"] + eat["p1"]) / 2)
    assert 0 < result["p2"] < result["p1"]
    assert result["frames_scored"] == 7 and result["frames_total"] == 8


def test_evaluate_frames_root_relative_and_no_block_list():
    pred, gt, clips, actions, sources = make_protocol_case()
    shifted = pred + [0.0, 0.0, 500.0]        # global offset removed by root-relative scoring
    base = M.evaluate_frames(pred, gt, clips, actions, sources, blocked=())
    moved = M.evaluate_frames(shifted, gt, clips, actions, sources, blocked=())
    assert "Greet" in base["per_action"] and base["frames_total"] == 10
    assert moved["p1"] == pytest.approx(base["p1"])
    assert M.evaluate_frames(pred, gt, clips, actions, sources, chunk=1)["p2"] == pytest.approx(
        M.evaluate_frames(pred, gt, clips, actions, sources)["p2"])
