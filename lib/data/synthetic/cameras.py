"""Seeing a world-space motion with the H36M cameras: camera space, pixels and the 2.5D factor."""
from __future__ import annotations

import numpy as np

from lib.data import camera as cam
from lib.data.synthetic.noise import detector_failures, detector_noise


def depth_image(x_cam: np.ndarray, pixels: np.ndarray, focal: float) -> tuple[np.ndarray, np.ndarray]:
    """The 2.5D convention: camera-space joints [T, 17, 3] (mm) and their pixels [T, 17, 2] ->
    (joint3d_image [T, 17, 3], lambda [T]): x, y = ``pixels``; z = (Z - Z_root) / lambda, with
    ``lambda = Z_root / focal`` in mm per pixel (``focal``: the mean focal length, pixels)."""
    factor = x_cam[:, 0, 2] / focal
    depth = (x_cam[..., 2] - x_cam[:, :1, 2]) / factor[:, None]
    return np.concatenate([pixels, depth[..., None]], -1), factor


def image_space(x_cam: np.ndarray, camera) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space joints [T, 17, 3] (mm) seen by an H36M camera -> (joint3d_image, lambda) of
    :func:`depth_image` with the undistorted pixel projection."""
    return depth_image(x_cam, cam.camera_to_pixel(x_cam, camera), cam.focal_length(camera))


def vary_placement(world: np.ndarray, centre: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The scene moved against a fixed camera at ``centre`` (world mm), as if seen by another
    camera: pushed 0..1.5 m further away (distance, so apparent size and focal length), raised or
    lowered (camera height -0.7..+0.5 m relative to the person) and turned about a horizontal
    axis through the person (camera pitch +-12 degrees). World mm -> world mm."""
    middle = world[:, 0].mean(0)
    away = np.r_[middle[:2] - centre[:2], 0.0]
    away /= max(np.linalg.norm(away), 1e-9)
    k = np.array([-away[1], away[0], 0.0])  # horizontal axis across the line of sight
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    pitch = rng.uniform(-12, 12) * np.pi / 180
    rot = np.eye(3) + np.sin(pitch) * kx + (1 - np.cos(pitch)) * kx @ kx
    shift = rng.uniform(0, 1500) * away + np.array([0.0, 0.0, rng.uniform(-500, 700)])
    return (world - middle) @ rot.T + middle + shift


def _video(world: np.ndarray, subject: int, camera: int, rng: np.random.Generator,
           placement: bool = False) -> dict:
    """Per-frame arrays of one camera's video of a world-space motion (float64); ``placement``:
    see the scene through :func:`vary_placement` (``joint3d_world`` stays the floor frame)."""
    seen = vary_placement(world, cam.extrinsics(subject, camera - 1)[1], rng) if placement else world
    x_cam = cam.world_to_camera(seen, f"S{subject}", camera - 1)
    image, factor = image_space(x_cam, camera - 1)
    width, _ = cam.resolution(camera - 1)
    noise, conf = detector_noise(rng, len(world), width)
    detected, conf = detector_failures(rng, image[..., :2] + noise, conf, width)
    return {'joint_2d': detected, 'confidence': conf, 'joint3d_image': image,
            'joints_2.5d_image': image * factor[:, None, None], '2.5d_factor': factor,
            'joint3d_camera': x_cam, 'joint3d_world': world}
