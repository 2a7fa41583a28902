"""The run folder's rules, thrown at every entry point that owns a folder.

* Two runs at once: while another process holds a folder (a real second process), ``train.py``,
  ``train_distill.py``, the clip converter, and ``train.py`` that must slice its clips refuse with
  one ``error:`` line naming the folder and the holder's PID, and change nothing; once the holder is
  SIGKILLed, the same command runs (the OS released the lock: no stale lock).
* A resume that should not be one: every key that makes the scores incomparable (``kept`` in
  lib/config/schema.py) is refused with one line naming the checkpoint and each key with both
  values, and nothing in the run folder changes (``config.yaml`` included); an allowed change
  (epochs) resumes with a note; ``--new_run`` moves the previous run into ``previous/1``.
* Messages: Ctrl-C (in-process and a real SIGINT to ``python train.py``: exit 130, one line with the
  exact resume command, which works), "loss is nan"
  naming the last good checkpoint that exists (or saying there is none), a DataLoader worker's
  error as its own one line.
* Clip folders: a slicing SIGKILLed half way leaves the folder under its real name unchanged and is
  redone; only a folder without ``meta.json`` is foreign; a source replaced after slicing is refused
  with the re-slice command (which then works), a source only touched is not.
"""
import glob
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

import lib.io as lib_io
import train
from lib.config.schema import KEYS, config_differences, load_config
from lib.data.prepare import convert_source_to_clips
from lib.data.synthetic import write_synthetic_h36m
from lib.engine.run_folder import foreign_entries
from lib.errors import DataError, one_line
from lib.io import owner_lock_path
from test_fault_injection import event_scalars

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = "h36m_sh_conf_cam_source_final.pkl"
TINY = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "maxlen": 9, "dim_feat": 16, "dim_rep": 16,
        "depth": 1, "num_heads": 2, "mlp_ratio": 2, "clip_len": 9, "data_stride": 9, "sample_stride": 2,
        "num_workers": 0, "max_iters_per_epoch": 1, "eval_full_coverage": False, "synthetic_data": None}
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny source, its clips, the config, and a finished 1-epoch run."""
    root = tmp_path_factory.mktemp("run_folder")
    write_synthetic_h36m(str(root / "src" / SOURCE), seed=0, size="tiny", subjects=["S1", "S9"],
                         actions=["Walking"], cameras=[1, 2])
    convert_source_to_clips(str(root / "src"), SOURCE, str(root / "clips"), 9, 9, 2)
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "dt_root": str(root / "src"), "data_root": str(root),
                                   "subset_list": ["clips"]}))
    train.main(["--config", str(cfg), "--checkpoint", str(root / "run")])
    return root, cfg


def files(folder) -> dict:
    out = {}
    for path in glob.glob(os.path.join(glob.escape(str(folder)), "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def main_of(script: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"_rf_{script.replace('/', '_')}", os.path.join(ROOT, script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def run_main(script: str, argv: list, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main_of(script)(argv)
        status = 0
    except SystemExit as exc:
        status = exc.code
    out = capsys.readouterr()
    return status, out.out, out.err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and "it/s]" not in line and "%|" not in line]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# -- two runs at once -------------------------------------------------------------------------
HOLDER = r"""
import sys, time
from lib.io import own_folder
with own_folder(sys.argv[1], inside=sys.argv[2] == "inside"):
    print("held", flush=True)
    time.sleep(120)
"""


def hold(folder, inside: bool) -> subprocess.Popen:
    """A second process that owns ``folder`` until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), "inside" if inside else "beside"],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def distill_files(d, root) -> str:
    path = d / "distill.yaml"
    path.write_text(yaml.safe_dump({"teacher_ckpt": str(root / "run" / "latest_epoch.bin")}))
    return str(path)


# (name, script, folder the holder owns, lock inside it?, argv builder)
TWO_RUNS = [
    ("train", "train.py", "run", True, lambda d, r, c: ["--config", str(c), "--checkpoint", str(d / "run")]),
    ("distill", "train_distill.py", "run", True,
     lambda d, r, c: ["--config", str(c), "--checkpoint", str(d / "run"), "--distill_cfg", distill_files(d, r)]),
    ("convert", "tools/convert_h36m_mixste_style.py", "clips", False,
     lambda d, r, c: ["--dt_root", str(r / "src"), "--out_dir", str(d / "clips"), "-f", "9", "-s", "9"]),
    ("train-slicing", "train.py", "clips", False,
     lambda d, r, c: ["--config", str(c), "--checkpoint", str(d / "run"), "--set", f"data_root={d}"]),
]


@pytest.mark.parametrize("name, script, folder, inside, argv", TWO_RUNS, ids=[t[0] for t in TWO_RUNS])
def test_second_process_on_a_folder_refuses_with_the_owners_pid(world, tmp_path, capsys, name, script, folder,
                                                                inside, argv):
    root, cfg = world
    args = argv(tmp_path, root, cfg)
    holder = hold(tmp_path / folder, inside)
    try:
        before = files(tmp_path)
        status, _, err = run_main(script, args, capsys)
        line = one_error_line(err)
        assert status == 2
        assert str(tmp_path / folder) in line and f"PID {holder.pid}" in line, line
        assert files(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()
    if name in ("convert", "train-slicing"):      # a killed owner leaves no stale lock
        status, out, err = run_main(script, args, capsys)
        assert status == 0, err
        assert os.path.isfile(tmp_path / "clips" / "meta.json")


def test_lock_of_a_killed_run_is_not_stale(world, tmp_path, capsys):
    root, cfg = world
    holder = hold(tmp_path / "run", True)
    holder.kill()
    holder.wait()
    assert os.path.isfile(owner_lock_path(str(tmp_path / "run")))      # the file stays; the lock does not
    status, _, err = run_main("train.py", ["--config", str(cfg), "--checkpoint", str(tmp_path / "run")], capsys)
    assert status == 0, err
    assert os.path.isfile(tmp_path / "run" / "best_epoch.bin")


def test_owner_deletes_a_lock_file_with_nothing_left_to_guard(tmp_path):
    """Beside a clip folder the lock file goes when its owner ends; inside a run folder it stays
    while the folder holds a run, and goes with the folder's last file (a refused run leaves no trace)."""
    with lib_io.own_folder(str(tmp_path / "clips"), "clip folder", inside=False):
        assert os.path.isfile(owner_lock_path(str(tmp_path / "clips"), inside=False))
    assert not os.path.exists(owner_lock_path(str(tmp_path / "clips"), inside=False))
    with lib_io.own_folder(str(tmp_path / "run")):
        (tmp_path / "run" / "config.yaml").write_text("epochs: 1\n")
    assert os.path.isfile(owner_lock_path(str(tmp_path / "run")))
    with lib_io.own_folder(str(tmp_path / "empty")):
        pass
    assert os.listdir(tmp_path / "empty") == []


def test_lock_taken_on_a_file_its_owner_deleted_is_taken_again(tmp_path, monkeypatch):
    """The race that deleting a lock file opens: this process opens the lock file, its owner
    deletes it and ends, this process locks the deleted file. The lock must then be taken on the
    file the path names now (else a third process could own the folder at the same time)."""
    lock = owner_lock_path(str(tmp_path / "clips"), inside=False)
    opened, real_open = [], os.open

    def open_then_owner_deletes(path, *args):
        fd = real_open(path, *args)
        if not opened:
            os.remove(path)         # the previous owner ends between our open and our flock
        opened.append(fd)
        return fd
    monkeypatch.setattr(lib_io.os, "open", open_then_owner_deletes)
    fd = lib_io._lock(lock, str(tmp_path / "clips"), "clip folder")
    monkeypatch.undo()
    assert len(opened) == 2 and fd == opened[1]
    assert os.path.samestat(os.fstat(fd), os.stat(lock))
    os.close(fd)


# -- a resume that should not be one ----------------------------------------------------------
def other_source(d, root):
    shutil.copytree(root / "src", d / "src2")
    return ["--set", f"dt_root={d / 'src2'}"]


# (name, extra argv builder, keys the message must name)
REFUSED = [
    ("clip_len", lambda d, r: ["--set", "clip_len=5", "--set", "subset_list=[clips5]"], ["clip_len", "subset_list"]),
    ("data_stride", lambda d, r: ["--set", "data_stride=3"], ["data_stride"]),
    ("sample_stride", lambda d, r: ["--set", "sample_stride=1"], ["sample_stride"]),
    ("source", other_source, ["dt_root"]),
    ("dt_file", lambda d, r: ["--set", "dt_file=other.pkl"], ["dt_file"]),
    ("selection", lambda d, r: ["--set", "select_on=test"], ["select_on"]),
    ("val_fraction", lambda d, r: ["--set", "val_fraction=0.2"], ["val_fraction"]),
    ("val_subjects", lambda d, r: ["--set", "val_subjects=[S9]"], ["val_subjects"]),
    ("rootrel", lambda d, r: ["--set", "rootrel=false"], ["rootrel"]),
    ("architecture", lambda d, r: ["--set", "dim_feat=32", "--set", "dim_rep=32"], ["dim_feat", "dim_rep"]),
    ("gt_2d", lambda d, r: ["--gt_2d"], ["gt_2d"]),
    ("random_cameras", lambda d, r: ["--set", "random_cameras=true"], ["random_cameras"]),
    ("version", lambda d, r: ["--version", "2", "--hyper_cfg",
                              os.path.join(ROOT, "hyper_config/method2/manual_joint_label1.yaml")],
     ["version", "joint_label"]),
]


@pytest.mark.parametrize("name, extra, keys", REFUSED, ids=[t[0] for t in REFUSED])
def test_incomparable_resume_is_refused_and_changes_nothing(world, tmp_path, capsys, name, extra, keys):
    root, cfg = world
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    before = files(run)
    status, _, err = run_main("train.py", ["--config", str(cfg), "--checkpoint", str(run), *extra(tmp_path, root)],
                              capsys)
    line = one_error_line(err)
    assert status == 2
    assert str(run / "latest_epoch.bin") in line and "--new_run" in line, line
    for key in keys:
        assert f"{key} " in line and "(saved)" in line and "(now)" in line, (key, line)
    assert files(run) == before, "a refused resume changed the run folder"
    assert not os.path.exists(tmp_path / "clips5"), "the data was prepared before the refusal"


def test_resume_from_another_file_names_it(world, tmp_path, capsys):
    root, cfg = world
    other = str(root / "run" / "latest_epoch.bin")
    status, _, err = run_main("train.py", ["--config", str(cfg), "--checkpoint", str(tmp_path / "run"), "-r", other,
                                           "--set", "data_stride=3"], capsys)
    line = one_error_line(err)
    assert status == 2 and other in line and "data_stride 9 (saved) vs 3 (now)" in line, line
    assert not os.path.exists(tmp_path / "run" / "config.yaml")


def test_allowed_change_resumes_with_a_note(world, tmp_path, capsys):
    root, cfg = world
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    status, out, err = run_main("train.py", ["--config", str(cfg), "--checkpoint", str(run), "--set", "epochs=2",
                                             "--set", "learning_rate=0.0005", "--set", "lambda_scale=0"], capsys)
    assert status == 0, err
    assert "note: resuming" in out and "epochs 1 -> 2" in out and "lambda_scale 0.5 -> 0" in out, out
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 2
    assert torch.load(run / "latest_epoch.bin", weights_only=True)["run"]["epoch"] == 2


def test_everything_a_run_writes_is_a_run_entry(world):
    """--new_run refuses folders holding what no run writes (run_folder.RUN_ENTRIES); a finished
    run's own files must never count as such."""
    root, _ = world
    assert os.listdir(root / "run") and foreign_entries(str(root / "run")) == []
    assert foreign_entries(str(root)) != []


def test_new_run_moves_the_previous_run_aside_and_starts_fresh(world, tmp_path, capsys):
    root, cfg = world
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    before = files(run)
    status, out, err = run_main("train.py", ["--config", str(cfg), "--checkpoint", str(run), "--new_run",
                                             "--set", "data_stride=3", "--set", f"data_root={tmp_path}"], capsys)
    assert status == 0, err
    assert files(run / "previous" / "1") == before, "the previous run was not kept intact"
    assert yaml.safe_load((run / "config.yaml").read_text())["data_stride"] == 3
    assert torch.load(run / "latest_epoch.bin", weights_only=True)["run"]["epoch"] == 1
    assert "Resumed" not in out
    status, _, err = run_main("train.py", ["--config", str(cfg), "--checkpoint", str(run), "--new_run", "-r",
                                           str(run / "latest_epoch.bin")], capsys)
    assert status == 2 and "--new_run" in one_error_line(err)


def test_every_kept_key_is_compared_and_free_keys_are_not():
    """The comparability list is the schema's ``kept`` flags: each kept key differing is reported."""
    base = load_config(os.path.join(ROOT, "configs/pose3d/quickstart.yaml"))
    for key in KEYS:
        other = {**base, "distill": dict(base["distill"])}
        target = other["distill"] if key.section == "distill" else other
        target[key.name] = ["changed"]
        names = [name for k, name, _, _ in config_differences(base, other)]
        assert names == [("distill." if key.section == "distill" else "") + key.name]
        assert [k.kept for k, *_ in config_differences(base, other)] == [key.kept]
    assert {k.name for k in KEYS if k.kept} >= {"clip_len", "data_stride", "sample_stride", "dt_root", "dt_file",
                                                "data_root", "subset_list", "select_on", "val_fraction",
                                                "val_subjects", "rootrel", "dim_feat", "depth", "synthetic_data"}
    assert not {k.name for k in KEYS if k.kept} & {"epochs", "learning_rate", "batch_size", "lambda_3d_pos"}


# -- messages ---------------------------------------------------------------------------------
@pytest.mark.parametrize("at_epoch", [0, 1], ids=["before-any-checkpoint", "after-epoch-1"])
def test_ctrl_c_ends_with_the_command_that_resumes(world, tmp_path, capsys, monkeypatch, at_epoch):
    import lib.engine.trainer as T
    root, cfg = world
    run = tmp_path / "run"
    argv = ["--config", str(cfg), "--checkpoint", str(run), "--set", "epochs=2", "--new_run"]
    real = T.Trainer.train_epoch

    def train_epoch(self, epoch):
        if epoch == at_epoch:
            raise KeyboardInterrupt
        return real(self, epoch)
    monkeypatch.setattr(T.Trainer, "train_epoch", train_epoch)
    status, _, err = run_main("train.py", argv, capsys)
    line = one_error_line(err)
    assert status == 130
    command = line.split("with: ")[1]
    assert command.startswith("python train.py ") and "--new_run" not in command, line
    if at_epoch == 0:
        assert "nothing to resume" in line
        return
    assert f"{run / 'latest_epoch.bin'} holds 1 finished epochs" in line
    monkeypatch.setattr(T.Trainer, "train_epoch", real)
    status, out, err = run_main("train.py", shlex.split(command)[2:], capsys)
    assert status == 0 and "Resumed from" in out and "next epoch 1" in out, err


@pytest.mark.parametrize("at_epoch", [0, 1], ids=["first-epoch", "second-epoch"])
def test_loss_is_nan_names_a_checkpoint_that_exists(world, tmp_path, capsys, monkeypatch, at_epoch):
    import lib.engine.trainer as T
    root, cfg = world
    run = tmp_path / "run"
    real = T.Trainer.compute_loss

    def compute_loss(self, x, target):
        loss, terms = real(self, x, target)
        return (loss * float("nan"), terms) if self.run.epoch == at_epoch else (loss, terms)
    monkeypatch.setattr(T.Trainer, "compute_loss", compute_loss)
    status, _, err = run_main("train.py", ["--config", str(cfg), "--checkpoint", str(run), "--set", "epochs=2"],
                              capsys)
    line = one_error_line(err)
    assert status == 2 and "loss is nan" in line
    if at_epoch == 0:
        assert "no checkpoint yet" in line and not os.path.exists(run / "latest_epoch.bin")
    else:
        named = str(run / "latest_epoch.bin")
        assert f"The last good checkpoint is {named} (1 finished epochs)" in line and os.path.isfile(named)


class Broken(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        raise DataError(f"clip {i}: refused (the original one-line message)")


def test_dataloader_worker_error_reaches_the_user_as_its_own_line():
    loader = torch.utils.data.DataLoader(Broken(), batch_size=2, num_workers=1)
    with pytest.raises(DataError) as exc:
        next(iter(loader))
    assert "Traceback" in str(exc.value)                  # what PyTorch re-raises: the worker's traceback
    assert one_line(exc.value) == "clip 0: refused (the original one-line message)"


# -- clip folders: atomic slicing, Pose3D's marker, the source replaced -------------------------
SLICE_CHILD = r"""
import os, signal, sys
import lib.data.prepare as P
real = P.write_pickle_clips
def write(split_dir, inputs, labels, desc=""):
    if os.path.basename(split_dir) == "test":          # the test clips: half of them, then SIGKILL
        real(split_dir, inputs[: len(inputs) // 2], labels[: len(labels) // 2], desc)
        os.kill(os.getpid(), signal.SIGKILL)
    real(split_dir, inputs, labels, desc)
P.write_pickle_clips = write
import importlib.util
spec = importlib.util.spec_from_file_location("entry", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.main(sys.argv[2:])
"""

# (name, script, argv builder (tmp, root, cfg), folder there before the kill)
KILLED_SLICING = [
    ("convert-first", "tools/convert_h36m_mixste_style.py",
     lambda d, r, c: ["--dt_root", str(r / "src"), "--out_dir", str(d / "clips"), "-f", "9", "-s", "9"], False),
    ("convert-reslice", "tools/convert_h36m_mixste_style.py",
     lambda d, r, c: ["--dt_root", str(r / "src"), "--out_dir", str(d / "clips"), "-f", "9", "-s", "9"], True),
    ("train-first", "train.py",
     lambda d, r, c: ["--config", str(c), "--checkpoint", str(d / "run"), "--set", f"data_root={d}"], False),
]


@pytest.mark.parametrize("name, script, argv, existed", KILLED_SLICING, ids=[t[0] for t in KILLED_SLICING])
def test_slicing_killed_half_way_leaves_no_half_folder_and_is_redone(world, tmp_path, capsys, name, script, argv,
                                                                     existed):
    root, cfg = world
    args = argv(tmp_path, root, cfg)
    if existed:                                  # a Pose3D folder of other settings, to be replaced
        convert_source_to_clips(str(root / "src"), SOURCE, str(tmp_path / "clips"), 9, 3, 2)
    before = files(tmp_path / "clips")
    child = subprocess.run([sys.executable, "-c", SLICE_CHILD, os.path.join(ROOT, script), *args], cwd=ROOT,
                           env=ENV, capture_output=True, text=True, timeout=120)
    assert child.returncode == -9, child.stderr[-2000:]
    assert glob.glob(str(tmp_path / "clips.pose3d-tmp-*")), "the kill came before the slicing"
    assert files(tmp_path / "clips") == before, "the folder under the real name changed before it was complete"
    status, out, err = run_main(script, args, capsys)
    assert status == 0, err
    meta = yaml.safe_load((tmp_path / "clips" / "meta.json").read_text())
    for split in ("train", "test"):
        assert len(os.listdir(tmp_path / "clips" / split)) == meta["num_clips"][split] > 0
    assert meta["spec"]["train_stride"] == 9
    assert not glob.glob(str(tmp_path / "clips.pose3d-*")), "a half-made folder was left"
    assert "made by MotionBERT" not in out


def test_folder_without_the_marker_is_used_as_foreign_and_with_it_as_pose3d(world, tmp_path, capsys):
    root, cfg = world
    shutil.copytree(root / "clips", tmp_path / "clips")
    argv = ["--config", str(cfg), "--checkpoint", str(tmp_path / "run"), "--set", f"data_root={tmp_path}"]
    status, out, err = run_main("train.py", argv, capsys)
    assert status == 0 and "made by MotionBERT" not in out, err
    os.remove(tmp_path / "clips" / "meta.json")
    status, out, err = run_main("train.py", argv + ["--new_run"], capsys)
    assert status == 0 and "made by MotionBERT" in out, err


def replace_source(path: str, how: str) -> None:
    if how == "regenerated":                      # same size (same shapes), other content, new mtime
        write_synthetic_h36m(path, seed=1, size="tiny", subjects=["S1", "S9"], actions=["Walking"], cameras=[1, 2])
    elif how == "same mtime other size":
        st = os.stat(path)
        with open(path, "ab") as f:
            f.write(b"\0")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif how == "touched":                        # same content, new mtime: still the same source
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))


@pytest.mark.parametrize("how, refused", [("regenerated", True), ("same mtime other size", True),
                                          ("touched", False)])
def test_source_replaced_after_slicing_is_refused_with_the_reslice_command(world, tmp_path, capsys, how, refused):
    root, cfg = world
    shutil.copytree(root / "src", tmp_path / "src")
    convert_source_to_clips(str(tmp_path / "src"), SOURCE, str(tmp_path / "clips"), 9, 9, 2)
    replace_source(str(tmp_path / "src" / SOURCE), how)
    argv = ["--config", str(cfg), "--checkpoint", str(tmp_path / "run"), "--set", f"data_root={tmp_path}",
            "--set", f"dt_root={tmp_path / 'src'}"]
    before = files(tmp_path / "clips")
    status, out, err = run_main("train.py", argv, capsys)
    if not refused:
        assert status == 0, err
        return
    line = one_error_line(err)
    assert status == 2 and "replaced or regenerated" in line and "meta.json" in line, line
    assert files(tmp_path / "clips") == before
    command = shlex.split(line.split("re-slice it with: ")[1])
    assert command[:2] == ["python", "tools/convert_h36m_mixste_style.py"]
    status, _, err = run_main(command[1], command[2:], capsys)
    assert status == 0, err
    status, out, err = run_main("train.py", argv, capsys)
    assert status == 0, err


def test_source_check_of_an_older_meta_without_a_hash(world, tmp_path, capsys):
    """meta.json of an older Pose3D records size and mtime (seconds) only: a newer mtime is refused."""
    root, cfg = world
    shutil.copytree(root / "src", tmp_path / "src")
    convert_source_to_clips(str(tmp_path / "src"), SOURCE, str(tmp_path / "clips"), 9, 9, 2)
    meta_path = tmp_path / "clips" / "meta.json"
    meta = yaml.safe_load(meta_path.read_text())
    del meta["source_identity"]
    meta_path.write_text(yaml.safe_dump(meta))
    from lib.data.prepare import source_changed
    source = str(tmp_path / "src" / SOURCE)
    assert source_changed(meta, source) is None
    os.utime(source, (time.time() + 5, time.time() + 5))
    assert "modified" in source_changed(meta, source)


@pytest.mark.parametrize("name, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_real_signal_to_train_py_ends_in_one_line_with_the_resume_command(world, tmp_path, name, status):
    """A real Ctrl-C (SIGINT) or ``kill`` (SIGTERM, a scheduler's stop) after the first checkpoint:
    no traceback, exit 128 + the signal's number, the resume command."""
    import signal
    root, cfg = world
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "train.py", "--config", str(cfg), "--checkpoint", str(run),
                             "--set", "epochs=100000", "--set", "no_eval=true"], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not os.path.isfile(run / "latest_epoch.bin") and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(getattr(signal, name))
    err = proc.communicate(timeout=60)[1]
    line = one_error_line(err)
    assert proc.returncode == status, err
    assert f"interrupted ({'Ctrl-C' if name == 'SIGINT' else 'SIGTERM'})" in line, line
    assert "Resume with: python train.py --config" in line and str(run / "latest_epoch.bin") in line, line


# -- signals that must wait, the TensorBoard log under Ctrl-C ------------------------------------
def test_signals_deferred_hands_a_signal_to_its_handler_when_the_block_ends():
    import signal
    from lib.errors import signals_deferred
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda num, frame: seen.append(num))
    try:
        with signals_deferred():
            signal.raise_signal(signal.SIGTERM)
            assert seen == []                          # not inside the block
        assert seen == [signal.SIGTERM]
        signal.raise_signal(signal.SIGTERM)            # the handler is back
        assert seen == [signal.SIGTERM] * 2
        with pytest.raises(KeyboardInterrupt):         # Ctrl-C: raised where the block ends
            with signals_deferred():
                signal.raise_signal(signal.SIGINT)
                seen.append("inside")
        assert seen == [signal.SIGTERM] * 2 + ["inside"]
    finally:
        signal.signal(signal.SIGTERM, previous)



def test_ctrl_c_during_the_event_log_drain_is_handled_after_it(tmp_path, monkeypatch):
    """A Ctrl-C that arrives while EventLog.flush has stopped the writer thread (here: raised right
    after the stop) is handled when the drain ends: the writer has a running thread again, and
    what is written before and after reaches the file."""
    import signal
    from tensorboardX.event_file_writer import _EventLoggerThread
    from lib.engine.run_folder import EventLog
    log = EventLog(str(tmp_path / "logs"))
    log.add_scalar("loss", 0.5, 1)
    real_stop = _EventLoggerThread.stop

    def stop_interrupted(self):
        real_stop(self)
        signal.raise_signal(signal.SIGINT)      # Ctrl-C between the stop and the restart
    monkeypatch.setattr(_EventLoggerThread, "stop", stop_interrupted)
    with pytest.raises(KeyboardInterrupt):
        log.flush()
    monkeypatch.undo()
    workers = [w.event_writer._worker for w in log.writer.all_writers.values()]
    assert workers and all(w.is_alive() for w in workers)
    log.add_scalar("loss", 0.25, 2)
    log.close()
    assert event_scalars(tmp_path) == {("loss", 1), ("loss", 2)}
