"""The errors Pose3D raises for bad input, and how the entry points end.

Every problem a user can cause (a wrong config value, a missing or malformed file, a checkpoint
of another model, an impossible flag) raises a :class:`Pose3DError` subclass whose message says
what is wrong, which file or key, and what to do. Library code never exits the interpreter; the
entry points (``train.py``, ``evaluate.py``, ``tools/*.py``, ``deployment/*.py``, ...) wrap their
``main`` with :func:`entry_point`, which turns a ``Pose3DError`` into one line
``error: ...`` on stderr and exit status 2. An :class:`OSError` (disk full, read-only folder, a
file where a folder is needed, permissions) is the user's environment, not a bug: it ends the same
way, naming the path and the cause (:func:`os_error_message`). Ctrl-C ends with one line (exit
status 130; the trainer's :class:`Interrupted` says how to resume). Any other exception is a bug
and keeps its traceback. An error raised in a DataLoader worker reaches the user as the worker's
original one-line message (:func:`one_line`), not the worker's traceback. Where a Ctrl-C or
SIGTERM would leave a library's object half-built or half-updated (tensorboardX's writer thread
and queue, a tqdm bar), :func:`signals_deferred` makes it wait until that code has finished.

All of them are ``ValueError`` subclasses (a bad value from outside), so callers that predate
this module keep working.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import signal
import sys
import threading
from typing import Iterator


class Pose3DError(ValueError):
    """Base of every error caused by the user's input; the message is meant for the user."""

    exit_status = 2


class ConfigError(Pose3DError):
    """A configuration file, config value or command-line flag is wrong (names the key and file)."""


class DataError(Pose3DError):
    """Source data or a clip folder is missing or malformed; the message says what and how to fix it."""


class CheckpointError(Pose3DError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


class InputFileError(Pose3DError):
    """A file given on the command line (keypoints, ONNX model, output path) cannot be used."""


class TrainingDiverged(Pose3DError):
    """The loss became NaN or infinite; the message names the last good checkpoint."""


class FileSystemError(Pose3DError):
    """The operating system refused a read or write (disk full, read-only, permissions, a file where
    a folder is needed); the message names the path and the cause."""


class RunFolderBusy(Pose3DError):
    """Another process owns the run or clip folder (its lock is held); the message names its PID."""


class Interrupted(Pose3DError):
    """Ctrl-C (SIGINT), or SIGTERM during training; the message says what is on disk and how to go
    on. Exit status 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM."""

    exit_status = 130

    def __init__(self, message: str, exit_status: int = 130):
        super().__init__(message)
        self.exit_status = exit_status


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by the SIGTERM handler a training installs (``kill PID``, a
    scheduler or container stopping the job), so the run ends like Ctrl-C, with its message."""


class VerificationFailed(Pose3DError):
    """A result failed its own check (e.g. ONNX parity); nothing was written. Exit status 1."""

    exit_status = 1


class UserExit(SystemExit):
    """``SystemExit`` with status 2 whose ``str`` is the one-line error (what tests match on)."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(status)
        self.message = message

    def __str__(self) -> str:
        return self.message


# What the OS error numbers mean to a user of Pose3D (the rest use the system's own text).
_OS_CAUSES = {
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EEXIST: "a file is in the way where a folder is needed",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENAMETOOLONG: "the name is too long",
}


def os_error_message(err: OSError, path: str | None = None, doing: str = "") -> str:
    """One line naming the path (``path``, else the error's own file names) and the cause."""
    where = path or err.filename
    if err.filename2 and not path:
        where = f"{err.filename} -> {err.filename2}"
    cause = _OS_CAUSES.get(err.errno) or err.strerror or str(err) or type(err).__name__
    if err.errno == errno.EEXIST and where and os.path.isfile(str(where)):
        cause = "it is a file; a folder is needed here"
    prefix = f"cannot {doing} " if doing else ""
    return f"{prefix}{where}: {cause}" if where else f"{prefix.strip() or 'operating system error'}: {cause}"


# How a DataLoader worker's exception arrives: the worker's formatted traceback as the message.
_WORKER = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.")


def one_line(err: BaseException) -> str:
    """The error's message folded onto one line (multi-line hints joined with ' | '). An error
    re-raised from a DataLoader worker is reduced to the worker's original message."""
    text = str(err)
    if _WORKER.match(text):
        name = re.escape(type(err).__name__)
        lines = text.splitlines()
        starts = [i for i, line in enumerate(lines) if re.match(rf"^([\w.]+\.)?{name}: ", line)]
        if starts:
            text = "\n".join(lines[starts[-1]:]).split(": ", 1)[1]
    parts = [part.strip() for part in text.splitlines() if part.strip()]
    return " | ".join(parts) or type(err).__name__


# Called when an entry point ends, with whether it failed (lib/io.py registers the removal of the
# empty folders a failed command created).
_ON_END: list = []


def on_end(hook) -> None:
    """Run ``hook(failed)`` when an :func:`entry_point` ends: ``failed`` is True when it ends with
    an error line (before the line is printed), False when it returns."""
    _ON_END.append(hook)


def _end(failed: bool) -> None:
    for hook in _ON_END:
        hook(failed)


def _fail(message: str, status: int):
    _end(failed=True)
    print(message, file=sys.stderr, flush=True)
    raise UserExit(message, status) from None


def entry_point(main):
    """Decorate an entry point's ``main(argv=None)``: a :class:`Pose3DError` becomes
    ``error: <message>`` on stderr and exit status 2 (1 for :class:`VerificationFailed`, 130 for
    :class:`Interrupted`); an :class:`OSError` becomes ``error: <path>: <cause>`` (status 2); Ctrl-C
    outside the trainer ``error: interrupted`` (status 130). The return value is ignored (status 0)."""
    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            result = main(*args, **kwargs)
        except Pose3DError as err:
            _fail(f"error: {one_line(err)}", err.exit_status)
        except OSError as err:
            _fail(f"error: {os_error_message(err)}", 2)
        except KeyboardInterrupt:
            _fail("error: interrupted (Ctrl-C); nothing half-written was left behind", 130)
        _end(failed=False)
        return result
    return wrapped


@contextlib.contextmanager
def signals_deferred(signums: tuple = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """While the block runs, a signal of ``signums`` is recorded instead of handled; when the block
    ends, the handlers are restored and each recorded signal goes to its handler (Ctrl-C raises
    ``KeyboardInterrupt`` there, the trainer's SIGTERM :class:`Terminated`). Off the main thread (where
    Python cannot install handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    previous = {signum: signal.signal(signum, lambda num, frame: pending.append((num, frame))) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum, frame in pending:
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)
