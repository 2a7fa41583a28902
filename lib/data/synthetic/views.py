"""2D seen from everywhere: training clips projected through a fresh random camera at every draw.

:class:`RandomCameraDataset` holds the world-space 3D joints of the training split (``joint3d_world``,
mm, Z up; the synthetic generator writes them with ``world=True``) and the clip list of the H36M-shaped
path (same clips, same order, so validation hold-out and the clip count work unchanged). Each time
clip ``i`` is drawn in epoch ``e`` it is seen by a new camera drawn from ``(seed, e, i)``
(:func:`random_camera`):

* position: any azimuth around the clip's centre, elevation -10..60 degrees (never below 0.1 m),
  distance such that the clip's bounding sphere fills 30-90 % of the shorter image half-side
  (at least 1.2 sphere radii and 1.5 m away);
* image: width 480-1920 px, aspect 1, 4:3, 16:9, 3:4 or 9:16; field of view 30-90 degrees on the
  longer side (pinhole, no distortion); the person anywhere in the frame (principal point offset),
  camera roll +-8 degrees;
* with probability :data:`H36M_SHARE` one of the subject's four H36M cameras instead (with lens
  model ignored, as the synthetic source does).

The 2D input gets the generator's detector noise and failures (``noise.py``), scaled to the person's
size in the image as on H36M (:data:`H36M_PERSON_PX` in a 1000 px wide image), drawn at the source
frame rate and subsampled with the clip. Input and label follow the one normalisation contract
(``lib.data.normalize``: x_n = 2x/w - 1, y_n = 2y/w - h/w, z_n = 2z/w with z the 2.5D depth of
``cameras.depth_image``), so ``denormalize_3d(label) x factor`` is the camera-space pose in mm.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from lib.data import camera as cam
from lib.data.codec import PoseCodec
from lib.data.normalize import normalize_2d, normalize_3d
from lib.data.synthetic.cameras import depth_image, image_space
from lib.data.synthetic.common import _rng
from lib.data.synthetic.noise import detector_failures, detector_noise
from lib.errors import DataError

_RNG_TAG_VIEW = 21
H36M_SHARE = 0.2                 # draws that use one of the subject's H36M cameras
H36M_PERSON_PX = 330.0           # median larger extent of a synthetic person's 2D box on H36M
H36M_WIDTH = 1000.0              # ... in images this wide (the detector statistics' unit)
WIDTH_PX = (480, 1920)
ASPECTS = (1.0, 4 / 3, 16 / 9, 3 / 4, 9 / 16)   # width / height
FOV_DEG = (30.0, 90.0)           # of the longer image side
FILL = (0.3, 0.9)                # share of the shorter half-side the clip's bounding sphere fills
ELEVATION_DEG = (-10.0, 60.0)
ROLL_DEG = 8.0
MIN_DISTANCE_MM, MIN_CAMERA_HEIGHT_MM = 1500.0, 100.0


@dataclass(frozen=True)
class Pinhole:
    """A pinhole camera: world -> camera rotation ``rot`` [3, 3] (rows: x right, y down, z
    forward), centre ``centre`` [3] (world mm), focal length ``f`` and principal point (px),
    image size (px)."""
    rot: np.ndarray
    centre: np.ndarray
    f: float
    cx: float
    cy: float
    width: int
    height: int

    def to_camera(self, world: np.ndarray) -> np.ndarray:
        return (np.asarray(world, np.float64) - self.centre) @ self.rot.T

    def to_pixel(self, x_cam: np.ndarray) -> np.ndarray:
        return self.f * x_cam[..., :2] / x_cam[..., 2:3] + np.array([self.cx, self.cy])


def _look_at(eye: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    rot = np.stack([right, np.cross(forward, right), forward])
    c, s = np.cos(roll), np.sin(roll)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ rot


def random_camera(rng: np.random.Generator, world: np.ndarray) -> Pinhole:
    """A random pinhole camera that sees every joint of the clip ``world`` [T, 17, 3] (mm)."""
    width = int(rng.integers(WIDTH_PX[0], WIDTH_PX[1] + 1))
    height = int(round(width / ASPECTS[rng.integers(len(ASPECTS))]))
    f = max(width, height) / 2 / np.tan(np.radians(rng.uniform(*FOV_DEG)) / 2)
    centre = world.reshape(-1, 3).mean(0)
    radius = max(np.linalg.norm(world - centre, axis=-1).max(), 300.0)
    fill = rng.uniform(*FILL)
    distance = max(radius * f / (fill * min(width, height) / 2), 1.2 * radius, MIN_DISTANCE_MM)
    lowest = np.arcsin(np.clip((MIN_CAMERA_HEIGHT_MM - centre[2]) / distance, -1.0, 1.0))
    elevation = max(np.radians(rng.uniform(*ELEVATION_DEG)), lowest)
    azimuth = rng.uniform(0, 2 * np.pi)
    eye = centre + distance * np.array([np.cos(elevation) * np.cos(azimuth),
                                        np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    rot = _look_at(eye, centre, np.radians(rng.uniform(-ROLL_DEG, ROLL_DEG)))
    disk = radius * f / distance  # the sphere's radius in pixels: keep it inside the image
    cx = width / 2 + rng.uniform(-1, 1) * max(width / 2 - disk, 0.0)
    cy = height / 2 + rng.uniform(-1, 1) * max(height / 2 - disk, 0.0)
    return Pinhole(rot, eye, float(f), float(cx), float(cy), width, height)


def seen_by(world: np.ndarray, camera, subject: int = 0) -> tuple:
    """(x_cam [T, 17, 3] mm, joint3d_image [T, 17, 3], 2.5d factor [T], width, height) of world
    joints seen by a :class:`Pinhole` or by H36M camera index ``camera`` of ``subject``."""
    if isinstance(camera, Pinhole):
        x_cam = camera.to_camera(world)
        image, factor = depth_image(x_cam, camera.to_pixel(x_cam), camera.f)
        return x_cam, image, factor, camera.width, camera.height
    x_cam = cam.world_to_camera(world, f"S{subject}", camera)
    return (x_cam, *image_space(x_cam, camera), *cam.resolution(camera))


def random_view(rng: np.random.Generator, world: np.ndarray, subject: int, frames: np.ndarray):
    """One random view of a clip: world joints [T, 17, 3] (mm) at source frames ``frames`` [T]
    (the noise is drawn at the source rate over their span). Returns a dict: ``pose2d`` [T, 17, 3]
    (detected pixels x, y + confidence), ``image`` (joint3d_image [T, 17, 3]), ``factor`` (the
    2.5d factor [T], mm per pixel), ``width``, ``height``, ``x_cam`` (camera-space mm), ``h36m``."""
    h36m = rng.random() < H36M_SHARE
    camera = int(rng.integers(len(cam.CAMERA_IDS))) if h36m else random_camera(rng, world)
    x_cam, image, factor, width, height = seen_by(world, camera, subject)
    gt = image[..., :2]
    size = np.median(np.maximum(np.ptp(gt[..., 0], axis=1), np.ptp(gt[..., 1], axis=1)))
    scale = H36M_WIDTH * size / H36M_PERSON_PX      # the image width whose noise fits this person
    span = frames - frames[0]
    noise, conf = detector_noise(rng, int(span[-1]) + 1, scale)
    detected, conf = detector_failures(rng, gt + noise[span], conf[span], scale)
    return {'pose2d': np.concatenate([detected, conf], -1), 'image': image, 'factor': factor,
            'width': width, 'height': height, 'x_cam': x_cam, 'h36m': h36m}


class RandomCameraDataset(Dataset):
    """The training clips of a source with ``joint3d_world``, seen through a new random camera at
    every draw (module doc). Same length and clip order as the clip store of the same config;
    call :meth:`set_epoch` every epoch (the trainer does) for new cameras per epoch."""

    def __init__(self, reader, gt_2d: bool = False, no_conf: bool = False):
        if "joint3d_world" not in reader.raw["train"]:
            raise DataError(f"{reader.path}: random_cameras needs world joints ('train/joint3d_world'), which "
                            "synthetic sources generated with random_cameras: true have; delete the file to "
                            "regenerate it, or set random_cameras: false")
        self.world = reader.strided("train", "joint3d_world")
        self.clips = reader.clip_indices("train")
        self.frames = reader.original_frames(self.clips)
        sources = reader.strided("train", "source")
        self.subject = np.array([int(str(s)[2:4]) for s in sources[self.clips[:, 0]]])  # s_09_act_...
        self.codec = PoseCodec(gt_2d=gt_2d, no_conf=no_conf)
        self.epoch, self.seed = 0, 0

    def set_epoch(self, epoch: int, seed: int = 0) -> None:
        self.epoch, self.seed = int(epoch), int(seed)

    def __len__(self) -> int:
        return len(self.clips)

    def draw(self, index: int) -> dict:
        """:func:`random_view` of clip ``index`` in the current epoch, plus the normalised model
        input ``input`` and label ``label`` (numpy float32 [T, 17, 3])."""
        rng = _rng(self.seed, _RNG_TAG_VIEW, self.epoch, index)
        world = np.asarray(self.world[self.clips[index]], np.float64)
        view = random_view(rng, world, int(self.subject[index]), self.frames[index])
        w, h = view['width'], view['height']
        return {**view, 'input': normalize_2d(view['pose2d'], w, h), 'label': normalize_3d(view['image'], w, h)}

    def __getitem__(self, index: int):
        index = int(index) + len(self) if index < 0 else int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"clip {index} out of range ({len(self)} clips)")
        view = self.draw(index)
        x, y = torch.from_numpy(view['input']), torch.from_numpy(view['label'])
        return self.codec.encode_input(x, y).contiguous(), y
