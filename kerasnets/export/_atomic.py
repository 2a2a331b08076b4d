"""Atomic writes of export artifacts (a SavedModel directory, a ``.keras`` or ``.tflite`` file).

Everything is first written to a hidden staging folder next to the destination
(``.<name>.partial-XXXX``, on the same file system), then moved into place with
`os.rename` / `os.replace`. An export that fails or is interrupted half-way
removes its staging folder and leaves nothing at the destination; even a hard
kill (SIGKILL, power loss) leaves at most the hidden staging folder, never a
half-written artifact at the destination.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

__all__ = ["check_destination", "atomic_destination"]


def check_destination(path, *, overwrite: bool, kind: str) -> str:
    """Validates an export destination before any work; returns its absolute path.

    Args:
        path: where the artifact will be.
        overwrite: whether an existing artifact of the same kind may be replaced.
        kind: ``"dir"`` or ``"file"``: what the artifact is.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"The export path must be a non-empty string or path. Received: path={path!r}")
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite must be True or False. Received: overwrite={overwrite!r}")
    path = os.path.abspath(os.fspath(path))
    if os.path.lexists(path):
        if not overwrite:
            raise ValueError(
                f"{path} already exists. Pass overwrite=True (--overwrite on the command line) "
                f"to replace it. Received: path={path!r}"
            )
        is_dir = os.path.isdir(path) and not os.path.islink(path)
        if (kind == "dir") != is_dir:
            raise ValueError(
                f"{path} exists and is a {'directory' if is_dir else 'file'}; an export of this "
                f"format writes a {'directory' if kind == 'dir' else 'file'}, so it will not "
                f"replace it even with overwrite=True. Received: path={path!r}"
            )
    parent = os.path.dirname(path)
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise ValueError(f"The parent of the export path is not a directory. Received: path={path!r}")
    return path


@contextlib.contextmanager
def atomic_destination(path: str, *, overwrite: bool):
    """Yields a staging path to write to; moves it to ``path`` if the block succeeds.

    The staging path does not exist yet: the block creates it (a directory or a
    file). On any exception (``KeyboardInterrupt`` included) the staging folder is
    removed and ``path`` is left as it was. An existing ``path`` is replaced only
    with ``overwrite=True``: a file with `os.replace` (atomic); a directory is
    renamed aside, the new one renamed in, then the old one removed (if the second
    rename fails the old directory is put back).
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    name = os.path.basename(path)
    staging_root = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=parent)
    staging = os.path.join(staging_root, name)
    try:
        yield staging
        if not os.path.lexists(staging):
            raise RuntimeError(f"The export wrote nothing to its staging path {staging}.")
        _commit(staging, path, overwrite=overwrite, aside=os.path.join(staging_root, ".previous"))
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


def _commit(staging, path, *, overwrite, aside):
    if not os.path.lexists(path):
        os.rename(staging, path)
        return
    if not overwrite:  # appeared while we were writing
        raise FileExistsError(f"{path} appeared during the export; not replacing it.")
    if not os.path.isdir(staging):
        os.replace(staging, path)
        return
    os.rename(path, aside)
    try:
        os.rename(staging, path)
    except BaseException:
        os.rename(aside, path)
        raise
