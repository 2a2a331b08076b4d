"""Argument checks, written once: every public function checks its arguments here.

Each check returns the value (converted where that is its job: a float for a number, a
tuple for widths) or raises ``ValueError`` in the package's format::

    <name> must be <expected>[ for <model>]. Received: <name>=<value!r>

``bool`` is never an integer or a number here (``True`` is not a width of 1), and NaN and
infinity are never numbers.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
from typing import Iterable, Sequence

__all__ = [
    "fail",
    "message",
    "is_int",
    "is_number",
    "check_bool",
    "check_int",
    "check_number",
    "check_probability",
    "check_fraction",
    "check_size",
    "check_keras_name",
    "check_widths",
    "check_choice",
    "check_string",
    "check_path",
    "check_instance",
    "check_host_port",
    "check_keys",
    "check_free_of",
]


def message(name: str, expected: str, value, *, context: str | None = None, received: str | None = None) -> str:
    """``"<name> must be <expected>[ for <context>]. Received: <name>=<value!r>"``."""
    where = f" for {context}" if context else ""
    received = received if received is not None else f"{name}={value!r}"
    return f"{name} must be {expected}{where}. Received: {received}"


def fail(name: str, expected: str, value, *, context: str | None = None, received: str | None = None):
    """Raises the package's ``ValueError`` for ``name``."""
    raise ValueError(message(name, expected, value, context=context, received=received))


def is_int(value) -> bool:
    """An integer (a NumPy one too), never a ``bool``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite real number, never a ``bool`` (nor NaN or infinity)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_bool(name: str, value, *, context: str | None = None) -> bool:
    """``True`` or ``False`` (not 0, 1 or ``"yes"``)."""
    if not isinstance(value, bool):
        fail(name, "True or False", value, context=context)
    return value


def check_int(name: str, value, *, minimum: int = 1, allow_none: bool = False, context: str | None = None):
    """An integer of at least ``minimum`` (1: "a positive integer"), or ``None`` if allowed."""
    if value is None and allow_none:
        return None
    if not is_int(value) or value < minimum:
        if minimum == 1:
            expected = "a positive integer"
        elif minimum == 0:
            expected = "a non-negative integer"
        else:
            expected = f"an integer >= {minimum}"
        fail(name, expected + (" or None" if allow_none else ""), value, context=context)
    return int(value)


def check_number(name: str, value, *, allow_zero: bool = False, below: float | None = None,
                 allow_none: bool = False, context: str | None = None):
    """A finite number above 0 (at least 0 with ``allow_zero``; under ``below`` when
    given), as a ``float``."""
    if value is None and allow_none:
        return None
    ok = is_number(value) and (value >= 0 if allow_zero else value > 0)
    if not ok or (below is not None and value >= below):
        expected = "a non-negative number" if allow_zero else "a positive number"
        expected += f" below {below}" if below is not None else ""
        fail(name, expected + (" or None" if allow_none else ""), value, context=context)
    return float(value)


def check_probability(name: str, value, *, context: str | None = None) -> float:
    """A number in [0, 1): a dropout rate, a held-out fraction."""
    if not is_number(value) or not 0 <= value < 1:
        fail(name, "a number in [0, 1)", value, context=context)
    return float(value)


def check_fraction(name: str, value, *, context: str | None = None) -> float:
    """A number in (0, 1]: a crop fraction."""
    if not is_number(value) or not 0 < value <= 1:
        fail(name, "a number in (0, 1]", value, context=context)
    return float(value)


def check_size(name: str, value) -> tuple:
    """An image size: a positive integer (a square) or a pair ``(height, width)``, as a pair."""
    size = (value, value) if is_int(value) else value
    ok = isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 2
    if not ok or not all(is_int(s) and s > 0 for s in size):
        fail(name, "a positive integer (a square image) or a pair (height, width)", value)
    return tuple(int(s) for s in size)


def check_keras_name(name: str, value, get, expected: str):
    """A value a Keras getter accepts (``keras.activations.get``, ``keras.dtype_policies.get``)."""
    try:
        get(value)
    except (ValueError, TypeError):
        pass
    else:
        return value
    fail(name, expected, value)


def check_widths(name: str, value, *, length: int | None = None, context: str | None = None) -> tuple:
    """A sequence of positive integers (``length`` of them when given), as a tuple."""
    ok = isinstance(value, Sequence) and not isinstance(value, str)
    ok = ok and (length is None or len(value) == length) and all(is_int(w) and w > 0 for w in value)
    if not ok:
        count = f"{length} " if length is not None else "a sequence of "
        fail(name, f"{count}positive integers", value, context=context)
    return tuple(int(w) for w in value)


def check_choice(name: str, value, choices: Iterable, *, context: str | None = None):
    """One of ``choices``; a string close to one of them gets a "Did you mean" hint."""
    choices = tuple(choices)
    if value in choices and not (isinstance(value, bool) and not any(c is value for c in choices)):
        return value
    shown = [repr(c) for c in choices]
    expected = " or ".join(shown) if len(shown) < 3 else "one of " + ", ".join(shown[:-1]) + " or " + shown[-1]
    if isinstance(value, str):
        close = difflib.get_close_matches(value, [c for c in choices if isinstance(c, str)], n=1)
        if close:
            expected += f" (did you mean {close[0]!r}?)"
    fail(name, expected, value, context=context)


def check_string(name: str, value, *, expected: str = "a non-empty string", context: str | None = None) -> str:
    """A non-empty string; ``expected`` says what it names (``"a metric name"``)."""
    if not isinstance(value, str) or not value:
        fail(name, expected, value, context=context)
    return value


def check_path(name: str, value, *, suffix: str | None = None, expected: str | None = None,
               context: str | None = None) -> str:
    """A non-empty ``str`` or ``os.PathLike`` (ending in ``suffix`` when given), as a ``str``.

    ``expected`` says what the path is for in the message (``"a folder path"``)."""
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text or (suffix is not None and not text.endswith(suffix)):
        if expected is None:
            expected = f"a path ending in {suffix}" if suffix is not None else "a file or folder path"
        fail(name, expected, value, context=context)
    return text


def check_instance(name: str, value, types, expected: str, *, context: str | None = None):
    """An instance of ``types`` (a class or a tuple of them); ``expected`` names it."""
    if not isinstance(value, types):
        fail(name, expected, value, context=context)
    return value


def check_host_port(name: str, value) -> str:
    """``"HOST:PORT"``: a non-empty host, a colon, a port from 1 to 65535 (``"10.0.0.1:1234"``)."""
    host, sep, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    if not sep or not host or not port.isdigit():
        fail(name, "HOST:PORT", value)
    if not 1 <= int(port) <= 65535:
        fail(name, "HOST:PORT with a port from 1 to 65535", value)
    return value


def check_keys(name: str, value, allowed: Iterable, *, what: str = "keys", context: str | None = None):
    """A mapping whose keys are all in ``allowed``; ``what`` names them (``"outputs"``)."""
    allowed = list(allowed)
    unknown = sorted(set(value) - set(allowed), key=str)
    if unknown:
        fail(name, f"keyed by the {what} {allowed} (unknown {what}: {unknown})", value, context=context)
    return value


def check_free_of(name: str, value, reserved: Iterable, reason: str, *, context: str | None = None):
    """A mapping that sets none of ``reserved``: the caller sets those itself (``reason``)."""
    clash = sorted(set(reserved) & set(value))
    if clash:
        fail(name, f"free of {clash} ({reason})", value, context=context)
    return value
