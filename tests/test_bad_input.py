"""Bad input to every entry point ends as one ``error: ...`` line, exit status 2, and no change.

One table (:data:`CASES`) of hostile but realistic input. Every case must end with exit status 2,
exactly one line on stderr that starts with ``error: ``, no traceback, every file the user had
(the case's folder and the shared tiny data set) byte-identical, no ``*.pose3d-tmp-*`` file left,
and -- for the malicious pickles of every pickled file type (source, clip, checkpoint) -- no
marker file created by the pickle's ``__reduce__``. Cases in :data:`SUBPROCESS` (at least one per
entry point) run as ``python <script>`` to prove the real exit status and stderr; the others run
in-process through the script's ``main(argv)`` (same ``entry_point`` wrapper, no start-up cost).
A bad file a run starts from (``--pretrained``, a distillation's teacher) is refused before
``--new_run`` moves the previous run's files away. Kinds beyond bad files: "output over input" (an output path that is, or links to, a file the command
reads: refused before any work), "OS error" (a file where a run folder is needed, a negative seed,
and a full disk or read-only folder, simulated in-process for every write through lib/io.py: the
files already there must stay byte-identical). A clip file broken where a DataLoader worker reads
it must reach the user as the worker's one line. ``infer_video.py``'s cases need no [video] extra:
its paths are checked first, and a missing extra is simulated. tqdm progress bars on stderr are not
messages.

Coverage, 159 cases (computed from the table; see ``test_table_covers_every_entry_point_and_file_type``):
  per entry point: train.py 48, infer_wild.py 36, convert_h36m_mixste_style.py 19, evaluate.py 14,
                   deployment_pose3d.py 13, vis_attn.py 8, infer_video.py 8, train_distill.py 8,
                   make_synthetic_h36m.py 5
  per file type:   checkpoint 31, config 27, source pickle 23, keypoints 22, OS error 16,
                   output over input 13, clip pickle 7, output path 6, fast clip store 4, converter flags 4,
                   video 3, synthetic flags 2, ONNX 1
"""
import collections
import errno
import glob
import hashlib
import importlib.util
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
import yaml

from lib.data.synthetic import write_synthetic_h36m
from lib.io import OWNER_FILE, TMP_MARK, load_pickle, save_torch
from lib.model.factory import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = "h36m_sh_conf_cam_source_final.pkl"
TINY = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "maxlen": 9, "dim_feat": 16, "dim_rep": 16,
        "depth": 1, "num_heads": 2, "mlp_ratio": 2, "clip_len": 9, "data_stride": 9, "sample_stride": 2,
        "num_workers": 0, "max_iters_per_epoch": 1, "eval_full_coverage": False, "synthetic_data": None}
LABEL1 = [[0, 1, 1, 1, 2, 2, 2, 0, 0, 3, 3, 4, 4, 4, 5, 5, 5]]
SCRIPTS = {"train": "train.py", "evaluate": "evaluate.py", "distill": "train_distill.py", "vis": "vis_attn.py",
           "export": "deployment/deployment_pose3d.py", "wild": "deployment/infer_wild.py",
           "convert": "tools/convert_h36m_mixste_style.py", "synth": "tools/make_synthetic_h36m.py",
           "video": "deployment/infer_video.py"}


# -- the shared tiny data set (made once) -------------------------------------------------------
@dataclass
class World:
    root: str
    source: str         # the tiny synthetic source pickle
    clips: str          # its clip folder (both stores, meta.json)
    ckpt: str           # a valid checkpoint of the TINY model
    run: str            # a finished 1-epoch TINY run folder (resume cases copy it)

    @property
    def source_dict(self) -> dict:
        return load_pickle(self.source)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("bad_input_world")
    source = str(root / "src" / SOURCE)
    write_synthetic_h36m(source, seed=0, size="tiny", subjects=["S1", "S9"], actions=["Walking"], cameras=[1])
    from lib.data.prepare import convert_source_to_clips
    convert_source_to_clips(str(root / "src"), SOURCE, str(root / "clips"), 9, 9, 2)
    ckpt = str(root / "model.bin")
    save_torch(ckpt, {"model_pos": build_model(dict(TINY), verbose=False).state_dict(), "epoch": 1})
    cfg = root / "run.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "dt_root": str(root / "src"), "data_root": str(root),
                                   "subset_list": ["clips"], "no_eval": True, "select_on": "test"}))
    entry("train").main(["--config", str(cfg), "--checkpoint", str(root / "run")])
    return World(str(root), source, str(root / "clips"), ckpt, str(root / "run"))


# -- building bad files -------------------------------------------------------------------------
class Evil:
    """Unpickling this runs ``touch <marker>``: the marker proves code ran from a data file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def marker(d) -> str:
    return os.path.join(d, "PWNED")


def put(path: str, data) -> str:
    """Write ``data`` (bytes, str, or a picklable object) to ``path``; returns the path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    elif not isinstance(data, bytes):
        data = pickle.dumps(data, protocol=4)
    with open(path, "wb") as f:
        f.write(data)
    return path


def half(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    return data[:len(data) // 2]


def config(d, name="cfg.yaml", **changes) -> str:
    """The TINY config on the shared data set, with ``changes``, written into the case folder."""
    w = d.world
    cfg = {**TINY, "dt_root": os.path.dirname(w.source), "data_root": w.root, "subset_list": ["clips"], **changes}
    return put(os.path.join(d, name), yaml.safe_dump(cfg))


def raw_config(d, text: str, name="cfg.yaml") -> str:
    return put(os.path.join(d, name), text)


class CaseDir(str):
    """The case's folder (a str) with the shared data set attached."""
    world: World


# sources: each builder returns the bad source dict/bytes for ``d``
def src_missing_key(d):
    data = d.world.source_dict
    del data["test"]["action"]
    return data


def src_nan(d):
    data = d.world.source_dict
    data["train"]["joint_2d"][5, 3, 0] = np.nan
    return data


def src_unknown_camera(d):
    data = d.world.source_dict
    data["test"]["camera_name"] = np.array(["12345678"] * len(data["test"]["camera_name"]))
    return data


def src_value(split, key, value, index=(3, 2, 0)):
    def build(d):
        data = d.world.source_dict
        array = np.array(data[split][key], dtype=np.float64 if key != "confidence" else np.float32)
        array[index] = value
        data[split][key] = array
        return data
    return build


SOURCES = {
    "malicious": lambda d: {"train": Evil(marker(d)), "test": {}},
    "truncated": lambda d: half(d.world.source),
    "empty": lambda d: b"",
    "not a dict": lambda d: [1, 2, 3],
    "missing key": src_missing_key,
    "NaN values": src_nan,
    "unknown camera": src_unknown_camera,
    "1e30 in test 2D": src_value("test", "joint_2d", 1e30),
    "inf in train 3D": src_value("train", "joint3d_image", np.inf),
    "negative confidence": src_value("train", "confidence", -0.5, (3, 2)),
}


def bad_source(d, kind: str) -> str:
    """The bad source pickle in ``<d>/src``; returns that folder."""
    put(os.path.join(d, "src", SOURCE), SOURCES[kind](d))
    return os.path.join(d, "src")


def convert_bad_source(kind):
    return lambda d: ["--dt_root", bad_source(d, kind), "--out_dir", os.path.join(d, "out"), "-f", "9", "-s", "9"]


def train_bad_source(kind):
    return lambda d: ["--config", config(d, dt_root=bad_source(d, kind), data_root=str(d)),
                      "--checkpoint", os.path.join(d, "run")]


def evaluate_bad_source(kind):
    return lambda d: ["--config", config(d, dt_root=bad_source(d, kind)), "-e", d.world.ckpt]


def vis_bad_source(kind):
    return lambda d: ["--config", config(d, dt_root=bad_source(d, kind)), "-e", d.world.ckpt,
                      "--out_dir", os.path.join(d, "vis")]


# clip folders: a copy of the shared one with one store, then damaged
def clip_copy(d, store: str) -> str:
    out = os.path.join(d, "clips")
    shutil.copytree(d.world.clips, out, ignore=shutil.ignore_patterns("*.npy", "*.json") if store == "pkl"
                    else shutil.ignore_patterns("train", "test"))
    shutil.copy(os.path.join(d.world.clips, "meta.json"), out)
    return out


CLIPS = {
    "malicious": lambda d: Evil(marker(d)),
    "truncated": lambda d: half(os.path.join(d.world.clips, "train", "00000000.pkl")),
    "wrong content": lambda d: {"data_input": "x", "data_label": [1, 2]},
    "not a dict": lambda d: [np.zeros((9, 17, 3), np.float32)],
}


def train_bad_clip(kind):
    def build(d):
        put(os.path.join(clip_copy(d, "pkl"), "train", "00000000.pkl"), CLIPS[kind](d))
        return ["--config", config(d, data_root=str(d), clip_store="pkl"), "--checkpoint", os.path.join(d, "run")]
    return build


def train_clips_bad_in_worker(d):
    """Every training clip but the first (which the folder check reads) truncated: a DataLoader
    worker meets the error; the user must see its one line, not the worker's traceback."""
    folder = clip_copy(d, "pkl")
    for path in sorted(glob.glob(os.path.join(folder, "train", "*.pkl")))[1:]:
        put(path, half(path))
    return ["--config", config(d, data_root=str(d), clip_store="pkl", num_workers=1),
            "--checkpoint", os.path.join(d, "run")]


def pack_bad_clip(kind):
    def build(d):
        put(os.path.join(clip_copy(d, "pkl"), "train", "00000000.pkl"), CLIPS[kind](d))
        return ["--out_dir", os.path.join(d, "clips"), "--pack"]
    return build


def truncate_file(path: str, nbytes: int = 100) -> None:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - nbytes)


STORES = {
    "truncated .npy": lambda out: truncate_file(os.path.join(out, "clips_train.npy")),
    "bad header": lambda out: put(os.path.join(out, "clips_train.json"), "{\"format\": "),
    "not .npy": lambda out: put(os.path.join(out, "clips_test.npy"), b"\x93NUMPY garbage" * 10),
    "header of another store": lambda out: put(os.path.join(out, "clips_train.json"), '{"format": "hdf5"}'),
}


def train_bad_store(kind):
    """Only the (broken) fast store and no source to remake it from: the store's own error."""
    def build(d):
        STORES[kind](clip_copy(d, "npy"))
        cfg = config(d, data_root=str(d), clip_store="npy", dt_root=os.path.join(d, "nosrc"), no_eval=True,
                     select_on="test")
        return ["--config", cfg, "--checkpoint", os.path.join(d, "run")]
    return build


# checkpoints
def other_architecture(d) -> bytes:
    path = os.path.join(d, "other.bin")
    save_torch(path, {"model_pos": build_model({**TINY, "dim_feat": 32}, verbose=False).state_dict()})
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


def malicious_checkpoint(d) -> bytes:
    path = os.path.join(d, "evil.tmp")
    torch.save({"model_pos": {"w": torch.zeros(1)}, "epoch": Evil(marker(d))}, path)
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


def nan_weights(d) -> bytes:
    """A checkpoint of the TINY model whose weights hold NaN (a diverged run saved as-is)."""
    path = os.path.join(d, "nan.tmp")
    state = build_model(dict(TINY), verbose=False).state_dict()
    next(v for v in state.values() if v.is_floating_point() and v.numel() > 4)[:2] = float("nan")
    save_torch(path, {"model_pos": state, "epoch": 1})
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


CHECKPOINTS = {
    "truncated": lambda d: half(d.world.ckpt),
    "empty": lambda d: b"",
    "malicious": malicious_checkpoint,
    "another architecture": other_architecture,
    "not a checkpoint": lambda d: "model_pos: 1\n",
    "NaN weights": nan_weights,
}


def bad_ckpt(d, kind: str) -> str:
    if kind == "directory":
        os.makedirs(os.path.join(d, "ckpt_dir"))
        return os.path.join(d, "ckpt_dir")
    return put(os.path.join(d, "bad.bin"), CHECKPOINTS[kind](d))


def evaluate_ckpt(kind):
    return lambda d: ["--config", config(d), "-e", bad_ckpt(d, kind)]


def train_resume_ckpt(kind):
    return lambda d: ["--config", config(d), "--checkpoint", os.path.join(d, "run"), "-r", bad_ckpt(d, kind)]


def train_pretrained_ckpt(kind):
    return lambda d: ["--config", config(d), "--checkpoint", os.path.join(d, "run"), "-p", bad_ckpt(d, kind)]


def new_run_pretrained(kind):
    """``--new_run`` on a finished run with a bad --pretrained: the refusal comes before the
    previous run's files are moved away."""
    return lambda d: ["--config", config(d), "--checkpoint", run_copy(d), "--new_run", "-p", bad_ckpt(d, kind)]


def new_run_foreign(d):
    """``--new_run`` on a folder that holds a run and files no run writes (a project's root, say)."""
    folder = run_copy(d)
    put(os.path.join(folder, "notes.txt"), "my notes")
    put(os.path.join(folder, "src", "model.py"), "x = 1")
    return ["--config", config(d), "--checkpoint", folder, "--new_run"]


def new_run_teacher(kind):
    def build(d):
        distill = {"teacher_ckpt": bad_ckpt(d, kind), "middle_ids_t": [0], "middle_ids_s": [0], "generation": False}
        return ["--config", config(d), "--checkpoint", run_copy(d), "--new_run",
                "--distill_cfg", put(os.path.join(d, "distill.yaml"), yaml.safe_dump(distill))]
    return build


def vis_ckpt(kind):
    return lambda d: ["--config", config(d), "-e", bad_ckpt(d, kind), "--out_dir", os.path.join(d, "vis")]


def export_ckpt(kind):
    return lambda d: ["--config", config(d), "-e", bad_ckpt(d, kind), "--deployment", os.path.join(d, "m.onnx")]


def keypoints(d, name="kp.npy") -> str:
    """Valid COCO-17 pixel keypoints ``[20, 17, 3]``."""
    rng = np.random.default_rng(0)
    array = np.concatenate([rng.uniform(100, 500, (20, 17, 2)), np.ones((20, 17, 1))], -1).astype(np.float32)
    path = os.path.join(d, name)
    np.save(path, array)
    return path


def wild(d, inp: str, model: str, *extra) -> list:
    return ["--input", inp, "--width", "640", "--height", "480", "--model", model,
            "--out", os.path.join(d, "out.npy"), *extra]


def wild_ckpt(kind):
    return lambda d: wild(d, keypoints(d), bad_ckpt(d, kind), "--config", config(d))


def distill_teacher(kind):
    def build(d):
        distill = {"teacher_ckpt": bad_ckpt(d, kind), "middle_ids_t": [0], "middle_ids_s": [0], "generation": False}
        return ["--config", config(d), "--checkpoint", os.path.join(d, "run"),
                "--distill_cfg", put(os.path.join(d, "distill.yaml"), yaml.safe_dump(distill))]
    return build


# configs
def train_cfg(text_or_changes, *extra):
    def build(d):
        cfg = raw_config(d, text_or_changes) if isinstance(text_or_changes, str) else config(d, **text_or_changes)
        return ["--config", cfg, "--checkpoint", os.path.join(d, "run"), *extra]
    return build


def on_cfg(script_args, text_or_changes, *extra):
    """``script_args(d, cfg)`` -> argv, with a bad config (YAML text or TINY changes)."""
    def build(d):
        cfg = raw_config(d, text_or_changes) if isinstance(text_or_changes, str) else config(d, **text_or_changes)
        return [*script_args(d, cfg), *extra]
    return build


def hyper(labels):
    def build(d):
        path = put(os.path.join(d, "hyper.yaml"), yaml.safe_dump({"joint_label": labels}))
        return ["--config", config(d), "--checkpoint", os.path.join(d, "run"), "--hyper_cfg", path, "--version", "2"]
    return build


def distill_cfg(text):
    return lambda d: ["--config", config(d), "--checkpoint", os.path.join(d, "run"),
                      "--distill_cfg", raw_config(d, text, "distill.yaml")]


def eval_args(d, cfg):
    return ["--config", cfg, "-e", d.world.ckpt]


def vis_args(d, cfg):
    return ["--config", cfg, "-e", d.world.ckpt, "--out_dir", os.path.join(d, "vis")]


def export_args(d, cfg):
    return ["--config", cfg, "-e", d.world.ckpt, "--deployment", os.path.join(d, "m.onnx")]


def wild_args(d, cfg):
    return wild(d, keypoints(d), d.world.ckpt, "--config", cfg)


# keypoint files for infer_wild
def object_npy(d):
    path = os.path.join(d, "kp.npy")
    np.save(path, np.array([Evil(marker(d)), 1], dtype=object), allow_pickle=True)
    return path


def object_npz(d):
    path = os.path.join(d, "kp.npz")
    np.savez(path, keypoints=np.array([Evil(marker(d)), 1], dtype=object))
    return path


def array_file(name, array):
    """An ``.npy`` of ``array`` or an ``.npz`` of the dict ``array``."""
    def build(d):
        path = os.path.join(d, name)
        if isinstance(array, dict):
            np.savez(path, **array)
        else:
            np.save(path, array)
        return path
    return build


def detections(**changes):
    """AlphaPose-style detections of 3 frames with ``changes`` applied to the second one, or
    (with ``top``) a top-level dict around them."""
    def build(d):
        rng = np.random.default_rng(1)
        dets = [{"image_id": f"{t}.jpg", "idx": 1, "score": 0.9,
                 "keypoints": np.concatenate([rng.uniform(100, 500, (17, 2)), np.ones((17, 1))], -1).ravel().tolist()}
                for t in range(3)]
        top = changes.pop("top", None)
        dets[1].update(changes)
        body = dets if top is None else {**top, "keypoints": None}
        text = json.dumps(body)
        if top is not None:
            text = json.dumps({**top, "instance_info": [{"instances": [{"keypoints": np.reshape(x["keypoints"], (17, 3))
                                                                          .tolist()}]} for x in dets]})
        return put(os.path.join(d, "kp.json"), text)
    return build


def keypoint_array(value, where=(4, 3, 0)):
    def build(d):
        path = keypoints(d)
        array = np.load(path)
        array[where] = value
        np.save(path, array)
        return path
    return build


KEYPOINTS = {
    "malformed JSON": lambda d: put(os.path.join(d, "kp.json"), "[{\"keypoints\": [1, 2,"),
    "JSON of another shape": lambda d: put(os.path.join(d, "kp.json"), "42"),
    "pickled object npy": object_npy,
    "pickled object npz": object_npz,
    "wrong joint count npy": array_file("kp.npy", np.ones((20, 5, 3), np.float32) * 100),
    "wrong joint count npz": array_file("kp.npz", {"keypoints": np.ones((20, 9, 3), np.float32) * 100}),
    "npz without keypoints": array_file("kp.npz", {"poses": np.ones((20, 17, 3), np.float32)}),
    "truncated npy": lambda d: put(os.path.join(d, "kp.npy"), half(keypoints(d))),
    "unsupported extension": lambda d: put(os.path.join(d, "kp.txt"), "1 2 3"),
    "AlphaPose text keypoints": detections(keypoints="12.5, 30, 0.9"),
    "AlphaPose text numbers": detections(keypoints=["12.5", "30", "0.9"] * 17),
    "AlphaPose ragged keypoints": detections(keypoints=[[1, 2, 0.9], [3, 4]] + [[5, 6, 0.9]] * 15),
    "width text": detections(top={"width": "abc", "height": 480}),
    "width null": detections(top={"width": None, "height": 480}),
    "width infinite": detections(top={"width": float("inf"), "height": 480}),
    "MMPose instances a number": lambda d: put(os.path.join(d, "kp.json"),
                                               json.dumps({"instance_info": [{"instances": 3}]})),
    "inf coordinate": keypoint_array(np.inf),
    "1e30 coordinate": keypoint_array(1e30),
    "negative confidence": keypoint_array(-0.2, (4, 3, 2)),
}


def wild_keypoints(kind):
    def build(d):
        argv = wild(d, KEYPOINTS[kind](d), os.path.join(d, "absent.onnx"))
        return argv if not kind.startswith("width") else [a for a in argv if a not in ("--width", "640",
                                                                                          "--height", "480")]
    return build


def wild_text_onnx(d):
    return wild(d, keypoints(d), put(os.path.join(d, "model.onnx"), "this is not a model\n"))


# paths the user typed: an output that is a file the command reads
def copy_of(path: str, d, name: str) -> str:
    shutil.copy(path, os.path.join(d, name))
    return os.path.join(d, name)


def hard_link(path: str, d, name: str) -> str:
    os.link(path, os.path.join(d, name))
    return os.path.join(d, name)


def sym_link(path: str, d, name: str) -> str:
    os.symlink(path, os.path.join(d, name))
    return os.path.join(d, name)


def export_over_checkpoint(link):
    def build(d):
        ckpt = copy_of(d.world.ckpt, d, "model.bin")
        out = ckpt if link is None else link(ckpt, d, "model.onnx")
        return ["--config", config(d), "-e", ckpt, "--deployment", out]
    return build


def wild_out_over(what: str, flag: str = "--out"):
    def build(d):
        kp, ckpt = keypoints(d), copy_of(d.world.ckpt, d, "model.bin")
        argv = wild(d, kp, ckpt, "--config", config(d))
        target = {"input": kp, "model": ckpt, "config": argv[-1], "input hard link": hard_link(kp, d, "kp2.npy"),
                  "out": os.path.join(d, "out.npy")}[what]
        return argv + [flag, target]
    return build


def evaluate_over_config(d):
    ckpt = copy_of(d.world.ckpt, d, "m.bin")
    return ["--config", config(d, name="m_eval.json"), "-e", ckpt]


def convert_over_source(d):
    """The source pickle is named like the fast store's array and --out_dir is its folder."""
    src = os.path.join(d, "src")
    os.makedirs(src)
    shutil.copy(d.world.source, os.path.join(src, "clips_train.npy"))
    return ["--dt_root", src, "--dt_file", "clips_train.npy", "--out_dir", src, "-f", "9", "-s", "9", "--store", "npy"]


# infer_video.py: the paths the user typed are checked before the [video] extra is needed
def video_file(d) -> str:
    return put(os.path.join(d, "clip.mp4"), b"\x00\x00\x00\x18ftypmp42 not decoded by these cases")


def video_args(d, *extra) -> list:
    return ["--video", video_file(d), "--model", d.world.ckpt, "--config", config(d), "--out",
            os.path.join(d, "out"), *extra]


# the user's environment: OS errors (files already there stay intact)
def run_copy(d) -> str:
    """A copy of the shared finished run (resume cases)."""
    shutil.copytree(d.world.run, os.path.join(d, "run"))
    return os.path.join(d, "run")


def train_resume_env(d):
    return ["--config", config(d, no_eval=True, select_on="test"), "--checkpoint", run_copy(d),
            "--set", "epochs=2"]


class _FullDisk:
    """A file whose writes stop half-way with ENOSPC (a disk that fills up during the write)."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def fault_open(kind: str):
    """``open`` for lib.io: writes fail as on a full disk or a read-only folder; reads are untouched."""
    import builtins

    def fake(path, mode="r", *args, **kwargs):
        if not any(c in mode for c in "wax+"):
            return builtins.open(path, mode, *args, **kwargs)
        if kind == "read-only":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return _FullDisk(builtins.open(path, mode, *args, **kwargs))
    return fake


def apply_fault(monkeypatch, kind: str, folder: str) -> None:
    """Simulate ``kind`` for writes through lib.io (in-process; portable, no mount, works as root);
    external writers (ONNX export, TensorBoard) see a read-only folder at the rename. ``no video
    extra``: the [video] packages are not installed."""
    if kind == "no video extra":
        import importlib.util
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name in ("imageio_ffmpeg", "ai_edge_litert") else real(name, *a))
        return
    import lib.io
    monkeypatch.setattr(lib.io, "open", fault_open(kind), raising=False)
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(dst).startswith(folder):
            raise OSError(errno.EROFS if kind == "read-only" else errno.ENOSPC, "simulated", dst)
        return real_replace(src, dst, *args, **kwargs)
    monkeypatch.setattr(lib.io.os, "replace", replace)


def out_dir_of(d, name) -> str:
    os.makedirs(os.path.join(d, name))
    return os.path.join(d, name)


# -- the table ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    script: str                       # key of SCRIPTS
    kind: str                         # file type (the coverage summary)
    build: Callable                   # CaseDir -> argv
    expect: str = ""                  # a word the error line must contain
    fault: str = ""                   # simulated OS condition while it runs ("disk full", "read-only")


def cases() -> list[Case]:
    table = []
    for kind in SOURCES:
        table.append(Case(f"convert-source-{kind}", "convert", "source pickle", convert_bad_source(kind), SOURCE))
    for kind in ("malicious", "truncated", "not a dict", "missing key", "NaN values", "unknown camera",
                 "1e30 in test 2D", "inf in train 3D", "negative confidence"):
        table.append(Case(f"train-source-{kind}", "train", "source pickle", train_bad_source(kind), SOURCE))
    for kind in ("malicious", "1e30 in test 2D"):
        table.append(Case(f"evaluate-source-{kind}", "evaluate", "source pickle", evaluate_bad_source(kind), SOURCE))
        table.append(Case(f"vis-source-{kind}", "vis", "source pickle", vis_bad_source(kind), SOURCE))
    for kind in CLIPS:
        table.append(Case(f"train-clip-{kind}", "train", "clip pickle", train_bad_clip(kind), "00000000.pkl"))
    table.append(Case("train-clip-truncated-in-worker", "train", "clip pickle", train_clips_bad_in_worker, ".pkl"))
    for kind in ("malicious", "truncated"):
        table.append(Case(f"convert-pack-clip-{kind}", "convert", "clip pickle", pack_bad_clip(kind), "00000000.pkl"))
    for kind in STORES:
        table.append(Case(f"train-store-{kind}", "train", "fast clip store", train_bad_store(kind), "clips_"))
    for kind in (*CHECKPOINTS, "directory"):
        table.append(Case(f"evaluate-ckpt-{kind}", "evaluate", "checkpoint", evaluate_ckpt(kind)))
    for kind in ("malicious", "truncated", "directory", "another architecture", "NaN weights"):
        table.append(Case(f"train-resume-{kind}", "train", "checkpoint", train_resume_ckpt(kind)))
    for kind in ("malicious", "empty", "NaN weights"):
        table.append(Case(f"train-pretrained-{kind}", "train", "checkpoint", train_pretrained_ckpt(kind)))
    table.append(Case("train-new-run-pretrained-truncated", "train", "checkpoint", new_run_pretrained("truncated")))
    table.append(Case("train-new-run-foreign-folder", "train", "OS error", new_run_foreign, "notes.txt"))
    for kind in ("malicious", "another architecture", "NaN weights"):
        table.append(Case(f"vis-ckpt-{kind}", "vis", "checkpoint", vis_ckpt(kind)))
        table.append(Case(f"wild-ckpt-{kind}", "wild", "checkpoint", wild_ckpt(kind)))
    for kind in ("malicious", "empty", "directory", "another architecture", "NaN weights"):
        table.append(Case(f"export-ckpt-{kind}", "export", "checkpoint", export_ckpt(kind)))
    for kind in ("malicious", "truncated", "NaN weights"):
        table.append(Case(f"distill-teacher-{kind}", "distill", "checkpoint", distill_teacher(kind)))
    table.append(Case("distill-new-run-teacher-malicious", "distill", "checkpoint", new_run_teacher("malicious")))
    table += [
        Case("train-yaml-syntax", "train", "config", train_cfg("epochs: [1,\nbatch_size: 2\n"), "line"),
        Case("train-yaml-not-mapping", "train", "config", train_cfg("- epochs\n- 3\n"), "mapping"),
        Case("train-yaml-binary", "train", "config", train_cfg("\x00\xff\xfe"), "cfg.yaml"),
        Case("train-negative-size", "train", "config", train_cfg({"dim_feat": -16}), "dim_feat"),
        Case("train-zero-batch", "train", "config", train_cfg({"batch_size": 0}), "batch_size"),
        Case("train-fractional-epochs", "train", "config", train_cfg({"epochs": 2.5}), "epochs"),
        Case("train-clip-longer-than-maxlen", "train", "config", train_cfg({"clip_len": 27}), "clip_len"),
        Case("train-set-version-3", "train", "config", train_cfg({}, "--set", "version=3"), "version"),
        Case("train-set-not-a-number", "train", "config", train_cfg({}, "--set", "epochs=abc"), "epochs"),
        Case("train-set-no-equals", "train", "config", train_cfg({}, "--set", "epochs"), "epochs"),
        Case("train-partition-16-labels", "train", "config", hyper([LABEL1[0][:16]]), "joint_label"),
        Case("train-partition-gaps", "train", "config",
             hyper([[0, 1, 1, 1, 2, 2, 2, 0, 0, 4, 4, 5, 5, 5, 6, 6, 6]]), "joint_label"),
        Case("train-config-directory", "train", "config", lambda d: ["--config", str(d)], "folder"),
        Case("train-unknown-flag", "train", "config", train_cfg({}, "--epochz", "3"), "--epochz"),
        Case("evaluate-unknown-key", "evaluate", "config", on_cfg(eval_args, {"epochz": 3}), "epochz"),
        Case("evaluate-missing-config", "evaluate", "config", lambda d: ["--config", os.path.join(d, "no.yaml"),
                                                                          "-e", d.world.ckpt], "no.yaml"),
        Case("vis-zero-heads", "vis", "config", on_cfg(vis_args, {"num_heads": 0}), "num_heads"),
        Case("export-heads-not-dividing", "export", "config", on_cfg(export_args, {"num_heads": 3}), "num_heads"),
        Case("export-flag-version-3", "export", "config", on_cfg(export_args, {}, "--version", "3"), "version"),
        Case("wild-set-unknown-key", "wild", "config", on_cfg(wild_args, {}, "--set", "colour=red"), "colour"),
        Case("wild-negative-image-size", "wild", "config",
             lambda d: wild(d, keypoints(d), d.world.ckpt, "--config", config(d)) + ["--width", "-640"], "width"),
        Case("distill-set-version-3", "distill", "config",
             lambda d: distill_teacher("empty")(d) + ["--set", "version=3"], "version"),
        Case("distill-yaml-syntax", "distill", "config", distill_cfg("teacher_ckpt: [\n"), "distill.yaml"),
        Case("distill-unknown-key", "distill", "config", distill_cfg("teacher_kpt: a.bin\n"), "teacher_kpt"),
        Case("vis-bad-clips-spec", "vis", "config", on_cfg(vis_args, {}, "--clips", "a:b"), "clips"),
        Case("convert-frames-0", "convert", "converter flags", lambda d: ["-f", "0", "--out_dir", os.path.join(d, "o")], "frames"),
    ]
    for kind in KEYPOINTS:
        table.append(Case(f"wild-keypoints-{kind}", "wild", "keypoints", wild_keypoints(kind), "kp."))
    table += [
        Case("wild-width-inf", "wild", "keypoints", on_cfg(wild_args, {}, "--width", "inf"), "--width"),
        Case("wild-fps-0-render", "wild", "keypoints",
             on_cfg(wild_args, {}, "--fps", "0", "--render", "r.gif"), "--fps"),
        Case("wild-fps-nan-bvh", "wild", "keypoints", on_cfg(wild_args, {}, "--fps", "nan", "--bvh", "b.bvh"), "--fps"),
    ]
    table += [
        Case("wild-onnx-text-file", "wild", "ONNX", wild_text_onnx, "model.onnx"),
        Case("wild-out-is-folder", "wild", "output path",
             lambda d: wild(d, keypoints(d), d.world.ckpt, "--config", config(d))[:-2] + ["--out", out_dir_of(d, "o")],
             "folder"),
        Case("export-out-is-folder", "export", "output path",
             lambda d: export_args(d, config(d))[:-1] + [out_dir_of(d, "o.onnx")], "folder"),
        Case("synth-out-is-folder", "synth", "output path", lambda d: ["--out", out_dir_of(d, "o"), "--size", "tiny"],
             "folder"),
        Case("convert-out-is-file", "convert", "output path",
             lambda d: ["--dt_root", os.path.dirname(d.world.source), "--out_dir", put(os.path.join(d, "f"), "x"),
                        "-f", "9", "-s", "9"], "f"),
        Case("vis-out-is-file", "vis", "output path",
             lambda d: vis_args(d, config(d))[:-1] + [put(os.path.join(d, "f"), "x")], "f"),
        Case("convert-stride-0", "convert", "converter flags", lambda d: ["--stride", "0"], "stride"),
        Case("convert-tds-0", "convert", "converter flags", lambda d: ["--tds", "0"], "tds"),
        Case("convert-stride-text", "convert", "converter flags", lambda d: ["-s", "two"], "stride"),
        Case("evaluate-no-evaluate-flag", "evaluate", "config",
             lambda d: ["--config", config(d)], "--evaluate"),
        Case("synth-negative-seed", "synth", "synthetic flags",
             lambda d: ["--out", os.path.join(d, "s.pkl"), "--seed", "-1", "--size", "tiny"], "seed"),
        Case("synth-zero-frames", "synth", "synthetic flags",
             lambda d: ["--out", os.path.join(d, "s.pkl"), "--frames_per_video", "0", "--size", "tiny"], "frames"),
        Case("synth-unknown-size", "synth", "config", lambda d: ["--size", "huge"], "size"),
    ]
    # paths the user typed: no command writes over a file it reads (one line, before any work)
    table += [
        Case("export-onto-checkpoint", "export", "output over input", export_over_checkpoint(None), "destroy"),
        Case("export-onto-checkpoint-hard-link", "export", "output over input", export_over_checkpoint(hard_link),
             "link"),
        Case("export-onto-checkpoint-symlink", "export", "output over input", export_over_checkpoint(sym_link),
             "checkpoint being exported"),
        Case("wild-out-onto-input", "wild", "output over input", wild_out_over("input"), "keypoint file"),
        Case("wild-out-onto-input-hard-link", "wild", "output over input", wild_out_over("input hard link"), "link"),
        Case("wild-out-onto-model", "wild", "output over input", wild_out_over("model"), "model"),
        Case("wild-render-onto-config", "wild", "output over input", wild_out_over("config", "--render"), "config"),
        Case("wild-bvh-onto-out", "wild", "output over input", wild_out_over("out", "--bvh"), "--out"),
        Case("evaluate-results-onto-config", "evaluate", "output over input", evaluate_over_config, "m_eval.json"),
        Case("convert-store-onto-source", "convert", "output over input", convert_over_source, "source pickle"),
    ]
    # video in (deployment/infer_video.py): what applies without the [video] extra
    table += [
        Case("video-missing-file", "video", "video", lambda d: [
            "--video", os.path.join(d, "none.mp4"), "--model", d.world.ckpt, "--config", config(d),
            "--out", os.path.join(d, "out")], "none.mp4"),
        Case("video-is-folder", "video", "video", lambda d: ["--video", out_dir_of(d, "v.mp4"), "--model", d.world.ckpt,
                                                            "--out", os.path.join(d, "out")], "folder"),
        Case("video-out-is-file", "video", "output path",
             lambda d: video_args(d)[:-1] + [put(os.path.join(d, "f"), "x")], "is a file"),
        Case("video-render-onto-video", "video", "output over input",
             lambda d: video_args(d, "--render", os.path.join(d, "clip.mp4")), "the video"),
        Case("video-bvh-onto-model", "video", "output over input",
             lambda d: video_args(d, "--bvh", d.world.ckpt), "the model"),
        Case("video-render-onto-config", "video", "output over input",
             lambda d: video_args(d, "--render", os.path.join(d, "cfg.yaml")), "config"),
        Case("video-out-under-file", "video", "OS error",
             lambda d: video_args(d)[:-1] + [os.path.join(put(os.path.join(d, "f"), "x"), "o")], "a folder"),
        Case("video-missing-extra", "video", "video", video_args, "pip install", fault="no video extra"),
    ]
    # the user's environment: OS errors name the path and the cause; files already there stay intact
    table += [
        Case("train-checkpoint-is-file", "train", "OS error",
             lambda d: ["--config", config(d), "--checkpoint", put(os.path.join(d, "runfile"), "x")], "runfile"),
        Case("train-checkpoint-under-file", "train", "OS error",
             lambda d: ["--config", config(d), "--checkpoint", os.path.join(put(os.path.join(d, "f"), "x"), "run")],
             "a folder"),
        Case("distill-checkpoint-is-file", "distill", "OS error",
             lambda d: distill_teacher("empty")(d)[:3] + [put(os.path.join(d, "runfile"), "x")]
             + distill_teacher("empty")(d)[4:], "runfile"),
        Case("train-seed-negative", "train", "OS error", train_cfg({}, "--seed", "-1"), "--seed"),
        Case("export-seed-text", "export", "OS error", on_cfg(export_args, {}, "--seed", "one"), "--seed"),
        Case("wild-out-under-file", "wild", "OS error",
             lambda d: wild_args(d, config(d))[:-2] + ["--out", os.path.join(put(os.path.join(d, "f"), "x"), "o.npy")],
             "a folder"),
        Case("train-resume-disk-full", "train", "OS error", train_resume_env, "disk full", fault="disk full"),
        Case("train-resume-read-only", "train", "OS error", train_resume_env, "read-only", fault="read-only"),
        Case("train-new-run-read-only", "train", "OS error", train_cfg({}), "read-only", fault="read-only"),
        Case("export-read-only", "export", "OS error", lambda d: export_args(d, config(d)), "m.onnx",
             fault="read-only"),
        Case("evaluate-disk-full", "evaluate", "OS error",
             lambda d: ["--config", config(d), "-e", copy_of(d.world.ckpt, d, "m.bin")], "disk full",
             fault="disk full"),
        Case("wild-disk-full", "wild", "OS error", lambda d: wild_args(d, config(d)), "out.npy", fault="disk full"),
        Case("convert-disk-full", "convert", "OS error",
             lambda d: ["--dt_root", os.path.dirname(d.world.source), "--out_dir", os.path.join(d, "o"),
                        "-f", "9", "-s", "9"], "disk full", fault="disk full"),
        Case("synth-read-only", "synth", "OS error", lambda d: ["--out", os.path.join(d, "s.pkl"), "--size", "tiny"],
             "read-only", fault="read-only"),
    ]
    return table


CASES = cases()
# Run as real processes (one or more per entry point); the rest in-process through main(argv).
SUBPROCESS = {"train-yaml-syntax", "evaluate-ckpt-malicious", "distill-set-version-3", "vis-ckpt-another architecture",
              "export-ckpt-directory", "wild-onnx-text-file", "convert-source-malicious", "synth-negative-seed",
              "train-clip-malicious", "video-missing-file"}


# -- running and checking -----------------------------------------------------------------------
def snapshot(*folders) -> dict:
    """``{path: sha256}`` of every file under ``folders``."""
    files = {}
    for folder in folders:
        for path in glob.glob(os.path.join(glob.escape(folder), "**", "*"), recursive=True):
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    files[path] = hashlib.sha256(f.read()).hexdigest()
    return files


def every_path(folder: str) -> set[str]:
    """Every file and folder under ``folder``, hidden ones included."""
    return set(glob.glob(os.path.join(glob.escape(folder), "**", "*"), recursive=True, include_hidden=True))


def traces(new: set[str]) -> list[str]:
    """What a refused command must not leave: a new empty folder, or a new owner lock file with
    nothing to guard (a run that started and then failed keeps its folder and its lock)."""
    empty = [p for p in new if os.path.isdir(p) and not os.listdir(p)]
    lone_locks = [p for p in new if p.endswith(OWNER_FILE) and (os.path.basename(p) != OWNER_FILE    # beside a folder
                                                                 or os.listdir(os.path.dirname(p)) == [OWNER_FILE])]
    return sorted(empty + lone_locks)


_MODULES = {}
PROGRESS = re.compile(r"\|.*\| *\d+/\d+ \[")     # a tqdm progress bar (stderr), not a message


def entry(script: str):
    """The entry point module of ``SCRIPTS[script]`` (imported once)."""
    if script not in _MODULES:
        path = os.path.join(ROOT, SCRIPTS[script])
        spec = importlib.util.spec_from_file_location(f"_bad_input_{script}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _MODULES[script] = module
    return _MODULES[script]


def run_in_process(script: str, argv: list, capsys) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        entry(script).main(argv)
    return exc.value.code, capsys.readouterr().err


def run_subprocess(script: str, argv: list) -> tuple[int, str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, SCRIPTS[script], *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_ends_in_one_error_line_and_changes_nothing(case, world, tmp_path, capsys, monkeypatch):
    d = CaseDir(tmp_path)
    d.world = world
    argv = case.build(d)
    before = snapshot(str(tmp_path), world.root)
    paths_before = every_path(str(tmp_path))
    if case.fault:
        apply_fault(monkeypatch, case.fault, str(tmp_path))
        status, err = run_in_process(case.script, argv, capsys)
    elif case.name in SUBPROCESS:
        status, err = run_subprocess(case.script, argv)
    else:
        status, err = run_in_process(case.script, argv, capsys)
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.search(line)]
    assert "Traceback" not in err, err
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert case.expect in lines[0], lines[0]
    assert not os.path.exists(marker(d)), "a pickle ran code"
    after = snapshot(str(tmp_path), world.root)
    assert {p: h for p, h in after.items() if p in before} == before, "a file the user had was changed"
    assert not [p for p in after if TMP_MARK in p], "a temporary file was left behind"
    assert traces(every_path(str(tmp_path)) - paths_before) == [], "an empty folder or a lone lock file was left behind"


def test_table_covers_every_entry_point_and_file_type():
    """The module docstring's summary is the table's (and every entry point runs as a process)."""
    by_script = collections.Counter(os.path.basename(SCRIPTS[c.script]) for c in CASES)
    by_kind = collections.Counter(c.kind for c in CASES)
    doc = " ".join(__doc__.split())
    assert f"{len(CASES)} cases" in doc
    for name, count in list(by_script.items()) + list(by_kind.items()):
        assert f"{name} {count}" in doc, (name, count)
    assert {c.script for c in CASES if c.name in SUBPROCESS} == set(SCRIPTS)
    assert SUBPROCESS <= {c.name for c in CASES}
    pickled = {c.kind for c in CASES if "malicious" in c.name}
    assert {"source pickle", "clip pickle", "checkpoint"} <= pickled


def test_malicious_pickle_does_run_code_when_loaded_unsafely(tmp_path):
    """The marker check can fail: a plain ``pickle.loads`` of the payload creates the marker."""
    pickle.loads(pickle.dumps(Evil(marker(tmp_path))))
    assert os.path.exists(marker(tmp_path))
