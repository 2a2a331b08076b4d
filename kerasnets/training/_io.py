"""The run folder's writes: `kerasnets.files`'s atomic writes, and a Keras model or its
weights saved the same way.

A process killed at any moment (even by SIGKILL) leaves at worst a
``.tmp-<pid>-*`` file (or an export's ``.saved_model.partial-*`` folder), which
`remove_temporaries` deletes on the next run.
"""

from __future__ import annotations

import json

from kerasnets.files import atomic_path, json_roundtrip, remove_stale_partials, write_json, write_text

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


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


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
