"""Every file Pose3D reads or writes goes through this module.

Writing: :func:`atomic_write` is the only way a file is written. The data goes to a temporary
file beside the target (``<name>.pose3d-tmp-<pid>``, one naming scheme everywhere) and is renamed
into place only when complete, so a killed process never leaves a half-written file under the
real name; :func:`remove_stale_temp_files` deletes temporaries a killed run left behind (trainers
call it on start). An :class:`OSError` while writing (disk full, read-only folder, permissions)
becomes a :class:`~lib.errors.FileSystemError` naming the real target (never the temporary name)
and saying the file already there is unchanged.

No command writes over a file it reads: an entry point names the files it reads in
:func:`protected_inputs`, and :func:`check_output_path` -- called by every writer here and by the
entry points on their output flags before any work -- refuses a target that is one of them
(resolved paths, symbolic and hard links included). Helpers for each format (:func:`write_json`, :func:`write_yaml`,
:func:`save_torch`, :func:`write_pickle`, :func:`save_npy`, :func:`save_npz`) build on it.

Owning a folder: :func:`own_folder` is the one lock of Pose3D. A training or distillation run
owns its run folder (lock file ``.pose3d-owner`` inside it), a clip slicing owns its clip folder
(``.<name>.pose3d-owner`` beside it, since the folder itself is renamed into place). It is an
``fcntl.flock`` on that file: the operating system releases it when the process ends, however it
ends, so a killed run never leaves a stale lock. The owner writes its PID and command into the
file; a second process refuses with :class:`~lib.errors.RunFolderBusy` naming the folder and that
PID. The owner deletes the lock file as it ends when nothing is left to guard; a process that
locked a file deleted in the meantime takes the lock again on the file now at that path.

Folders: :func:`make_folders` (used by every writer here and by :func:`own_folder`) records the
folders it creates; when an entry point fails, those still empty are removed, so a refused
command leaves no trace.

Reading: one safe loader per file type, each raising a :class:`~lib.errors.Pose3DError` subclass
whose one-line message names the file, what is wrong and what to do:

* :func:`load_pickle` (source pickles and MotionBERT's per-clip pickles): a restricted
  unpickler that only builds dicts, lists, tuples, strings, numbers and numpy arrays/dtypes;
  any other object (``os.system``, a class, a function) is refused before anything runs.
* :func:`load_checkpoint`: ``torch.load(..., weights_only=True)``; truncated, empty or
  non-checkpoint files get a message, never a traceback.
* :func:`load_yaml`, :func:`load_json`: syntax errors with the line, non-mapping documents refused.
* :func:`load_npy`, :func:`load_npz`: ``allow_pickle=False`` always.
* :func:`check_input_file`: the common "exists, is a file, is not empty" check (ONNX models etc.).
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import io
import json
import os
import pickle
import shlex
import sys
import zipfile
from typing import Any, Callable, Iterator

import numpy as np
import yaml

from lib.errors import (CheckpointError, ConfigError, DataError, FileSystemError, InputFileError, Pose3DError,
                        RunFolderBusy, on_end, os_error_message)

TMP_MARK = ".pose3d-tmp-"

# What a data pickle may contain beyond the builtin containers and scalars (which need no globals).
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("collections", "OrderedDict"),
}


# -- writing ------------------------------------------------------------------------------------
def temp_path(path: str, keep_suffix: bool = False) -> str:
    """The temporary name used for ``path``: ``<path>.pose3d-tmp-<pid>``, or with ``keep_suffix``
    ``<stem>.pose3d-tmp-<pid><suffix>`` (for writers that pick the format from the extension)."""
    stem, suffix = os.path.splitext(path) if keep_suffix else (path, "")
    return f"{stem}{TMP_MARK}{os.getpid()}{suffix}"


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file for writing; on success it replaces ``path`` in one rename.

    On any error the temporary file is removed and ``path`` is left as it was. The parent folder
    is created. A ``path`` that is a folder raises :class:`InputFileError`.
    """
    check_output_path(path)
    tmp = temp_path(path)
    try:
        with os_errors_of_writing(path):
            with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
                yield f
            os.replace(tmp, path)
    finally:
        _remove_quietly(tmp)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Like :func:`atomic_write` for writers that need a file name (ONNX export, memory maps).
    Yields the temporary path (same extension); it is renamed to ``path`` when the block ends
    without error."""
    check_output_path(path)
    tmp = temp_path(path, keep_suffix=True)
    try:
        with os_errors_of_writing(path):
            yield tmp
            os.replace(tmp, path)
    finally:
        _remove_quietly(tmp)


@contextlib.contextmanager
def os_errors_of_writing(path: str) -> Iterator[None]:
    """An OSError while writing ``path`` -> :class:`FileSystemError` naming ``path`` and the cause."""
    existed = os.path.exists(path)
    try:
        yield
    except OSError as err:
        kept = f"; the {path} already there is unchanged" if existed else "; nothing was written"
        raise FileSystemError(os_error_message(err, path, "write") + kept) from None


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# Files the running command reads: realpath -> (what, path as typed). See protected_inputs().
_READING: dict[str, tuple[str, str]] = {}


@contextlib.contextmanager
def protected_inputs(named: dict[str, str | None]) -> Iterator[None]:
    """While the block runs, :func:`check_output_path` refuses to write over any of the files in
    ``named`` (``{what: path}``, e.g. ``{"the checkpoint (-e)": ...}``; None/empty ignored)."""
    added = {os.path.realpath(p): (what, p) for what, p in named.items() if p}
    added = {real: v for real, v in added.items() if real not in _READING}
    _READING.update(added)
    try:
        yield
    finally:
        for real in added:
            _READING.pop(real, None)


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)           # hard links
    except OSError:
        return False


def refuse_if_read(path: str, flag: str = "") -> None:
    """:class:`InputFileError` if ``path`` is one of the files the command reads (:func:`protected_inputs`)."""
    for real, (what, typed) in _READING.items():
        if _same_file(path, real):
            name = f"{flag} {path}" if flag else f"output path {path!r}"
            same = "" if os.path.realpath(path) == real else " (the same file through a link)"
            raise InputFileError(f"{name} is {what} {typed}{same}, which this command reads; writing it would "
                                 "destroy it: choose another output path")


def remove_file(path: str) -> None:
    """Delete ``path`` if it exists (an output being replaced), never a file the command reads."""
    refuse_if_read(path)
    _remove_quietly(path)


def check_output_path(path: str, flag: str = "") -> None:
    """Refuse a folder as an output file and a file the command reads (:func:`protected_inputs`);
    create the parent folder. ``flag`` names the output in the message (e.g. ``--out``)."""
    if not path:
        raise InputFileError(f"empty {flag or 'output path'}")
    if os.path.isdir(path):
        raise InputFileError(f"{f'{flag} {path}' if flag else f'output path {path!r}'} is a folder; give a file name")
    refuse_if_read(path, flag)
    make_folders(os.path.dirname(os.path.abspath(path)))


# Folders this process created (outermost first); see make_folders().
_MADE: list[str] = []


def make_folders(folder: str) -> None:
    """Create ``folder`` and its missing parents (an OSError -> :class:`FileSystemError`),
    remembering each one created, so that a command that fails leaves no empty folder behind
    (:func:`forget_made_folders`, run by :func:`lib.errors.entry_point` when a command ends)."""
    missing, level = [], os.path.abspath(folder)
    while not os.path.isdir(level) and os.path.dirname(level) != level:
        missing.append(level)
        level = os.path.dirname(level)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise FileSystemError(os_error_message(err, folder, "create the folder")) from None
    _MADE.extend(reversed(missing))


def forget_made_folders(failed: bool) -> None:
    """At the end of a command: if it ``failed``, remove the folders :func:`make_folders` created
    that are still empty, deepest first; either way, forget them (a process may run several commands)."""
    while _MADE:
        folder = _MADE.pop()
        if failed:
            with contextlib.suppress(OSError):
                os.rmdir(folder)


on_end(forget_made_folders)


def remove_stale_temp_files(folder: str) -> list[str]:
    """Delete the temporary files of interrupted writes in ``folder``; returns their names."""
    stale = sorted(glob.glob(os.path.join(glob.escape(folder), f"*{TMP_MARK}*")))
    for path in stale:
        os.remove(path)
    return stale


def write_bytes(path: str, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_json(path: str, data: Any) -> None:
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=1)


def write_yaml(path: str, data: Any) -> None:
    with atomic_write(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)


def write_pickle(path: str, data: Any) -> None:
    """Pickle (protocol 4, what MotionBERT's files use) plain data atomically."""
    with atomic_write(path, "wb") as f:
        pickle.dump(data, f, protocol=4)


def save_torch(path: str, state: dict) -> None:
    """``torch.save`` atomically (checkpoints)."""
    import torch
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())


def save_npy(path: str, array: np.ndarray) -> None:
    with atomic_write(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def save_npz(path: str, **arrays: np.ndarray) -> None:
    with atomic_write(path, "wb") as f:
        np.savez_compressed(f, **arrays)


# -- owning a folder ----------------------------------------------------------------------------
OWNER_FILE = ".pose3d-owner"
_OWNED: dict[str, int] = {}       # lock file (realpath) -> fd, for the folders this process owns


def owner_lock_path(folder: str, inside: bool = True) -> str:
    """The lock file of ``folder``: inside it (run folders) or, for a folder that is renamed into
    place (clip folders), beside it as ``.<name>.pose3d-owner``."""
    folder = os.path.normpath(folder)
    if inside:
        return os.path.join(folder, OWNER_FILE)
    return os.path.join(os.path.dirname(folder), f".{os.path.basename(folder)}{OWNER_FILE}")


@contextlib.contextmanager
def own_folder(folder: str, what: str = "run folder", inside: bool = True) -> Iterator[None]:
    """Hold the owner lock of ``folder`` while the block runs (see the module docstring); the
    folder (``inside``) or its parent is created (:func:`make_folders`). Re-entrant within one
    process. Another process holding it: :class:`RunFolderBusy` with its PID and command, nothing
    done. On leaving, the owner deletes the lock file when nothing else is left to guard: always
    beside a clip folder, inside a run folder when the folder holds nothing else (a run refused
    before its first write leaves no trace)."""
    lock = owner_lock_path(folder, inside)
    make_folders(os.path.dirname(os.path.abspath(lock)))
    key = os.path.realpath(lock)
    if key in _OWNED:
        yield
        return
    fd = _lock(lock, folder, what)
    _OWNED[key] = fd
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {shlex.join(sys.argv)}\n".encode(), 0)
        yield
    finally:
        _OWNED.pop(key, None)
        with contextlib.suppress(OSError):
            if not inside or os.listdir(os.path.dirname(lock)) == [OWNER_FILE]:
                os.remove(lock)       # while still held: see _lock
        os.close(fd)                  # releases the lock (the OS does the same if the process dies)


def _lock(lock: str, folder: str, what: str) -> int:
    """An open descriptor of ``lock`` holding its ``flock``. A lock file its owner deleted while
    this process waited to open it is not the lock any more: the lock is taken again on the file
    now at that path (the usual check that the locked file is still the one the path names)."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise FileSystemError(os_error_message(err, lock, "open the lock file")) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise RunFolderBusy(f"{folder} is in use: the {what} is owned by another Pose3D process ({owner}); "
                                "wait for it to end or use another folder") from None
        except OSError as err:
            os.close(fd)
            raise FileSystemError(os_error_message(err, lock, "lock")) from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _read_owner(fd: int) -> str:
    """``PID 1234: python train.py ...`` from a held lock file (written by its owner)."""
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    pid, _, command = text.partition(" ")
    return f"PID {pid}: {command}" if pid.isdigit() else "its PID is not written yet"


# -- reading ------------------------------------------------------------------------------------
def check_input_file(path: str, what: str, error: type[Pose3DError] = InputFileError, hint: str = "") -> str:
    """``path`` if it is an existing, non-empty file; else ``error`` naming ``what`` and ``hint``."""
    suffix = f"; {hint}" if hint else ""
    if not path:
        raise error(f"no {what} given{suffix}")
    if os.path.isdir(path):
        raise error(f"{what} {path!r} is a folder, not a file{suffix}")
    if not os.path.isfile(path):
        raise error(f"{what} not found: {path}{suffix}")
    if os.path.getsize(path) == 0:
        raise error(f"{what} {path!r} is empty (0 bytes), probably an interrupted copy or write{suffix}")
    return path


class _ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle asks for an object outside :data:`SAFE_GLOBALS`."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise _ForbiddenGlobal(f"{module}.{name}")


def load_pickle(path: str, what: str = "data pickle", hint: str = "") -> Any:
    """Unpickle a data file that may only hold dicts, lists, strings, numbers and numpy arrays."""
    check_input_file(path, what, DataError, hint)
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f).load()
    except _ForbiddenGlobal as err:
        raise DataError(f"{path}: refused to load: the {what} asks for {err}, which a Pose3D/MotionBERT "
                        "data file never contains (only dicts, lists, strings, numbers and numpy arrays); "
                        "it may be malicious. Regenerate it from a trusted source") from None
    except pickle.UnpicklingError as err:
        raise DataError(f"{path}: not a readable {what} ({err}); it may be truncated or corrupt") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as err:
        raise DataError(f"{path}: not a readable {what} ({type(err).__name__}: {err}); "
                        "it may be truncated or corrupt") from None


def load_checkpoint(path: str, what: str = "checkpoint") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no code runs); a dict or :class:`CheckpointError`."""
    import torch
    check_input_file(path, what, CheckpointError)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"{path}: refused to load: the {what} holds objects other than tensors and plain "
                              f"containers ({first}); only weights-only checkpoints are read") from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch {what} ({first}); it may be truncated, "
                              "still being written, or another kind of file") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: a {what} must hold a dict of weights, got {type(state).__name__}")
    return state


def load_yaml(path: str, what: str = "config file") -> dict:
    """A YAML mapping (empty file = ``{}``); :class:`ConfigError` for a missing file, a syntax
    error (with its line) or another kind of document."""
    if os.path.isdir(path):
        raise ConfigError(f"{what} {path!r} is a folder, not a file")
    if not os.path.isfile(path):
        raise ConfigError(f"{what} not found: {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected a YAML {what})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value, got {type(data).__name__}")
    return data


def load_json(path: str, what: str = "JSON file", error: type[Pose3DError] = InputFileError) -> Any:
    check_input_file(path, what, error)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise error(f"{path}: malformed JSON ({err})") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file (expected {what})") from None


def load_npy(path: str, what: str = "numpy file", error: type[Pose3DError] = InputFileError,
             mmap_mode: str | None = None) -> np.ndarray:
    check_input_file(path, what, error)
    return _numpy(lambda: np.load(path, allow_pickle=False, mmap_mode=mmap_mode), path, what, error)


def load_npz(path: str, read: Callable[[Any], Any], what: str = "numpy archive",
             error: type[Pose3DError] = InputFileError) -> Any:
    """Open an ``.npz`` (``allow_pickle=False``) and return ``read(archive)``."""
    check_input_file(path, what, error)

    def opened():
        with np.load(path, allow_pickle=False) as archive:
            return read(archive)
    return _numpy(opened, path, what, error)


def _numpy(load: Callable[[], Any], path: str, what: str, error: type[Pose3DError]) -> Any:
    try:
        return load()
    except Pose3DError:
        raise
    except ValueError as err:
        reason = "it holds Python objects (pickled), which are never loaded" if "pickle" in str(err) else str(err)
        raise error(f"{path}: cannot read the {what}: {reason}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise error(f"{path}: not a readable {what} ({type(err).__name__}: {err}); truncated or corrupt?") from None
