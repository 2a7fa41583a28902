"""lib/data/synthetic/ and tools/make_synthetic_h36m.py: schema, geometry, noise, determinism."""
import pickle
import re

import numpy as np
import pytest

from lib.data import camera as cam
from lib.data import synthetic as syn
from lib.data.skeleton import LIMBS
from lib.data.synthetic import body as syn_body
from lib.data.synthetic import dataset as syn_dataset
from lib.data.synthetic import realism
from lib.data.synthetic import noise as syn_noise

SOURCE_RE = re.compile(r'^s_(\d\d)_act_(\d\d)_subact_(0[12])_ca_(0[1-4])$')


@pytest.fixture(scope='module')
def data():
    """The full 'tiny' data set (128 frames per video) with the debug arrays."""
    return syn.make_synthetic_h36m(seed=0, size='tiny', debug=True)


@pytest.fixture(scope='module')
def long_videos():
    """One S9 sequence per action, camera 1, 600 frames (12 s), with the debug arrays."""
    return syn.make_synthetic_h36m(seed=0, frames_per_video=600, subjects=[9], cameras=[1],
                                   debug=True)['test']


def test_schema_dtypes_and_shapes(data):
    assert set(data) == {'train', 'test'}
    common = {'joint_2d', 'confidence', 'joint3d_image', 'camera_name', 'source', 'action'}
    assert set(data['train']) == common | {'joint3d_camera', 'joint3d_world'}
    assert set(data['test']) == common | {'joints_2.5d_image', '2.5d_factor', 'joint3d_camera',
                                          'joint3d_world'}
    for split in data.values():
        n = len(split['source'])
        shapes = {'joint_2d': (n, 17, 2), 'confidence': (n, 17, 1), 'joint3d_image': (n, 17, 3),
                  'joints_2.5d_image': (n, 17, 3), '2.5d_factor': (n,)}
        for key, shape in shapes.items():
            if key in split:
                assert split[key].dtype == np.float32 and split[key].shape == shape, key
        for key in ('camera_name', 'source', 'action'):
            assert len(split[key]) == n and all(isinstance(s, str) for s in split[key][::97])
    assert len(data['train']['source']) == 5 * 15 * 2 * 4 * 128
    assert len(data['test']['source']) == 2 * 15 * 2 * 4 * 128


def test_source_ids_subjects_actions_and_cameras(data):
    for split, subjects in (('train', {1, 5, 6, 7, 8}), ('test', {9, 11})):
        d = data[split]
        runs = realism.video_runs(d['source'])
        assert len(runs) == len(subjects) * 15 * 2 * 4 and len(set(d['source'])) == len(runs)
        seen_subjects, seen_actions = set(), set()
        for start, stop in runs:
            source = d['source'][start]
            subj, act, _, ca = map(int, SOURCE_RE.match(source).groups())
            assert source[-6:] == f'_ca_{ca:02d}'
            assert re.fullmatch(r's_\d\d_act_\d\d_subact_\d\d', source[:-6])
            assert set(d['camera_name'][start:stop]) == {cam.CAMERA_IDS[ca - 1]}
            assert set(d['action'][start:stop]) == {syn.ACTIONS[act]}
            seen_subjects.add(subj)
            seen_actions.add(d['action'][start])
        assert seen_subjects == subjects
        assert seen_actions == set(syn.ACTIONS.values()) and len(seen_actions) == 15
    assert syn.ACTIONS[2] == 'Directions' and syn.ACTIONS[16] == 'WalkTogether'


def test_write_is_deterministic_and_seed_dependent(tmp_path):
    kwargs = dict(frames_per_video=40, subjects=[9], actions=['Walking', 5], cameras=[1, '60457274'])
    paths = [tmp_path / f'{i}.pkl' for i in range(3)]
    for path, seed in zip(paths, (3, 3, 4)):
        summary = syn.write_synthetic_h36m(str(path), seed=seed, **kwargs)
        assert summary['frames'] == {'train': 0, 'test': 2 * 2 * 2 * 40}
        assert summary['bytes'] == path.stat().st_size
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['0.pkl', '1.pkl', '2.pkl']  # no temp left
    with open(paths[0], 'rb') as f:
        loaded = pickle.load(f)
    assert loaded['train']['joint_2d'].shape == (0, 17, 2) and len(loaded['train']['source']) == 0
    assert loaded['test']['source'][0] == 's_09_act_05_subact_01_ca_01'


def test_a_video_does_not_depend_on_the_rest_of_the_selection(data):
    part = syn.make_synthetic_h36m(seed=0, size='tiny', subjects=['S11'], actions=['Sitting'],
                                   cameras=[3])['test']
    full = data['test']
    idx = np.flatnonzero(np.isin(full['source'], list(set(part['source']))))
    assert len(idx) == 2 * 128
    for key in ('joint_2d', 'confidence', 'joint3d_image', 'joints_2.5d_image', '2.5d_factor'):
        np.testing.assert_array_equal(part[key], full[key][idx])


def test_bone_lengths_constant_in_time_and_h36m_like(data):
    d = data['train']
    x = d['joint3d_camera'].astype(np.float64)
    bones = np.stack([np.linalg.norm(x[:, c] - x[:, p], axis=-1) for p, c in LIMBS], 1)
    subjects = np.array([int(s[2:4]) for s in d['source']])
    means = []
    for subject in syn.TRAIN_SUBJECTS:
        b = bones[subjects == subject]
        assert np.abs(b - b.mean(0)).max() < 0.05  # mm, float32 rounding only
        means.append(b.mean(0))
    means = np.array(means)
    assert np.ptp(means, axis=0).max() > 5  # subjects differ
    thigh, shin, forearm = means[:, 1], means[:, 2], means[:, 15]
    assert np.all(np.abs(thigh / 450 - 1) < 0.2) and np.all(np.abs(shin / 440 - 1) < 0.2)
    assert np.all(np.abs(forearm / 250 - 1) < 0.2)


def test_bodies_cover_adult_statures_and_proportions():
    bodies = [syn_body.random_body(np.random.default_rng(i)) for i in range(400)]
    heights = np.array([syn_body.standing_height(b) for b in bodies])
    assert np.percentile(heights, 2) < 1550 and np.percentile(heights, 98) > 1850
    assert heights.min() > 1350 and heights.max() < 2050
    hips = np.array([b['hip'] / b['thigh'] for b in bodies])
    shoulders = np.array([b['shoulder'] / b['upper_arm'] for b in bodies])
    assert hips.std() / hips.mean() > 0.07 and shoulders.std() / shoulders.mean() > 0.06


def test_hard_realism_checks_hold(data):
    """Bone lengths constant, nothing below the floor, joint limits held, little foot skating."""
    d = data['train']
    videos = [d['joint3d_world'][a:b].astype(np.float64) for a, b in realism.video_runs(d['source'])][::4]
    summary = realism.aggregate([realism.video_checks(x) for x in videos])
    assert summary['bone_length_range_mm'] < 0.05
    assert summary['floor_penetration_frac'] == 0
    # every joint stays above the floor by its body part's thickness (a hand resting on the floor
    # is 45 mm up); ankles and knees may dip a few mm where the foot lock bends the leg
    heights = np.concatenate(videos)[..., 2]
    assert (heights >= syn.CONTACT_RADIUS_MM - 15).all()
    assert summary['joint_limit_violation_frac'] < 0.005
    assert summary['foot_skating_frac'] < 0.2


def test_realism_checks_catch_broken_motion():
    """The checks fail where they should: a stretched bone, a sunk foot, a hyperextended knee."""
    x = syn.synthesize_motion('Waiting', 100, np.random.default_rng(0), syn.subject_bones(0, 1))
    bad = x.copy()
    bad[50:, 3, 2] -= 80.0
    checks = realism.video_checks(bad)
    assert checks['bone_length_range_mm'] > 50 and checks['floor_penetration_frac'] > 0.4
    knee = x.copy()
    fwd, _, _ = realism.trunk_frame(x)
    knee[:, 2] -= 150.0 * fwd  # right knee pushed back: the leg bends the wrong way
    assert realism.video_checks(knee)['limit_knee_flexion_frac'] > 0.9


def test_image_space_and_2_5d_conventions(data):
    d = data['test']
    img, mm, factor = d['joint3d_image'], d['joints_2.5d_image'], d['2.5d_factor']
    x_cam = d['joint3d_camera'].astype(np.float64)
    np.testing.assert_allclose(img[:, 0, 2], 0, atol=1e-3)  # z is root-relative
    np.testing.assert_allclose(mm, img * factor[:, None, None], rtol=1e-5, atol=1e-3)
    f = np.array([cam.focal_length(c) for c in d['camera_name'][::128]]).repeat(128)
    np.testing.assert_allclose(factor, x_cam[:, 0, 2] / f, rtol=1e-5)
    for start in range(0, len(f), 128 * 31):  # pixels = projection of the camera-space pose
        c = d['camera_name'][start]
        np.testing.assert_allclose(img[start, :, :2], cam.camera_to_pixel(x_cam[start], c), atol=1e-3)
    rel_mm = mm - mm[:, :1]
    rel_cam = x_cam - x_cam[:, :1]
    # Exact: x_2.5d - x_2.5d_root = X_j * Z_root / Z_j - X_root (weak perspective at the root).
    expected = x_cam[..., :2] * x_cam[:, :1, 2:] / x_cam[..., 2:] - x_cam[:, :1, :2]
    np.testing.assert_allclose(rel_mm[..., :2], expected, atol=2.0)
    np.testing.assert_allclose(rel_mm[..., 2], rel_cam[..., 2], atol=0.1)
    # So it approximates the camera-space pose up to perspective, which grows with the root's
    # distance from the optical axis (H36M cameras look down: the pelvis is ~0.4-1 m off-axis).
    error = np.linalg.norm(rel_mm - rel_cam, axis=-1).mean(axis=1)
    assert error.mean() < 30.0, f"2.5D pose differs from the camera-space pose by {error.mean():.1f} mm"
    near_axis = np.linalg.norm(x_cam[:, 0, :2], axis=-1) < 400
    assert near_axis.sum() > 100 and error[near_axis].mean() < 20.0


def test_detector_error_statistics(data):
    d = data['train']
    error = np.linalg.norm(d['joint_2d'] - d['joint3d_image'][..., :2], axis=-1)
    conf = d['confidence'][..., 0]
    assert 2.0 < np.median(error) < 6.0  # pixels; the real detector's Gaussian part is ~3 px std
    assert 0.003 < np.mean(error > 15) < 0.05  # occasional outliers
    assert conf.min() >= 0 and conf.max() <= 1 and 0.6 < conf.mean() < 0.9
    assert np.corrcoef(error.ravel(), conf.ravel())[0, 1] < -0.3
    assert conf[error > 12].mean() < conf[error < 4].mean() - 0.2


def test_confidence_never_rises_with_error():
    dis = np.linspace(0, 0.5, 501)
    clamped = np.minimum(dis, syn_noise._CONF_DIS_MAX)
    curve = syn_noise._CONF_A / (clamped + syn_noise._CONF_A) + syn_noise._CONF_B * clamped
    assert np.all(np.diff(curve) <= 1e-12)


def test_error_is_smooth_in_time():
    offset, _ = syn.detector_noise(np.random.default_rng(0), 500, 1000)
    step = np.abs(np.diff(offset, axis=0))
    assert np.median(step) < 1.5  # pixels per frame: slowly varying error plus ~1 px jitter
    assert np.abs(offset).max() < 0.05 * 500


def test_people_stay_in_view(data):
    for d in data.values():
        w, h = cam.resolutions(d['camera_name'])
        xy = d['joint3d_image'][..., :2]
        inside = ((xy >= 0) & (xy < np.stack([w, h], -1)[:, None])).all(axis=(1, 2))
        assert inside.mean() > 0.95
        assert np.linalg.norm(d['joint3d_world'][:, 0, :2], axis=-1).max() < 2200


def test_motion_is_smooth_and_on_the_floor(long_videos):
    world = long_videos['joint3d_world'].astype(np.float64)
    frames = np.array(long_videos['source'])
    same_video = frames[1:] == frames[:-1]
    speed = np.linalg.norm(np.diff(world, axis=0), axis=-1)[same_video]  # mm per frame (50 Hz)
    assert speed.max() < 180  # under 9 m/s for every joint (a fast arm swing in a jump)
    assert np.percentile(speed, 99.9) < 110
    feet = world[:, [3, 6], 2].min(axis=1)
    assert feet.min() > syn.ANKLE_HEIGHT_MM - 10  # no foot below the floor
    assert np.mean(np.abs(feet - syn.ANKLE_HEIGHT_MM) < 5) > 0.9  # a foot on the floor (jumps aside)
    assert np.mean(world[..., 2].max(axis=1) > world[:, 0, 2] + 400) > 0.95  # upright but for bends


def test_walking_moves_and_sitting_lowers_the_pelvis(long_videos):
    actions = np.array(long_videos['action'])
    root = long_videos['joint3d_world'][:, 0].astype(np.float64)
    for walk in ('Walking', 'WalkTogether', 'WalkDog'):
        path = root[actions == walk]
        assert np.linalg.norm(np.diff(path[:, :2], axis=0), axis=-1).sum() > 4000  # > 4 m in 12 s
        heading = np.diff(path[::25, :2], axis=0)
        turn = np.abs(np.angle(np.exp(1j * np.diff(np.arctan2(heading[:, 1], heading[:, 0])))))
        assert turn.sum() > np.pi / 2  # the path turns
    for still in ('Posing', 'Waiting', 'Eating'):
        assert np.median(root[actions == still, 2]) > 850  # standing most of the time
    for sit in ('Sitting', 'SittingDown'):
        height = root[actions == sit, 2]
        assert height.max() > 900 and height.min() < 650  # stands and sits


def test_actions_differ(long_videos):
    actions = np.array(long_videos['action'])
    x = long_videos['joint3d_world'].astype(np.float64)
    wrist_to_nose = {a: np.linalg.norm(x[actions == a, 16] - x[actions == a, 9], axis=-1).min()
                     for a in ('Eating', 'Smoking', 'Phoning', 'Walking')}
    assert max(wrist_to_nose['Eating'], wrist_to_nose['Smoking'], wrist_to_nose['Phoning']) < 250
    assert wrist_to_nose['Walking'] > 300  # running arms (elbows bent) swing up to ~0.4 m from the nose
    wave = x[actions == 'Greeting']
    assert (wave[:, 16, 2] > wave[:, 10, 2] - 150).any()  # the waving hand goes up to the head


def test_sizes_and_lengths():
    assert syn.SIZES['tiny'] < syn.SIZES['small'] < syn.SIZES['default']
    lengths = [syn_dataset._frames(0, 'default', None, (s, a, 1)) for s in (1, 9) for a in syn.ACTIONS]
    assert 0.85 * 600 <= min(lengths) < max(lengths) <= 1.15 * 600
    assert syn_dataset._frames(0, 'default', 77, (1, 2, 1)) == 77
    with pytest.raises(ValueError, match='at least 2'):
        syn_dataset._frames(0, 'tiny', 1, (1, 2, 1))
    with pytest.raises(ValueError, match='unknown size'):
        syn.make_synthetic_h36m(size='huge', subjects=[1], actions=[2], cameras=[1])
    with pytest.raises(ValueError):
        syn.make_synthetic_h36m(size='tiny', subjects=['S2'])


def test_command_line_tool(tmp_path, capsys):
    from tools.make_synthetic_h36m import main
    out = tmp_path / 'sub' / 'h36m.pkl'
    main(['--out', str(out), '--seed', '2', '--size', 'tiny', '--frames_per_video', '12'])
    printed = capsys.readouterr().out
    assert 'train 7,200 frames' in printed and 'test 2,880 frames' in printed and 'MiB' in printed
    with open(out, 'rb') as f:
        loaded = pickle.load(f)
    assert loaded['test']['joints_2.5d_image'].shape == (2880, 17, 3)


def _motions(action, seeds=range(8), frames=1500):
    return [syn.synthesize_motion(action, frames, np.random.default_rng(seed), syn.subject_bones(0, seed))
            for seed in seeds]


def test_floor_episodes_lie_down_and_get_up():
    """SittingDown includes trips to the floor: the trunk lies horizontal with the back resting
    on the floor, the body does not slide while lying, and the person stands up again."""
    lying_videos = got_up = 0
    for x in _motions('SittingDown'):
        up = realism.trunk_frame(x)[2][:, 2]
        lying = np.abs(up) < 0.3
        if lying.sum() < 25:  # at least half a second on the back
            continue
        lying_videos += 1
        rows = np.flatnonzero(lying)
        # flat on the back, the pelvis, spine or thorax rests on the floor at its thickness
        flat = np.flatnonzero(np.abs(up) < 0.1)
        assert np.abs(x[flat][:, [0, 7, 8], 2].min(1) - 100).max() < 15
        pairs = flat[np.isin(flat + 1, flat)]
        pelvis_speed = np.linalg.norm(x[pairs + 1, 0, :2] - x[pairs, 0, :2], axis=1) * syn.FPS
        assert np.percentile(pelvis_speed, 95) < 5  # mm/s: lying, the body does not slide
        got_up += bool((x[rows[0]:, 0, 2] > 800).any())  # standing again after lying
        assert np.ptp(realism.bone_lengths(x), axis=0).max() < 0.05
    assert lying_videos >= 2 and got_up >= 1


def test_running_bouts_have_flight_phases():
    """Walking includes running bouts: faster than walking, with short flights in which both
    feet are off the ground and the pelvis falls at g (a ballistic arc)."""
    running_videos = 0
    for x in _motions('Walking'):
        accel = np.r_[0.0, np.diff(x[:, 0, 2], 2) * syn.FPS ** 2, 0.0]
        ballistic = (np.abs(accel + 9810.0) < 100.0) & (x[:, [3, 6], 2].min(1) > syn.ANKLE_HEIGHT_MM)
        edges = np.flatnonzero(np.diff(np.r_[0, ballistic.astype(int), 0]))
        flights = [(a, b) for a, b in zip(edges[::2], edges[1::2])]
        if len(flights) < 5:
            continue
        running_videos += 1
        speed = np.linalg.norm(np.diff(x[:, 0, :2], axis=0), axis=1) * syn.FPS / 1000
        assert speed.max() > 2.0  # m/s: jogging
        assert max(b - a for a, b in flights) / syn.FPS < 0.15  # short flights, not hovering
    assert running_videos >= 2


def test_posture_labels_of_the_postures_experiment():
    """The P1-by-posture breakdown (tools/bench/experiments.py postures) labels the frames of a
    lying-down video, a running one and a waiting one as such, video by video."""
    from tools.bench.experiments import POSTURES, posture_labels
    lying = next(x for x in _motions('SittingDown') if (np.abs(realism.trunk_frame(x)[2][:, 2]) < 0.1).sum() > 50)
    running = _motions('Walking', seeds=[0])[0]
    waiting = _motions('Waiting', seeds=[0], frames=300)[0]
    world = np.concatenate([lying, running, waiting])
    sources = np.repeat(['a', 'b', 'c'], [len(lying), len(running), len(waiting)])
    labels = posture_labels(world, sources)
    share = {name: [float(np.mean(labels[sources == s] == k)) for s in 'abc'] for k, name in enumerate(POSTURES)}
    assert share['lying'][0] > 0.03 and share['lying'][1] == share['lying'][2] == 0
    assert share['running'][1] > 0.05 and share['running'][2] == 0
    assert share['standing'][2] > 0.5
