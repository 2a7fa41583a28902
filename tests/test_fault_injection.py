"""Nothing is lost when training is killed: a restart ends exactly where an uninterrupted run ends.

A training child (``python -c``, no hook in production code) patches one trainer function to
SIGKILL itself at a precise point: (a) while ``latest_epoch.bin`` / ``best_epoch.bin`` is being
written (part of the temporary file is on disk), (b) during the end-of-epoch evaluation, (c)
while ``best_epoch_results.json`` is being written (``best_epoch.bin`` already in place); and
(d) the evaluation raises once (the child ends with a traceback). The restart (``train.main``
with the same arguments) must give bit-identical ``latest_epoch.bin`` weights, the same
``best_epoch.bin`` epoch and the same best/latest results JSON as an uninterrupted run, leave no
temporary file, and the killed run's TensorBoard event file must hold the scalars of every epoch
it trained and evaluated (the writer's queue drained at each epoch's end).
"""
import glob
import json
import os
import subprocess
import sys

import pytest
import yaml

import train
from lib.data.prepare import convert_source_to_clips
from lib.data.synthetic import write_synthetic_h36m
from lib.io import TMP_MARK
from lib.model.checkpoint import read_checkpoint
from lib.model.factory import tensor_differences

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 3
TINY = {"epochs": EPOCHS, "batch_size": 8, "learning_rate": 2e-3, "checkpoint_frequency": 100, "maxlen": 9,
        "dim_feat": 16, "dim_rep": 16, "depth": 1, "num_heads": 2, "mlp_ratio": 2, "clip_len": 9,
        "data_stride": 9, "sample_stride": 2, "num_workers": 0, "max_iters_per_epoch": 2,
        "eval_frequency": 1, "eval_full_coverage": False, "synthetic_data": None}

# The child: patch the trainer so that it dies at the point named by argv[1:3], then train.
CHILD = r"""
import os, signal, sys
import torch
torch.set_num_threads(1)
import lib.engine.trainer as T
import lib.io as io
import train
mode, name, epoch = sys.argv[1], sys.argv[2], int(sys.argv[3])

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if mode == "save":                      # SIGKILL with part of the temporary file written
    real_save = T.write_checkpoint
    def save(path, state):
        if os.path.basename(path) == name and state.run.epoch == epoch:
            with io.atomic_write(path) as f:
                f.write(b"PK\x03\x04 half a checkpoint")
                f.flush()
                die()
        real_save(path, state)
    T.write_checkpoint = save
elif mode == "results":                 # SIGKILL while a results file of the epoch is being written
    real_results = T.save_results
    def save_results(results, path):
        if os.path.basename(path) == name and results["about"]["epoch"] == epoch:
            with io.atomic_write(path, "w") as f:
                f.write('{"half": ')
                f.flush()
                die()
        real_results(results, path)
    T.save_results = save_results
else:                                   # "kill" / "raise" during the evaluation of the epoch
    real_evaluate = T.Trainer.evaluate
    def evaluate(self, e):
        if e + 1 == epoch:
            if mode == "kill":
                die()
            raise RuntimeError("injected evaluation failure")
        return real_evaluate(self, e)
    T.Trainer.evaluate = evaluate
train.main(sys.argv[4:])
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny source, its clips, the config, and the uninterrupted reference run."""
    root = tmp_path_factory.mktemp("faults")
    write_synthetic_h36m(str(root / "src" / "h36m_sh_conf_cam_source_final.pkl"), seed=0, size="tiny",
                         subjects=["S1", "S9"], actions=["Walking"], cameras=[1, 2])
    convert_source_to_clips(str(root / "src"), "h36m_sh_conf_cam_source_final.pkl", str(root / "clips"), 9, 9, 2)
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "dt_root": str(root / "src"), "data_root": str(root),
                                   "subset_list": ["clips"]}))
    train.main(args(cfg, root / "straight"))
    return root, cfg


def args(cfg, run) -> list:
    return ["--config", str(cfg), "--checkpoint", str(run)]


def run_child(mode: str, name: str, epoch: int, cfg, run) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", CHILD, mode, name, str(epoch), *args(cfg, run)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)


def outcome(run) -> dict:
    """What must match the uninterrupted run."""
    latest, best = read_checkpoint(str(run / "latest_epoch.bin")), read_checkpoint(str(run / "best_epoch.bin"))
    results = {}
    for name in ("best_epoch_results.json", "latest_epoch_results.json"):
        with open(run / name) as f:
            results[name] = json.load(f)
    return {"weights": latest.model_state, "epoch": latest.run.epoch, "best_epoch": best.run.epoch,
            "best_in_latest": latest.run.best_epoch, "results": results}


def assert_same(a: dict, b: dict) -> None:
    assert tensor_differences(a["weights"], b["weights"]) == []
    assert (a["epoch"], a["best_epoch"], a["best_in_latest"]) == (b["epoch"], b["best_epoch"], b["best_in_latest"])
    assert a["results"] == b["results"]


def event_scalars(run) -> set[tuple[str, int]]:
    """``(tag, step)`` of every scalar in the run's TensorBoard event files (TFRecord framing:
    length, its CRC, an ``Event`` protobuf, its CRC)."""
    import struct
    from tensorboardX.proto.event_pb2 import Event
    found = set()
    for path in glob.glob(str(run / "logs" / "events.out.tfevents.*")):
        with open(path, "rb") as f:
            data = f.read()
        at = 0
        while at + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            if at + 12 + length + 4 > len(data):
                break
            event = Event.FromString(data[at + 12:at + 12 + length])
            found |= {(value.tag, event.step) for value in event.summary.value}
            at += 12 + length + 4
    return found


@pytest.mark.parametrize("mode, name, epoch, killed_status", [
    ("save", "latest_epoch.bin", 2, -9),       # epoch 2's weights half written: epoch 2 is retrained
    ("save", "best_epoch.bin", EPOCHS, -9),    # the last epoch (the best) evaluated, best_epoch.bin half written
    ("results", "best_epoch_results.json", EPOCHS, -9),   # best_epoch.bin written, its results JSON half written
    ("kill", "", 2, -9),                       # SIGKILL during epoch 2's evaluation
    ("raise", "", 2, 1),                       # the evaluation of epoch 2 raises (a bug: traceback)
], ids=["kill-writing-latest", "kill-writing-best", "kill-writing-best-results", "kill-evaluating",
        "raise-evaluating"])
def test_restart_after_a_fault_ends_like_an_uninterrupted_run(setup, tmp_path, capsys, mode, name, epoch,
                                                               killed_status):
    root, cfg = setup
    run = tmp_path / "run"
    child = run_child(mode, name, epoch, cfg, run)
    assert child.returncode == killed_status, child.stderr[-2000:]
    logged = event_scalars(run)                # every epoch the killed run trained is on disk
    trained = epoch if mode in ("kill", "raise", "results") or name == "best_epoch.bin" else epoch - 1
    assert {("loss_total", e) for e in range(1, trained + 1)} <= logged, sorted(logged)
    assert {("Error_P1", e) for e in range(1, epoch)} <= logged, sorted(logged)
    if mode == "results":
        assert glob.glob(str(run / f"{name}{TMP_MARK}*")), "the kill came before the write"
        assert read_checkpoint(str(run / "best_epoch.bin")).run.epoch == epoch
    elif mode == "save":
        assert glob.glob(str(run / f"{name}{TMP_MARK}*")), "the kill came before the write"
        assert not (run / "best_epoch.bin").exists() or read_checkpoint(str(run / "best_epoch.bin")).run.epoch < epoch
    else:                                      # the trained epoch is on disk before the evaluation ran
        state = read_checkpoint(str(run / "latest_epoch.bin")).run
        assert state.epoch == epoch and state.results is None
    if mode == "raise":
        assert "Traceback" in child.stderr and "injected evaluation failure" in child.stderr
    capsys.readouterr()
    train.main(args(cfg, run))                 # the restart
    out = capsys.readouterr().out
    assert_same(outcome(run), outcome(root / "straight"))
    assert not glob.glob(str(run / f"*{TMP_MARK}*"))
    assert "Best checkpoint" in out
    if mode in ("kill", "raise"):
        assert f"Completing the evaluation of epoch {epoch}" in out
    if mode == "results":
        assert f"Completing best_epoch_results.json (epoch {epoch})" in out and "Completing best_epoch.bin" not in out
