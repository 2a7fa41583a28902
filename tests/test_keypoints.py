"""COCO-17 / Halpe-26 -> H36M-17 conversion on hand-made keypoints, and reading keypoint files."""
import json

import numpy as np
import pytest

from lib.data.keypoints import conversion_matrix, guess_format, to_h36m
from lib.data.keypoint_files import KeypointFileError, fill_gaps, load_track


def numbered(num_joints, frames=2):
    """Keypoints whose x is 10 * joint index, y is 1000 + joint index and confidence joint / 100."""
    j = np.arange(num_joints, dtype=np.float64)
    pose = np.stack([10 * j, 1000 + j, j / 100], -1)
    return np.repeat(pose[None], frames, axis=0)


def expected(pose, sources):
    return np.mean([pose[:, s] for s in sources], axis=0)


def test_coco_to_h36m_on_hand_made_keypoints():
    coco = numbered(17)
    h36m = to_h36m(coco, "coco")
    assert h36m.shape == (2, 17, 3)
    np.testing.assert_allclose(h36m[:, 0], expected(coco, [11, 12]))        # pelvis = mid-hips
    np.testing.assert_allclose(h36m[:, 8], expected(coco, [5, 6]))         # thorax = mid-shoulders
    np.testing.assert_allclose(h36m[:, 7], (h36m[:, 0] + h36m[:, 8]) / 2)  # spine = mid(pelvis, thorax)
    np.testing.assert_allclose(h36m[:, 10], expected(coco, [1, 2]))        # head = mid-eyes
    np.testing.assert_allclose(h36m[:, 9], coco[:, 0])                     # nose
    for h, c in {1: 12, 2: 14, 3: 16, 4: 11, 5: 13, 6: 15, 11: 5, 12: 7, 13: 9, 14: 6, 15: 8, 16: 10}.items():
        np.testing.assert_allclose(h36m[:, h], coco[:, c], err_msg=f"H36M joint {h}")


def test_halpe_to_h36m_on_hand_made_keypoints():
    halpe = numbered(26, frames=3)
    h36m = to_h36m(halpe, "halpe")
    np.testing.assert_allclose(h36m[:, 0], halpe[:, 19])                   # pelvis = Halpe hip
    np.testing.assert_allclose(h36m[:, 8], halpe[:, 18])                   # thorax = neck
    np.testing.assert_allclose(h36m[:, 10], halpe[:, 17])                  # head
    np.testing.assert_allclose(h36m[:, 7], expected(halpe, [18, 19]))      # spine, confidence too
    np.testing.assert_allclose(h36m[:, 16], halpe[:, 10])


def test_conversion_rows_average_and_h36m_passes_through():
    for fmt in ("coco", "halpe"):
        np.testing.assert_allclose(conversion_matrix(fmt).sum(1), 1.0)
    pose = numbered(17)
    np.testing.assert_allclose(to_h36m(pose, "h36m"), pose)


def test_wrong_joint_count_and_unknown_format_are_clear_errors():
    with pytest.raises(ValueError, match="coco keypoints need 17 joints"):
        to_h36m(numbered(26), "coco")
    with pytest.raises(ValueError, match="unknown keypoint format"):
        to_h36m(numbered(17), "openpose")
    with pytest.raises(ValueError, match="18 joints"):
        guess_format(18)
    assert guess_format(26) == "halpe" and guess_format(17) == "coco"


def alphapose(frames_ids, num_joints=26):
    """AlphaPose-style detections: (frame, track id) pairs, x encodes the frame number."""
    out = []
    for frame, track in frames_ids:
        pose = numbered(num_joints, 1)[0]
        pose[:, 0] += 100 * frame + 1000 * track
        out.append({"image_id": f"{frame}.jpg", "category_id": 1, "keypoints": pose.ravel().tolist(),
                    "score": 2.5, "idx": track})
    return out


def write_json(tmp_path, data, name="kp.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_alphapose_focus_selects_a_track_and_fills_missing_frames(tmp_path):
    path = write_json(tmp_path, alphapose([(0, 1), (0, 2), (1, 2), (3, 1), (4, 2)]))
    track = load_track(path, focus=1, num_frames=6)
    assert track.keypoints.shape == (6, 26, 3)
    np.testing.assert_array_equal(track.filled, [False, True, True, False, True, True])
    x = track.keypoints[:, 0, 0] - 1000                    # joint 0's x = 100 * frame (+ track)
    np.testing.assert_allclose(x, [0, 100, 200, 300, 300, 300])   # interpolated, then held


def test_several_people_without_focus_is_an_error_naming_the_ids(tmp_path):
    path = write_json(tmp_path, alphapose([(0, 1), (0, 2), (1, 1)]))
    with pytest.raises(KeypointFileError, match=r"frame 0 has 2 people.*--focus.*\['1', '2'\]"):
        load_track(path)
    with pytest.raises(KeypointFileError, match="no detection of track id '7'"):
        load_track(path, focus="7")


def test_per_frame_lists_mmpose_and_size_metadata(tmp_path):
    coco = numbered(17, 1)[0]
    person = {"keypoints": coco[:, :2].tolist(), "keypoint_scores": coco[:, 2].tolist()}
    data = {"meta_info": {"width": 640, "height": 480},
            "instance_info": [{"frame_id": 1, "instances": [person]}, {"frame_id": 2, "instances": []},
                              {"frame_id": 3, "instances": [person]}]}
    track = load_track(write_json(tmp_path, data))
    assert track.size == (640, 480) and track.keypoints.shape == (3, 17, 3)
    np.testing.assert_allclose(track.keypoints[1], coco)
    np.testing.assert_array_equal(track.filled, [False, True, False])
    plain = load_track(write_json(tmp_path, [[coco[:, :2].tolist()]] * 4, "plain.json"))
    np.testing.assert_allclose(plain.keypoints[..., 2], 1.0)               # no scores -> confidence 1


def test_npy_and_npz_inputs(tmp_path):
    pose = numbered(17, 5).astype(np.float32)
    np.save(tmp_path / "kp.npy", pose)
    np.testing.assert_allclose(load_track(str(tmp_path / "kp.npy")).keypoints, pose)
    np.savez(tmp_path / "kp.npz", kpts=pose[..., :2], kpts_score=pose[..., 2:])
    np.testing.assert_allclose(load_track(str(tmp_path / "kp.npz")).keypoints, pose)


@pytest.mark.parametrize("content, message", [
    ("[{\"image_id\": 0, ", "malformed JSON"),
    ("{\"frames\": []}", "needs 'instance_info' or 'keypoints'"),
    ("[[[1, 2, 3, 4]]]", r"\[T, K, 2 or 3\]"),
    ("[{\"image_id\": 0, \"keypoints\": [1, 2]}]", "K \\* 3 numbers"),
    ("[{\"image_id\": 0, \"box\": [1, 2]}]", "no 'keypoints'"),
])
def test_malformed_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(KeypointFileError, match=message):
        load_track(str(path))


def test_fill_gaps_interpolates_every_channel():
    kp = np.full((4, 1, 3), np.nan)
    kp[0], kp[3] = 0.0, 3.0
    out = fill_gaps(kp, np.array([True, False, False, True]))
    np.testing.assert_allclose(out[:, 0, 2], [0, 1, 2, 3])


def test_blazepose_lifts_like_its_coco_subset():
    from lib.data.keypoints import BLAZEPOSE_TO_COCO
    rng = np.random.default_rng(0)
    blazepose = rng.uniform(0, 500, size=(4, 33, 3))
    np.testing.assert_allclose(to_h36m(blazepose, "blazepose"), to_h36m(blazepose[:, BLAZEPOSE_TO_COCO], "coco"))
    assert guess_format(33) == "blazepose"
    h36m = to_h36m(blazepose, "blazepose")
    pelvis, thorax = h36m[:, 0], h36m[:, 8]
    np.testing.assert_allclose(pelvis, blazepose[:, [23, 24]].mean(1), rtol=1e-6)      # hips 23, 24
    np.testing.assert_allclose(thorax, blazepose[:, [11, 12]].mean(1), rtol=1e-6)      # shoulders 11, 12


# -- what real detectors write (documented handling in lib/data/keypoint_files.py) ---------------
def test_joints_at_zero_zero_are_missing_and_filled_from_their_own_detections(tmp_path):
    """OpenPose/MMPose write an undetected joint as (0, 0, 0): it is filled like NaN, per joint,
    never taken as a person at the image corner; a frame of zeros only is a frame without a detection."""
    pose = numbered(17, 4) + 100.0                          # every joint away from (0, 0)
    pose[:, 5, 0] = [100, 0, 300, 400]                      # joint 5's x moves 100 per frame
    pose[1, 5] = 0.0                                       # joint 5 undetected in frame 1
    pose[2] = 0.0                                          # nobody detected in frame 2
    np.save(tmp_path / "kp.npy", pose)
    track = load_track(str(tmp_path / "kp.npy"))
    np.testing.assert_array_equal(track.filled, [False, False, True, False])
    np.testing.assert_allclose(track.keypoints[:, 5, 0], [100, 200, 300, 400])    # interpolated per joint
    np.testing.assert_allclose(track.keypoints[1, 5, 2], pose[0, 5, 2], rtol=1e-6)   # confidence: neighbours
    np.testing.assert_allclose(track.keypoints[2, 3], (pose[1, 3] + pose[3, 3]) / 2, rtol=1e-6)
    assert np.isfinite(track.keypoints).all() and (track.keypoints[..., :2] > 0).all()


def test_a_joint_never_detected_sits_at_the_frame_mean_with_confidence_zero(tmp_path):
    pose = numbered(17, 3) + 100.0
    pose[:, 16] = 0.0
    np.save(tmp_path / "kp.npy", pose)
    track = load_track(str(tmp_path / "kp.npy"))
    np.testing.assert_allclose(track.keypoints[:, 16, :2], pose[:, :16, :2].mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(track.keypoints[:, 16, 2], 0)


@pytest.mark.parametrize("ids, order", [
    (["IMG_20240101123002.jpg", "IMG_20240101123000.jpg", "IMG_20240101123001.jpg"], [2, 0, 1]),   # timestamps
    ([-3, 5, -1], [0, 2, 1]),                                # negative ids: no frame lost
])
def test_image_ids_are_ordered_not_used_as_indices(tmp_path, ids, order, capsys):
    dets = alphapose([(0, 1)] * 3, num_joints=17)
    for det, image_id, rank in zip(dets, ids, order):
        det["image_id"] = image_id
        det["keypoints"][0] = 100.0 + 10 * rank              # joint 0's x encodes the expected position
    track = load_track(write_json(tmp_path, dets))
    assert track.keypoints.shape == (3, 17, 3) and not track.filled.any()
    np.testing.assert_allclose(track.keypoints[:, 0, 0], [100, 110, 120])
    assert "not frame numbers" in capsys.readouterr().out


def test_frame_number_ids_keep_the_gaps_aligned_with_the_video(tmp_path):
    dets = alphapose([(2, 1), (5, 1)], num_joints=17)
    track = load_track(write_json(tmp_path, dets))
    assert len(track.keypoints) == 6
    np.testing.assert_array_equal(track.filled, [True, True, False, True, True, False])


def test_confidence_above_one_is_used_with_a_note(tmp_path, capsys):
    pose = numbered(17, 2) + 100.0
    pose[..., 2] = 1.7
    np.save(tmp_path / "kp.npy", pose)
    track = load_track(str(tmp_path / "kp.npy"))
    np.testing.assert_allclose(track.keypoints[..., 2], 1.7, rtol=1e-6)
    assert "confidences above 1" in capsys.readouterr().out


def test_all_keypoints_missing_is_an_error(tmp_path):
    np.save(tmp_path / "kp.npy", np.zeros((3, 17, 3)))
    with pytest.raises(KeypointFileError, match="nothing was detected"):
        load_track(str(tmp_path / "kp.npy"))
