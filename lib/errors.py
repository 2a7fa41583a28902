"""The errors Pose3D raises for bad input, and how the entry points end.

Every problem a user can cause (a wrong config value, a missing or malformed file, a checkpoint
of another model, an impossible flag) raises a :class:`Pose3DError` subclass whose message says
what is wrong, which file or key, and what to do. Library code never exits the interpreter; the
entry points (``train.py``, ``evaluate.py``, ``tools/*.py``, ``deployment/*.py``, ...) wrap their
``main`` with :func:`entry_point`, which turns a ``Pose3DError`` into one line
``error: ...`` on stderr and exit status 2. Any other exception is a bug and keeps its traceback.

All of them are ``ValueError`` subclasses (a bad value from outside), so callers that predate
this module keep working.
"""
from __future__ import annotations

import functools
import sys


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


def one_line(err: BaseException) -> str:
    """The error's message folded onto one line (multi-line hints joined with ' | ')."""
    parts = [part.strip() for part in str(err).splitlines() if part.strip()]
    return " | ".join(parts) or type(err).__name__


def entry_point(main):
    """Decorate an entry point's ``main(argv=None)``: a :class:`Pose3DError` becomes
    ``error: <message>`` on stderr and exit status 2 (1 for :class:`VerificationFailed`); the
    return value is ignored (status 0)."""
    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except Pose3DError as err:
            message = f"error: {one_line(err)}"
            print(message, file=sys.stderr, flush=True)
            raise UserExit(message, err.exit_status) from None
    return wrapped
