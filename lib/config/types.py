"""Value checks of the config schema: each parses one YAML/CLI value or says what it must be.

A check is called with the raw value (YAML or ``--set`` text already read as YAML) and returns the
value to store, converted where YAML is ambiguous (``2e-4`` without a dot is a string to YAML and a
number here; ``'3'`` is 3 for an integer key). It raises :class:`Invalid` when the value is wrong;
the schema turns that into a :class:`~lib.errors.ConfigError` naming the key and the file, using
the check's :attr:`describe` text ("an integer >= 1") for what the value must be.
"""
from __future__ import annotations

import math
import re
from typing import Any, Sequence


class Invalid(Exception):
    """The value does not pass the check (the schema adds key, file and :attr:`describe`)."""


def _number(value: Any) -> float:
    """A finite number from an int, float or numeric string; bools are not numbers."""
    if isinstance(value, bool):
        raise Invalid
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise Invalid from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid
    return value


def _bounds(lo, hi, lo_open: bool, hi_open: bool) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi}")
    return " and ".join(parts)


class Int:
    """An integer (``epochs: 1.5`` and ``true`` are errors), optionally bounded or one of ``choices``."""

    def __init__(self, lo: int | None = None, hi: int | None = None, choices: Sequence[int] = ()):
        self.lo, self.hi, self.choices = lo, hi, tuple(choices)

    @property
    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        bounds = _bounds(self.lo, self.hi, False, False)
        return "an integer" + (f" {bounds}" if bounds else "")

    def __call__(self, value: Any) -> int:
        number = _number(value)
        if float(number) != int(number):
            raise Invalid
        number = int(number)
        if self.choices and number not in self.choices:
            raise Invalid
        if (self.lo is not None and number < self.lo) or (self.hi is not None and number > self.hi):
            raise Invalid
        return number


class Float:
    """A real number within bounds (``lo_open``/``hi_open``: the bound itself is excluded)."""

    def __init__(self, lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    @property
    def describe(self) -> str:
        bounds = _bounds(self.lo, self.hi, self.lo_open, self.hi_open)
        return "a number" + (f" {bounds}" if bounds else "")

    def __call__(self, value: Any) -> float:
        number = float(_number(value))
        if self.lo is not None and (number < self.lo or (self.lo_open and number == self.lo)):
            raise Invalid
        if self.hi is not None and (number > self.hi or (self.hi_open and number == self.hi)):
            raise Invalid
        return number


class Bool:
    """``true`` or ``false`` (not 0/1, not a string)."""

    describe = "true or false"

    def __call__(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid
        return value


class Choice:
    """One of a fixed set of strings."""

    def __init__(self, *choices: str):
        self.choices = choices

    @property
    def describe(self) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def __call__(self, value: Any) -> str:
        if value not in self.choices:
            raise Invalid
        return value


class Str:
    """A non-empty string (a path or a name), optionally matching ``pattern`` (shown as ``example``)."""

    def __init__(self, pattern: str | None = None, example: str = ""):
        self.pattern, self.example = pattern, example

    @property
    def describe(self) -> str:
        return f"a string like {self.example!r}" if self.pattern else "a non-empty string"

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str) or not value or (self.pattern and not re.fullmatch(self.pattern, value)):
            raise Invalid
        return value


class ListOf:
    """A YAML list whose elements pass ``item``; at least ``min_len`` of them."""

    def __init__(self, item, min_len: int = 0):
        self.item, self.min_len = item, min_len

    @property
    def describe(self) -> str:
        size = f"at least {self.min_len} " if self.min_len else ""
        return f"a list of {size}elements, each {self.item.describe}"

    def __call__(self, value: Any) -> list:
        if not isinstance(value, (list, tuple)) or len(value) < self.min_len:
            raise Invalid
        return [self.item(v) for v in value]


class Optional:
    """``null`` or a value passing ``inner``."""

    def __init__(self, inner):
        self.inner = inner

    @property
    def describe(self) -> str:
        return f"null or {self.inner.describe}"

    def __call__(self, value: Any) -> Any:
        return None if value is None else self.inner(value)


class Partition:
    """``[[l_0, ..., l_{n-1}]]``: one partition of ``n`` joints, ids contiguous 0..K-1, each id used."""

    def __init__(self, n: int):
        self.n = n

    @property
    def describe(self) -> str:
        return (f"a list holding one partition of exactly {self.n} integers whose ids are 0..K-1, "
                f"each id used (e.g. [[0, 1, 1, ...]])")

    def __call__(self, value: Any) -> list:
        if not isinstance(value, (list, tuple)) or len(value) != 1:
            raise Invalid
        label = ListOf(Int(lo=0))(value[0])
        if len(label) != self.n or sorted(set(label)) != list(range(max(label) + 1)):
            raise Invalid
        return [label]
