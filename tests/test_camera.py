"""lib/data/camera.py: calibration constants, rotations and projection."""
import numpy as np
import pytest

from lib.data import camera as cam


def test_constants_cover_cameras_and_subjects():
    assert cam.CAMERA_IDS == ('54138969', '55011271', '58860488', '60457274')
    assert set(cam.EXTRINSICS) == {'S1', 'S5', 'S6', 'S7', 'S8', 'S9', 'S11'}
    assert all(len(v) == 4 for v in cam.EXTRINSICS.values())
    assert cam.resolution('54138969') == (1000, 1002) and cam.resolution(1) == (1000, 1000)


@pytest.mark.parametrize('camera', cam.CAMERA_IDS)
def test_optical_axis_projects_to_principal_point(camera):
    intr = cam.INTRINSICS[camera]
    for distort in (False, True):
        uv = cam.camera_to_pixel(np.array([[0.0, 0.0, 4000.0]]), camera, distort=distort)
        np.testing.assert_allclose(uv[0], [intr['cx'], intr['cy']], atol=1e-9)


def test_pinhole_projection_by_hand():
    intr = cam.INTRINSICS['55011271']
    uv = cam.camera_to_pixel(np.array([100.0, -50.0, 5000.0]), '55011271')
    np.testing.assert_allclose(uv, [intr['fx'] * 0.02 + intr['cx'], intr['fy'] * -0.01 + intr['cy']])


@pytest.mark.parametrize('subject', cam.SUBJECTS)
def test_rotations_are_orthonormal(subject):
    for k in range(4):
        rot, _ = cam.extrinsics(subject, k)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)
        assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-6)


def test_world_camera_round_trip():
    points = np.random.default_rng(0).normal(0, 1000, (5, 17, 3))
    for subject in ('S1', 9, 's11'):
        for camera in (0, '60457274'):
            x_cam = cam.world_to_camera(points, subject, camera)
            np.testing.assert_allclose(cam.camera_to_world(x_cam, subject, camera), points, atol=1e-8)
            # the camera centre is the origin of the camera frame
            _, centre = cam.extrinsics(subject, camera)
            np.testing.assert_allclose(cam.world_to_camera(centre, subject, camera), 0, atol=1e-8)


@pytest.mark.parametrize('subject', cam.SUBJECTS)
def test_person_at_world_origin_is_in_view_and_upright(subject):
    feet, head = np.array([0.0, 0.0, 0.0]), np.array([0.0, 0.0, 1700.0])
    for camera in cam.CAMERA_IDS:
        w, h = cam.resolution(camera)
        for point in (feet, head):
            assert cam.world_to_camera(point, subject, camera)[2] > 2000  # in front, metres away
            u, v = cam.project(point, subject, camera, distort=True)
            assert 0 < u < w and 0 < v < h
        assert cam.project(head, subject, camera)[1] < cam.project(feet, subject, camera)[1] - 200


def test_distortion_is_small_near_the_centre_and_barrel_outside():
    x_cam = np.array([[300.0, 200.0, 5000.0], [2000.0, 1500.0, 5000.0]])
    plain, distorted = cam.camera_to_pixel(x_cam, 0), cam.camera_to_pixel(x_cam, 0, distort=True)
    assert np.linalg.norm(plain[0] - distorted[0]) < 2.0
    centre = np.array([cam.INTRINSICS['54138969']['cx'], cam.INTRINSICS['54138969']['cy']])
    assert np.linalg.norm(distorted[1] - centre) < np.linalg.norm(plain[1] - centre)  # k1 < 0


def test_unknown_camera_raises_a_clear_error():
    with pytest.raises(cam.UnknownCameraError, match=r"unknown camera '123'; known H36M cameras are"):
        cam.resolution('123')
    with pytest.raises(ValueError, match='54138969'):
        cam.resolutions(['54138969', '123'])
    with pytest.raises(cam.UnknownCameraError):
        cam.camera_to_pixel(np.ones(3), 7)
    with pytest.raises(ValueError, match='unknown subject'):
        cam.world_to_camera(np.zeros(3), 'S2', 0)


def test_resolutions_match_resolution():
    rng = np.random.default_rng(1)
    names = [cam.CAMERA_IDS[i] for i in np.repeat(rng.integers(0, 4, 50), rng.integers(1, 9, 50))]
    for given in (names, np.asarray(names), np.asarray(names, dtype=object)):
        w, h = cam.resolutions(given)
        assert w.shape == h.shape == (len(names),)
        np.testing.assert_array_equal(np.stack([w, h], 1), [cam.resolution(n) for n in names])
    w, h = cam.resolutions([])
    assert w.shape == h.shape == (0,)
