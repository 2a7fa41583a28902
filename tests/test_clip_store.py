"""Clip stores: per-clip pickles (MotionBERT) and the memory-mapped array store agree, the array
store refuses broken files clearly, ``auto`` picks the right one, and the converter is idempotent."""
import json
import os
import pickle

import numpy as np
import pytest
import torch
from easydict import EasyDict
from torch.utils.data import DataLoader

from lib.data.clip_store import ClipStoreError, array_paths, open_array_clips, pack_pickle_clips
from lib.data.dataset import ArrayClipDataset, MotionDataset3D, make_dataset
from lib.data.prepare import convert_source_to_clips
from test_data import make_source

FRAMES, STRIDE, TDS = 8, 4, 1


@pytest.fixture()
def clips(tmp_path):
    """A source file converted into both stores under ``<tmp>/data/SUB``."""
    with open(tmp_path / "src.pkl", "wb") as f:
        pickle.dump(make_source(lengths=(50, 30, 12)), f)
    out = tmp_path / "data" / "SUB"
    counts = convert_source_to_clips(str(tmp_path), "src.pkl", str(out), FRAMES, STRIDE, TDS)
    return tmp_path, str(out), counts


def cfg_for(tmp_path, store="auto", gt_2d=False):
    return EasyDict(data_root=str(tmp_path / "data"), subset_list=["SUB"], clip_store=store, gt_2d=gt_2d,
                    random_cameras=False)


def convert(tmp_path, out, **kw):
    return convert_source_to_clips(str(tmp_path), "src.pkl", out, FRAMES, STRIDE, TDS, **kw)


def test_stores_give_identical_samples(clips):
    tmp_path, _, counts = clips
    args = (str(tmp_path / "data"), ["SUB", "SUB"], "train")       # two subsets: concatenation
    pkl, npy = MotionDataset3D(*args), ArrayClipDataset(*args)
    assert len(pkl) == len(npy) == 2 * counts["train"]
    for i in range(len(pkl)):
        for a, b in zip(pkl[i], npy[i]):
            assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(npy[-1][1], pkl[len(pkl) - 1][1], rtol=0, atol=0)
    with pytest.raises(IndexError):
        npy[len(npy)]
    assert pkl[0][0].shape[-1] == 3                                  # raw clips: the codec encodes them


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_batches_identical_in_order(clips, workers):
    tmp_path = clips[0]
    kw = dict(batch_size=4, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    loaders = [DataLoader(make_dataset(cfg_for(tmp_path, store), "train"),
                          generator=torch.Generator().manual_seed(3), **kw) for store in ("pkl", "npy")]
    assert isinstance(loaders[1].dataset, ArrayClipDataset)
    for _ in range(2):                                               # persistent workers: 2 epochs
        for (xa, ya), (xb, yb) in zip(*loaders, strict=True):
            torch.testing.assert_close(xa, xb, rtol=0, atol=0)
            torch.testing.assert_close(ya, yb, rtol=0, atol=0)


def test_auto_picks_npy_when_valid_else_pkl(clips):
    tmp_path, out, _ = clips
    assert isinstance(make_dataset(cfg_for(tmp_path), "train"), ArrayClipDataset)
    assert isinstance(make_dataset(cfg_for(tmp_path, "pkl"), "train"), MotionDataset3D)
    for path in array_paths(out, "train"):
        os.remove(path)
    assert isinstance(make_dataset(cfg_for(tmp_path), "train"), MotionDataset3D)   # absent: quietly
    assert isinstance(make_dataset(cfg_for(tmp_path), "test"), ArrayClipDataset)
    truncate(array_paths(out, "test")[0])
    with pytest.warns(UserWarning, match="clips_test.npy"):
        assert isinstance(make_dataset(cfg_for(tmp_path), "test"), MotionDataset3D)
    with pytest.raises(ValueError, match="clip_store"):
        make_dataset(cfg_for(tmp_path, "hdf5"), "test")


def truncate(path, nbytes=100):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - nbytes)


def edit_header(out, split, **changes):
    path = array_paths(out, split)[1]
    with open(path) as f:
        header = json.load(f)
    header.update(changes)
    with open(path, "w") as f:
        json.dump(header, f)


def rewrite_array(out, split, array):
    np.save(array_paths(out, split)[0], array)


@pytest.mark.parametrize("damage, message", [
    (lambda out: truncate(array_paths(out, "train")[0]), "truncated"),
    (lambda out: edit_header(out, "train", num_clips=3, shape=[3, 2, FRAMES, 17, 3]), "header says"),
    (lambda out: edit_header(out, "train", frames=9), "header describes"),
    (lambda out: rewrite_array(out, "train", np.zeros((5, 2, FRAMES, 17, 4), np.float32)), "header says"),
    (lambda out: rewrite_array(out, "train", np.zeros((5, 2, FRAMES + 1, 17, 3), np.float32)), "header says"),
    (lambda out: os.remove(array_paths(out, "train")[1]), "header not found"),
    (lambda out: open(array_paths(out, "train")[0], "wb").close(), "not a valid .npy"),
])
def test_broken_array_store_is_rejected_clearly(clips, damage, message):
    tmp_path, out, _ = clips
    damage(out)
    with pytest.raises(ClipStoreError, match=message) as err:
        make_dataset(cfg_for(tmp_path, "npy"), "train")
    text = str(err.value)
    assert "clips_train" in text and "convert_h36m_mixste_style.py" in text and "--store npy" in text


def test_converter_is_idempotent_with_both_stores(clips, capsys):
    tmp_path, out, counts = clips
    stamp = {p: os.path.getmtime(p) for p in array_paths(out, "train") + (os.path.join(out, "train", "00000000.pkl"),)}
    capsys.readouterr()
    assert convert(tmp_path, out) == counts
    assert "up to date" in capsys.readouterr().out
    assert all(os.path.getmtime(p) == t for p, t in stamp.items())
    assert convert(tmp_path, out, stores="pkl") == counts                  # subset of what is there
    assert "up to date" in capsys.readouterr().out
    os.remove(array_paths(out, "test")[0])                                 # one store broken:
    convert(tmp_path, out)                                                 # only it is rewritten
    assert os.path.getmtime(os.path.join(out, "train", "00000000.pkl")) == stamp[os.path.join(out, "train", "00000000.pkl")]
    assert len(open_array_clips(out, "test")) == counts["test"]


def test_converter_rewrites_on_changed_settings(clips):
    tmp_path, out, counts = clips
    new = convert_source_to_clips(str(tmp_path), "src.pkl", out, FRAMES, 2 * STRIDE, TDS, stores="npy")
    assert new["train"] < counts["train"]
    assert not os.path.exists(os.path.join(out, "train"))                  # stale pickles removed
    assert len(open_array_clips(out, "train")) == new["train"]
    with open(os.path.join(out, "meta.json")) as f:
        assert json.load(f)["stores"] == ["npy"]
    assert isinstance(make_dataset(cfg_for(tmp_path), "train"), ArrayClipDataset)


def test_pickle_store_stays_motionbert_readable(clips):
    _, out, counts = clips
    names = sorted(os.listdir(os.path.join(out, "train")))
    assert names == [f"{i:08d}.pkl" for i in range(counts["train"])]      # nothing else in the folder
    with open(os.path.join(out, "train", names[0]), "rb") as f:
        sample = pickle.load(f)
    assert type(sample) is dict and set(sample) == {"data_input", "data_label"}
    for key in sample:
        assert sample[key].dtype == np.float32 and sample[key].shape == (FRAMES, 17, 3)


def test_pack_existing_pickles(clips):
    tmp_path, out, counts = clips
    reference = open_array_clips(out, "test").copy()
    for split in ("train", "test"):
        for path in array_paths(out, split):
            os.remove(path)
    os.remove(os.path.join(out, "meta.json"))                              # like a MotionBERT folder
    assert pack_pickle_clips(out) == counts
    np.testing.assert_array_equal(open_array_clips(out, "test"), reference)
    with pytest.raises(ClipStoreError, match="--pack"):
        truncate(array_paths(out, "test")[0])
        open_array_clips(out, "test")


def test_ensure_clips_makes_both_stores_and_packs_for_npy(clips):
    from lib.data.prepare import ensure_clips
    tmp_path, out, counts = clips
    cfg = cfg_for(tmp_path)
    cfg.update(subset_list=["NEW"], dt_root=str(tmp_path), dt_file="src.pkl", clip_len=FRAMES,
               data_stride=STRIDE, sample_stride=TDS)
    ensure_clips(cfg)
    new = os.path.join(cfg.data_root, "NEW")
    assert len(os.listdir(os.path.join(new, "train"))) == len(open_array_clips(new, "train")) == counts["train"]
    for split in ("train", "test"):
        for path in array_paths(new, split):
            os.remove(path)
    ensure_clips(cfg)                                  # auto: the pickles are enough
    assert not os.path.exists(array_paths(new, "train")[0])
    cfg.clip_store = "npy"
    ensure_clips(cfg)                                  # npy: packed from the pickles
    assert isinstance(make_dataset(cfg, "train"), ArrayClipDataset)


def test_rebuild_command_from_the_error_repairs_only_the_fast_store(clips):
    tmp_path, out, counts = clips
    pickle_file = os.path.join(out, "train", "00000000.pkl")
    stamp = os.path.getmtime(pickle_file)
    truncate(array_paths(out, "train")[0])
    with pytest.raises(ClipStoreError) as err:
        open_array_clips(out, "train")
    assert "--force" not in str(err.value)
    convert(tmp_path, out, stores="npy")                 # what the message says to run
    assert len(open_array_clips(out, "train")) == counts["train"]
    assert os.path.getmtime(pickle_file) == stamp        # pickles untouched
    convert(tmp_path, out, stores="npy", force=True)     # force: rewrites npy, keeps pkl
    assert len(os.listdir(os.path.join(out, "train"))) == counts["train"]


def test_checksum_catches_changed_bytes(clips):
    from lib.data.clip_store import verify_array_checksum
    _, out, _ = clips
    verify_array_checksum(out, "test")
    with open(array_paths(out, "test")[0], "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\x00\x00\x80\x7f")                      # same size and shape, other data
    open_array_clips(out, "test")                         # the cheap checks cannot see it
    with pytest.raises(ClipStoreError, match="(?s)sha256.*--store npy --force"):
        verify_array_checksum(out, "test")


def slicing_cfg(tmp_path, **changes):
    cfg = cfg_for(tmp_path)
    cfg.update(dt_root=str(tmp_path), dt_file="src.pkl", clip_len=FRAMES, data_stride=STRIDE, sample_stride=TDS)
    cfg.update(changes)
    return cfg


@pytest.mark.parametrize("changes, named", [
    ({"clip_len": 2 * FRAMES}, [f"clip_len {FRAMES}", f"clip_len {2 * FRAMES}", f"--set clip_len={FRAMES}"]),
    ({"data_stride": 1, "sample_stride": 2}, [f"data_stride {STRIDE}", "sample_stride 2",
                                              f"--set data_stride={STRIDE} --set sample_stride={TDS}"]),
])
def test_clip_folder_sliced_otherwise_is_refused_with_the_reslice_command(clips, changes, named):
    from lib.data.prepare import ensure_clips
    from lib.errors import DataError
    tmp_path, out, counts = clips
    cfg = slicing_cfg(tmp_path, **changes)
    with pytest.raises(DataError) as err:
        ensure_clips(cfg)
    text = str(err.value)
    assert all(part in text for part in named), text
    assert "\n" not in text and "convert_h36m_mixste_style.py" in text
    command = text.split("re-slice it with: python tools/convert_h36m_mixste_style.py ")[1].split("  (or")[0]
    args = dict(zip(command.split()[::2], command.split()[1::2]))
    convert_source_to_clips(args["--dt_root"], args["--dt_file"], args["--out_dir"], int(args["-f"]),
                            int(args["-s"]), int(args["--tds"]))          # what the message says to run
    ensure_clips(cfg)                                                      # now accepted
    ensure_clips(slicing_cfg(tmp_path, **changes, clip_store="npy"))


def test_clip_folder_without_meta_is_used_with_one_note(clips, capsys):
    from lib.data.prepare import ensure_clips
    from lib.errors import DataError
    tmp_path, out, _ = clips
    os.remove(os.path.join(out, "meta.json"))                              # like a MotionBERT folder
    capsys.readouterr()
    ensure_clips(slicing_cfg(tmp_path, data_stride=99))                    # strides cannot be checked
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "no meta.json" in printed[0] and "data_stride 99" in printed[0]
    for split in ("train", "test"):                                        # pickles only: length checked
        for path in array_paths(out, split):
            os.remove(path)
    with pytest.raises(DataError, match=f"clips of {FRAMES} frames.*--set clip_len={FRAMES}"):
        ensure_clips(slicing_cfg(tmp_path, clip_len=FRAMES + 1))
    assert not os.path.exists(os.path.join(out, "meta.json"))
