"""Geometric sequences (lib/data/synthetic/geometric.py) and random training cameras (views.py)."""
import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from lib.data import synthetic as syn
from lib.data.dataset import set_dataset_epoch
from lib.data.h36m import DataReaderH36M
from lib.data.normalize import denormalize_3d, normalize_2d, normalize_3d
from lib.data.synthetic import body as syn_body
from lib.data.synthetic import geometric, realism, views
from lib.errors import DataError

SELECT = dict(subjects=[1, 5, 9], actions=[2, 10, 15])


@pytest.fixture(scope='module')
def motions():
    """40 geometric sequences of 200 frames, each with its own wide-range body."""
    out = []
    for i in range(40):
        bones = syn_body.random_body(np.random.default_rng([7, i]), geometric.BODY_SPREAD)
        out.append(geometric.geometric_motion(200, np.random.default_rng(i), bones, with_mode=True))
    return out


@pytest.fixture(scope='module')
def source():
    return syn.make_synthetic_h36m(0, 'tiny', geometric=0.5, world=True, **SELECT)


def test_geometric_share_is_deterministic_and_train_only(source):
    again = syn.make_synthetic_h36m(0, 'tiny', geometric=0.5, world=True, **SELECT)
    for split in ('train', 'test'):
        for key, value in source[split].items():
            assert np.array_equal(np.asarray(value), np.asarray(again[split][key])), (split, key)
    other = syn.make_synthetic_h36m(1, 'tiny', geometric=0.5, world=True, **SELECT)
    assert not np.array_equal(other['train']['joint3d_world'], source['train']['joint3d_world'])
    plain = syn.make_synthetic_h36m(0, 'tiny', **SELECT)
    actions = np.asarray(source['train']['action'])
    share = np.mean(actions == 'Geometric')
    assert 0.2 < share < 0.8                                   # about half of the sequences
    assert 'Geometric' not in set(source['test']['action'])     # the test split never has them
    for key in plain['test']:
        assert np.array_equal(np.asarray(plain['test'][key]), np.asarray(source['test'][key]))
    keep = actions != 'Geometric'                               # the other sequences are unchanged
    np.testing.assert_array_equal(plain['train']['joint_2d'][keep], source['train']['joint_2d'][keep])
    assert 'joint3d_world' not in plain['train'] and 'joint3d_world' not in source['test']
    with pytest.raises(ValueError):
        syn.make_synthetic_h36m(0, 'tiny', geometric=1.5, **SELECT)


def test_geometric_motion_holds_joint_limits_bones_and_floor(motions):
    checks = realism.aggregate([realism.video_checks(x) for x, _ in motions])
    assert checks['bone_length_range_mm'] < 1e-6
    assert checks['joint_limit_violation_frac'] < 0.01
    heights = np.concatenate([x for x, _ in motions])[..., 2]
    assert (heights >= syn.CONTACT_RADIUS_MM - 1e-6).all()
    assert np.isclose((heights - syn.CONTACT_RADIUS_MM).min(1), 0, atol=1e-6).all()  # lowest part on the floor


def test_geometric_motion_spans_the_joint_ranges_and_is_smooth(motions):
    world = np.concatenate([x for x, _ in motions])
    angles = realism.joint_angles(world)
    for name, lo, hi in (('knee_flexion', 15, 120), ('elbow_flexion', 15, 120), ('hip_flexion', 0, 100)):
        assert np.percentile(angles[name], 2) < lo and np.percentile(angles[name], 98) > hi, name
    speed = np.concatenate([realism.kinematics([x])['speed'][:, 1] for x, _ in motions])
    assert np.percentile(speed, 95) < 12.0  # m/s at the 95th percentile: smooth, not jumping


def test_geometric_orientations_cover_lying_upside_down_and_rolling(motions):
    modes = {m for _, m in motions}
    assert modes == set(geometric.ORIENTATION_MODES)
    ups = np.concatenate([realism.trunk_frame(x)[2][:, 2] for x, _ in motions])  # trunk up . world Z
    assert np.mean(ups > 0.7) > 0.15          # upright
    assert np.mean(np.abs(ups) < 0.3) > 0.15  # horizontal: lying, on all fours
    assert np.mean(ups < -0.7) > 0.03         # upside down
    tumbling = [x for x, m in motions if m == 'tumble']
    turned = [np.ptp(np.unwrap(np.arctan2(*realism.trunk_frame(x)[2][:, 1::-1].T))) for x in tumbling]
    assert max(turned) > np.pi                # a body rolls over


def test_body_proportions_span_adults_wider_than_h36m():
    wide = [syn_body.random_body(np.random.default_rng(i), geometric.BODY_SPREAD) for i in range(600)]
    narrow = [syn_body.random_body(np.random.default_rng(i)) for i in range(600)]
    heights = np.array([syn_body.standing_height(b) for b in wide])
    assert np.percentile(heights, 2) < 1450 and np.percentile(heights, 98) > 1950
    for bone in ('hip', 'shoulder'):
        w, n = (np.array([b[bone] for b in bodies]) for bodies in (wide, narrow))
        assert np.ptp(w) > 1.6 * np.ptp(n) and w.min() < 0.65 * np.median(w) and w.max() > 1.4 * np.median(w)


@pytest.fixture(scope='module')
def dataset(source):
    return views.RandomCameraDataset(DataReaderH36M(27, 2, 27, 27, source=source))


def test_random_cameras_are_new_per_epoch_and_deterministic(dataset, source):
    reader = DataReaderH36M(27, 2, 27, 27, source=source)
    assert len(dataset) == len(reader.clip_indices('train'))    # the clip store's clips, same order
    first = dataset[3][0]
    assert torch.equal(first, views.RandomCameraDataset(reader)[3][0])
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[3][0])
    set_dataset_epoch(Subset(dataset, [0, 1]), 0, 0)            # reached through a Subset
    assert torch.equal(first, dataset[3][0])
    draws = [dataset.draw(i) for i in range(len(dataset))]
    sizes = {(d['width'], d['height']) for d in draws}
    assert len(sizes) > len(dataset) // 2
    assert 0.05 < np.mean([d['h36m'] for d in draws]) < 0.45
    dataset.set_epoch(0)


def test_random_camera_views_keep_the_normalisation_contract(dataset):
    for i in range(0, len(dataset), 3):
        d = dataset.draw(i)
        w, h, x_cam = d['width'], d['height'], d['x_cam']
        assert (x_cam[..., 2] > 0).all()
        gt = d['image'][..., :2]
        assert (gt >= 0).all() and (gt[..., 0] <= w).all() and (gt[..., 1] <= h).all()  # in view
        # input: x_n = 2x/w - 1, y_n = 2y/w - h/w, confidence passed through
        np.testing.assert_allclose(d['input'][..., 0], 2 * d['pose2d'][..., 0] / w - 1, atol=1e-5)
        np.testing.assert_allclose(d['input'][..., 1], 2 * d['pose2d'][..., 1] / w - h / w, atol=1e-5)
        np.testing.assert_allclose(d['input'][..., 2], d['pose2d'][..., 2], atol=1e-6)
        # label: the inverse normalisation x the 2.5d factor is the camera-space pose in mm
        mm = denormalize_3d(d['label'], w, h).astype(np.float64) * d['factor'][:, None, None]
        rel_mm, rel_cam = mm - mm[:, :1], x_cam - x_cam[:, :1]
        np.testing.assert_allclose(rel_mm[..., 2], rel_cam[..., 2], atol=0.5)
        expected = x_cam[..., :2] * x_cam[:, :1, 2:] / x_cam[..., 2:] - x_cam[:, :1, :2]
        np.testing.assert_allclose(rel_mm[..., :2], expected, atol=2.0)  # H36M: fx != fy, f their mean
        # detections: noisy but near the truth, the noise scaled to the person's size
        size = np.ptp(gt, axis=1).max(-1).mean()
        assert np.median(np.linalg.norm(d['pose2d'][..., :2] - gt, axis=-1)) < 0.08 * size


def test_random_cameras_need_world_joints():
    plain = syn.make_synthetic_h36m(0, 'tiny', subjects=[1, 9], actions=[2])
    with pytest.raises(DataError, match='joint3d_world'):
        views.RandomCameraDataset(DataReaderH36M(27, 2, 27, 27, source=plain))


@pytest.mark.slow
def test_training_through_random_cameras_resumes_exactly(tmp_path, tiny_config):
    """The quick-start path with geometric sequences and random cameras: the source gets world
    joints, training draws new cameras per epoch, and a stopped run resumes to the same weights."""
    import train
    from lib.model.checkpoint import read_checkpoint
    from lib.model.factory import tensor_differences
    extra = {"synthetic_geometric": 0.3, "random_cameras": True, "no_eval": True, "epochs": 2}
    cfg = tiny_config(tmp_path, extra, data=tmp_path)
    train.main(["--config", cfg, "--checkpoint", str(tmp_path / "straight")])
    train.main(["--config", cfg, "--checkpoint", str(tmp_path / "stopped"), "--set", "epochs=1"])
    train.main(["--config", cfg, "--checkpoint", str(tmp_path / "stopped")])
    a = read_checkpoint(str(tmp_path / "straight" / "latest_epoch.bin")).model_state
    b = read_checkpoint(str(tmp_path / "stopped" / "latest_epoch.bin")).model_state
    assert tensor_differences(a, b) == []
    source = DataReaderH36M(9, 2, 9, 9, str(tmp_path / "src")).raw
    assert 'joint3d_world' in source['train'] and 'Geometric' in set(source['train']['action'])


def test_proxy_motions_crawl_on_all_fours_and_roll_over():
    from lib.data.synthetic.proxies import crawl_motion, roll_motion
    bones = syn_body.random_body(np.random.default_rng(0))
    crawl = crawl_motion(300, np.random.default_rng(1), bones)
    assert realism.posture_masks(crawl)['trunk_horizontal'].all()
    assert np.linalg.norm(crawl[-1, 0, :2] - crawl[0, 0, :2]) > 500            # travels
    on_floor = crawl[:, [2, 5, 13, 16], 2]                                      # knees and wrists
    assert (on_floor.min(1) < 150).all() and (np.median(on_floor, 0) < 150).all()
    assert (crawl[:, 0, 2] > 300).all()
    roll = roll_motion(300, np.random.default_rng(2), bones)
    fwd, _, up = realism.trunk_frame(roll)
    assert (np.abs(up[:, 2]) < 0.3).all()                                       # long axis horizontal
    assert np.ptp(np.unwrap(np.arctan2(fwd[:, 2], fwd[:, :2] @ fwd[0, :2]))) > 2 * np.pi  # a full turn
    assert realism.video_checks(roll)['joint_limit_violation_frac'] == 0


def test_transfer_views_decode_to_the_ground_truth():
    """The other-configuration test's decoding: a model that returns its input's ground truth
    scores 0 mm, the flat guess loses exactly the depth."""
    from types import SimpleNamespace
    from lib.data.skeleton import flip
    from tools.bench.experiments import lift_view, transfer_videos, views_of
    cfg = SimpleNamespace(sample_stride=2, maxlen=32, rootrel=True)   # one window per video
    subject, _, world = transfer_videos(frames=60)[0]
    for cameras in ('h36m', 'random'):
        pixels, image, factor, w, h = views_of(world, subject, cameras, np.random.default_rng(0))[0]
        clean = normalize_2d(image[::2, :, :2], w, h)
        truth = normalize_3d(image[::2], w, h)
        truth = truth - truth[:, :1]                      # what a static model predicts

        def oracle(x):                                    # the ground truth, mirrored when flipped
            mirrored = not np.allclose(x[0, :, :, :2], clean, atol=1e-4)
            out = truth[None].repeat(len(x), 0)
            return flip(torch.from_numpy(out)).numpy() if mirrored else out

        oracle.fixed_len = None
        pred, flat, gt = lift_view(cfg, oracle, image[..., :2], image, factor, w, h)
        np.testing.assert_allclose(pred, gt, atol=0.05)
        np.testing.assert_allclose(flat[..., :2], gt[..., :2], atol=1e-6)
        assert np.abs(flat[..., 2] - gt[..., 2]).mean() > 20
