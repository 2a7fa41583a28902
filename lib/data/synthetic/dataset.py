"""The synthetic data set: every subject, action, subaction and camera in MotionBERT's schema."""
from __future__ import annotations

import os
import time
from typing import Iterable, Optional

import numpy as np

from lib.data import camera as cam
from lib.data.skeleton import NUM_JOINTS
from lib.data.synthetic.body import random_body, subject_bones
from lib.data.synthetic.cameras import _video
from lib.data.synthetic.common import (_RNG_TAG_BONES, _RNG_TAG_GEOMETRIC, _RNG_TAG_LENGTH, _RNG_TAG_MOTION,
                                       _RNG_TAG_NOISE, _rng)
from lib.data.synthetic.geometric import BODY_SPREAD, geometric_motion
from lib.data.synthetic.motions import synthesize_motion
from lib.io import write_pickle

TRAIN_SUBJECTS = (1, 5, 6, 7, 8)
TEST_SUBJECTS = (9, 11)
ACTIONS = {
    2: 'Directions', 3: 'Discussion', 4: 'Eating', 5: 'Greeting', 6: 'Phoning', 7: 'Photo',
    8: 'Posing', 9: 'Purchases', 10: 'Sitting', 11: 'SittingDown', 12: 'Smoking', 13: 'Waiting',
    14: 'WalkDog', 15: 'Walking', 16: 'WalkTogether',
}
SUBACTIONS = (1, 2)
CAMERAS = (1, 2, 3, 4)  # 1-based, in the order of camera.CAMERA_IDS
# Frames per video (mean): 'small' is the quick start's, 'default' the wild config's. (The config
# schema accepts only these three names for ``synthetic_data``.)
SIZES = {'tiny': 128, 'small': 200, 'default': 600}
# Sizes whose training split varies more than H36M: a new body per sequence (not per subject) and
# the scene moved against each camera (``cameras.vary_placement``); their test split stays plain.
VARIED_SIZES = ('default',)
LENGTH_JITTER = 0.15  # small/default: video length varies by +-15 % per sequence
GEOMETRIC_ACTION = 'Geometric'  # train 'action' of a sequence replaced by a geometric one


def source_id(subject: int, action: int, subaction: int, camera: int) -> str:
    """Video id, e.g. ``s_09_act_05_subact_02_ca_01``; camera is 1-based (1..4)."""
    return f"s_{subject:02d}_act_{action:02d}_subact_{subaction:02d}_ca_{camera:02d}"


def _frames(seed: int, size: str, frames_per_video: Optional[int], ids: tuple) -> int:
    """Frames of one sequence: fixed for 'tiny' or an override, else +-15 % around the size."""
    if frames_per_video is not None:
        if int(frames_per_video) < 2:
            raise ValueError(f"frames_per_video must be at least 2, got {frames_per_video}")
        return int(frames_per_video)
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if size == 'tiny':
        return SIZES[size]
    jitter = _rng(seed, _RNG_TAG_LENGTH, *ids).uniform(-LENGTH_JITTER, LENGTH_JITTER)
    return int(round(SIZES[size] * (1 + jitter)))


def _select(wanted, known: Iterable, name_of) -> list:
    """Keep the known items (in canonical order) that ``wanted`` names; all if None."""
    known = list(known)
    if wanted is None:
        return known
    keys = {str(name_of(w)) for w in wanted}
    chosen = [k for k in known if str(name_of(k)) in keys]
    if len(chosen) != len(keys):
        raise ValueError(f"unknown entries in {sorted(keys)}; known: {known}")
    return chosen


def _action_number(action) -> int:
    """Action number 2..16 from a number or an action name."""
    names = {v.lower(): k for k, v in ACTIONS.items()}
    return names[action.lower()] if isinstance(action, str) and action.lower() in names else int(action)


def _camera_number(camera) -> int:
    """1-based camera number from 1..4 or a camera id string."""
    return cam.camera_index(camera) + 1 if isinstance(camera, str) else int(camera)


def _subject_number(subject) -> int:
    return int(cam.subject_key(subject)[1:])


_EMPTY_SHAPES = {'joint_2d': (0, NUM_JOINTS, 2), 'confidence': (0, NUM_JOINTS, 1), '2.5d_factor': (0,)}


def is_geometric(seed: int, subject: int, action: int, sub: int, share: float) -> bool:
    """Whether this training sequence is replaced by a geometric one (a share ``share`` of them)."""
    return share > 0 and _rng(seed, _RNG_TAG_GEOMETRIC, subject, action, sub).random() < share


def _split(seed, size, frames_per_video, subjects, actions, cameras, test: bool, debug: bool,
           geometric: float = 0.0, world: bool = False):
    """All videos of some subjects, concatenated in source order, in MotionBERT's schema."""
    keys = ['joint_2d', 'confidence', 'joint3d_image']
    keys += ['joints_2.5d_image', '2.5d_factor'] if test else []
    keys += ['joint3d_camera', 'joint3d_world'] if debug else ['joint3d_world'] if world and not test else []
    arrays = {k: [np.zeros(_EMPTY_SHAPES.get(k, (0, NUM_JOINTS, 3)), np.float32)] for k in keys}
    names = {'camera_name': [], 'source': [], 'action': []}
    varied = size in VARIED_SIZES and not test
    for subject in subjects:
        for action in actions:
            for sub in SUBACTIONS:
                geo = not test and is_geometric(seed, subject, action, sub, geometric)
                bones = (random_body(_rng(seed, _RNG_TAG_BONES, subject, action, sub), BODY_SPREAD if geo else 1.0)
                         if varied or geo else subject_bones(seed, subject))
                n = _frames(seed, size, frames_per_video, (subject, action, sub))
                motion_rng = _rng(seed, _RNG_TAG_MOTION, subject, action, sub)
                motion = (geometric_motion(n, motion_rng, bones) if geo
                          else synthesize_motion(ACTIONS[action], n, motion_rng, bones))
                for camera in cameras:
                    noise_rng = _rng(seed, _RNG_TAG_NOISE, subject, action, sub, camera)
                    video = _video(motion, subject, camera, noise_rng, placement=varied)
                    for key in keys:
                        arrays[key].append(video[key].astype(np.float32))
                    names['camera_name'] += [cam.CAMERA_IDS[camera - 1]] * n
                    names['source'] += [source_id(subject, action, sub, camera)] * n
                    names['action'] += [GEOMETRIC_ACTION if geo else ACTIONS[action]] * n
    return {**{k: np.concatenate(v) for k, v in arrays.items()}, **names}


def make_synthetic_h36m(seed: int = 0, size: str = 'default', frames_per_video: Optional[int] = None,
                        subjects=None, actions=None, cameras=None, debug: bool = False,
                        geometric: float = 0.0, world: bool = False) -> dict:
    """Build the synthetic source dict ``{'train': {...}, 'test': {...}}`` (schema: module doc).

    ``subjects`` (9, 'S9'), ``actions`` (5, 'Greeting') and ``cameras`` (1..4 or id strings)
    restrict the output; a video's content does not depend on what else is generated.
    ``debug=True`` adds ``joint3d_camera`` and ``joint3d_world`` (float32 [Nf, 17, 3], mm);
    ``world=True`` adds ``joint3d_world`` to the train split only (what training through random
    cameras projects, ``lib.data.synthetic.views``). ``geometric``: the share of training
    sequences replaced by geometric ones (``geometric.py``; train ``action`` 'Geometric'); the
    test split never has them.
    """
    if not 0.0 <= float(geometric) <= 1.0:
        raise ValueError(f"geometric must be a share in [0, 1], got {geometric}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    subjects = _select(subjects, TRAIN_SUBJECTS + TEST_SUBJECTS, _subject_number)
    actions = _select(actions, ACTIONS, _action_number)
    cameras = _select(cameras, CAMERAS, _camera_number)
    args = (seed, size, frames_per_video)
    return {
        'train': _split(*args, [s for s in subjects if s in TRAIN_SUBJECTS], actions, cameras,
                        test=False, debug=debug, geometric=float(geometric), world=world),
        'test': _split(*args, [s for s in subjects if s in TEST_SUBJECTS], actions, cameras,
                       test=True, debug=debug),
    }


def write_synthetic_h36m(path: str, seed: int = 0, size: str = 'default', **kwargs) -> dict:
    """Generate and pickle (protocol 4) the data set to ``path`` atomically; return a summary.

    Summary keys: ``path``, ``frames`` (per split), ``bytes``, ``generate_s``, ``write_s``.
    Extra keyword arguments go to :func:`make_synthetic_h36m`.
    """
    start = time.perf_counter()
    data = make_synthetic_h36m(seed, size, **kwargs)
    generated = time.perf_counter()
    write_pickle(path, data)
    return {'path': path, 'frames': {k: len(v['source']) for k, v in data.items()},
            'bytes': os.path.getsize(path), 'generate_s': generated - start,
            'write_s': time.perf_counter() - generated}
