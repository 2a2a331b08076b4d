"""Atomic writes: a file is either the old one or the complete new one, never half.

Every writer writes a temporary file in the destination's folder (same file
system), flushes it to disk, then ``os.replace``s it over the destination, which
is atomic on POSIX and Windows. A process killed at any moment (even by
SIGKILL) leaves at worst a ``.tmp-<pid>-*`` file (or an export's
``.saved_model.partial-*`` folder), which `remove_temporaries` deletes on the
next run.
"""

from __future__ import annotations

import contextlib
import json
import os

from kerasnets.files import TMP_PREFIX, remove_stale_partials, strict_json

__all__ = [
    "atomic_path",
    "write_text",
    "write_json",
    "read_json",
    "json_roundtrip",
    "save_model",
    "save_weights",
    "remove_temporaries",
]

_TMP_PREFIX = TMP_PREFIX


def _fsync(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to ``path`` (same suffix); commits it on success.

    The suffix is kept because Keras checks it (``.keras``, ``.weights.h5``).
    On an exception the temporary file is removed and ``path`` is untouched.
    """
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f"{_TMP_PREFIX}{os.getpid()}-{name}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_text(path, text: str):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json(path, data):
    """``data`` as strict JSON: NaN and infinity become ``null`` (a diverged loss is no bare ``NaN``)."""
    text = json.dumps(strict_json(json_roundtrip(data)), indent=2, allow_nan=False)
    write_text(path, text + "\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def json_roundtrip(data):
    """``data`` as it reads back from JSON (tuples become lists, NumPy numbers Python's)."""
    return json.loads(json.dumps(data, default=_json_default))


def _json_default(value):
    # NumPy scalars and other number-likes from Keras logs.
    for cast in (int, float):
        try:
            if cast(value) == value:
                return cast(value)
        except (TypeError, ValueError, OverflowError):  # int(inf)
            continue
    return str(value)


def save_model(model, path):
    """``model.save(path)`` (a ``.keras`` file), atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def save_weights(model, path):
    """``model.save_weights(path)`` (a ``.weights.h5`` file, optimizer included), atomically."""
    with atomic_path(path) as tmp:
        model.save_weights(tmp)


def remove_temporaries(folder):
    """Deletes what interrupted writers left in ``folder``: ``.tmp-*`` files and
    ``.<name>.partial-*`` export staging folders, whatever process wrote them
    (call it only on a folder this process holds, such as a locked run folder)."""
    return remove_stale_partials(folder, all_processes=True)
