"""The run folder (``--checkpoint``): its owner, a fresh start in it, its TensorBoard log.

* Owner: :func:`lib.io.own_folder` (an ``fcntl.flock`` on ``<run>/.pose3d-owner``, released by the
  OS when the process ends); :func:`lib.engine.run.run_training` holds it for the whole run, so a
  second ``train.py`` / ``train_distill.py`` on the same folder refuses with the first one's PID.
* ``--new_run``: :func:`archive_previous_run` moves the previous run's files into
  ``<run>/previous/N/`` (N = 1, 2, ...) before anything is written, ``latest_epoch.bin`` last: until
  it has moved, a rerun still sees the old run (and refuses an incomparable resume again), so a
  kill in the middle loses nothing. A folder that also holds files no run writes
  (:func:`foreign_entries`, e.g. ``--checkpoint .`` in a project) is refused before anything moves.
* TensorBoard: :class:`EventLog` wraps tensorboardX's ``SummaryWriter`` with a :meth:`EventLog.flush`
  that drains the writer's queue (tensorboardX's own ``flush`` only flushes the file; events still
  in the queue of its writer thread are lost when the process is killed). A Ctrl-C or SIGTERM
  that arrives while the log is written to or drained is handled when that ends
  (:func:`lib.errors.signals_deferred`): stopped half-way, the writer would be left without its thread or
  with its queue half-updated, and the interpreter's exit would wait on it or fail on it.
"""
from __future__ import annotations

import fnmatch
import os

from lib.errors import signals_deferred
from lib.io import OWNER_FILE, TMP_MARK

PREVIOUS = "previous"
LATEST = "latest_epoch.bin"
# What a run folder holds: the trainer's files (config, checkpoints, results, precision, TensorBoard
# log), earlier runs, the owner lock, and models exported beside them (the README's export example).
RUN_ENTRIES = ("config.yaml", "logs", "*.bin", "*_results.json", "precision.json", "*.onnx", "*.onnx.data",
               PREVIOUS, OWNER_FILE)


def foreign_entries(folder: str) -> list[str]:
    """The names in ``folder`` that no Pose3D run writes (:data:`RUN_ENTRIES`; temporaries aside)."""
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder)
                  if TMP_MARK not in n and not any(fnmatch.fnmatchcase(n, pattern) for pattern in RUN_ENTRIES))


def archive_previous_run(folder: str) -> str | None:
    """Move every file and folder of the previous run in ``folder`` (all but the owner lock, the
    ``previous`` folder and temporaries) into a new ``previous/N``; returns it (None: nothing to move)."""
    names = sorted(n for n in os.listdir(folder) if n not in (OWNER_FILE, PREVIOUS) and TMP_MARK not in n)
    if not names:
        return None
    root = os.path.join(folder, PREVIOUS)
    os.makedirs(root, exist_ok=True)
    taken = [int(n) for n in os.listdir(root) if n.isdigit()]
    target = os.path.join(root, str(max(taken, default=0) + 1))
    os.makedirs(target)
    for name in sorted(names, key=lambda n: n == LATEST):        # latest_epoch.bin last
        os.replace(os.path.join(folder, name), os.path.join(target, name))
    return target


class EventLog:
    """TensorBoard scalars of a run (tensorboardX), whose :meth:`flush` puts every scalar added so
    far on disk; no method is split by Ctrl-C or SIGTERM (module docstring)."""

    def __init__(self, logdir: str):
        from tensorboardX import SummaryWriter
        self.logdir = logdir
        with signals_deferred():
            self.writer = SummaryWriter(logdir)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        with signals_deferred():
            self.writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        """Drain the queue of each event file writer: stop its writer thread (which first writes
        everything queued), flush the file, start a new thread on the same file; never split by
        Ctrl-C or SIGTERM."""
        with signals_deferred():
            for file_writer in (self.writer.all_writers or {}).values():      # None once closed
                events = file_writer.event_writer
                worker = events._worker
                worker.stop()
                events._ev_writer.flush()
                events._worker = type(worker)(events._event_queue, events._ev_writer, events._flush_secs)
                events._worker.start()

    def close(self) -> None:
        with signals_deferred():
            self.writer.close()

