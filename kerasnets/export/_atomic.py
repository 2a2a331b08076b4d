"""Atomic writes of export artifacts (a SavedModel directory, a ``.keras`` or ``.tflite`` file).

A folder export (a SavedModel) holds a manifest (`kerasnets.files.Manifest`,
kind ``"export"``) listing every file it wrote; ``overwrite=True`` replaces a
folder only when the manifest lists everything in it, so a ``kerasnets_export.json``
copied beside a user's own files never makes them replaceable.

Everything is first written to a hidden staging folder next to the destination
(``.<name>.partial-<pid>-XXXX``, on the same file system), then moved into place
with `os.rename` / `os.replace`. An export that fails or is interrupted half-way
removes its staging folder and leaves nothing at the destination; even a hard
kill (SIGKILL, power loss) leaves at most the hidden staging folder, never a
half-written artifact at the destination, and the next export to that folder
removes it (`kerasnets.files.remove_stale_partials`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import zipfile

from kerasnets._validate import check_bool, check_path
from kerasnets.files import (
    Manifest,
    ManifestError,
    check_writable,
    partial_prefix,
    remove_stale_partials,
)

__all__ = ["check_destination", "atomic_destination", "record_export", "METADATA_FILE", "MANIFEST_KIND"]

# The metadata file of a kerasnets export (in a SavedModel folder, in a .keras zip).
METADATA_FILE = "kerasnets_export.json"
# The kind of the manifest of a folder export (`kerasnets.files.Manifest`).
MANIFEST_KIND = "export"
# What a SavedModel export of a kerasnets before the manifest holds (replaceable as such).
_LEGACY_SAVED_MODEL = re.compile(
    r"^(saved_model\.pb|fingerprint\.pb|kerasnets_export\.json|variables/variables\.(index|data-\d+-of-\d+))$")


def check_destination(path, *, overwrite: bool, kind: str, source=None) -> str:
    """Validates an export destination before any work; returns its absolute path.

    An existing ``path`` is replaced only with ``overwrite=True`` and only when
    it is a previous kerasnets export (a folder whose manifest lists every file in
    it, a ``.keras`` file holding ``kerasnets_export.json``, a TFLite file, an
    ``.onnx`` file with kerasnets' metadata): never a folder holding anything the
    export did not write, the model being exported
    (``source``), a folder that contains it, a run folder, the current directory
    or a folder above it. The folder that will hold ``path`` must be writable.

    Args:
        path: where the artifact will be.
        overwrite: whether an existing artifact of the same kind may be replaced.
        kind: ``"dir"`` or ``"file"``: what the artifact is.
        source: the file the model was loaded from, if any.
    """
    check_path("path", path, expected="a non-empty string or path (where the export goes)")
    check_bool("overwrite", overwrite)
    given = path
    path = os.path.abspath(os.fspath(path))
    if os.path.lexists(path):
        if not overwrite:
            raise ValueError(
                f"{path} already exists. Pass overwrite=True (--overwrite on the command line) "
                f"to replace it. Received: path={given!r}"
            )
        is_dir = os.path.isdir(path) and not os.path.islink(path)
        if (kind == "dir") != is_dir:
            raise ValueError(
                f"{path} exists and is a {'directory' if is_dir else 'file'}; an export of this "
                f"format writes a {'directory' if kind == 'dir' else 'file'}, so it will not "
                f"replace it even with overwrite=True. Received: path={given!r}"
            )
        reason = _not_replaceable(path, is_dir, source)
        if reason:
            raise ValueError(
                f"{path} {reason}: overwrite=True (--overwrite) only replaces a previous kerasnets "
                f"export, so choose another destination. Received: path={given!r}"
            )
    parent = os.path.dirname(path)
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise ValueError(f"The parent of the export path is not a directory. Received: path={given!r}")
    check_writable(parent, received=f"path={given!r}")
    return path


def _inside(inner, outer):
    inner, outer = os.path.realpath(inner), os.path.realpath(outer)
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def _not_replaceable(path, is_dir, source):
    """Why the existing ``path`` must not be replaced by an export, or None."""
    cwd = os.getcwd()
    if _inside(cwd, path):
        return "is the current directory" if os.path.realpath(cwd) == os.path.realpath(path) \
            else "holds the current directory"
    if source is not None and _inside(os.path.abspath(os.fspath(source)), path):
        return "is the model being exported" if not is_dir else \
            f"holds the model being exported ({os.fspath(source)})"
    if not is_dir:
        if path.endswith(".keras"):
            try:
                with zipfile.ZipFile(path) as archive:
                    marked = METADATA_FILE in archive.namelist()
            except (zipfile.BadZipFile, OSError):
                marked = False
            return None if marked else f"is not a .keras file exported by kerasnets (no {METADATA_FILE} inside)"
        if path.endswith(".onnx"):
            from kerasnets.export._onnx import METADATA_KEY, is_kerasnets_onnx  # a cycle: _onnx imports this module

            return None if is_kerasnets_onnx(path) else \
                f"is not an ONNX model exported by kerasnets (no {METADATA_KEY} in its metadata)"
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except OSError:
            head = b""
        return None if head[4:8] == b"TFL3" else "is not a TFLite model"
    return _not_an_export_folder(path)


def _not_an_export_folder(path):
    """Why the folder ``path`` is not an export kerasnets may replace, or None."""
    try:
        manifest = Manifest.read(path)
    except ManifestError as error:
        return f"has a kerasnets manifest that cannot be trusted ({error})"
    if manifest is not None and manifest.kind != MANIFEST_KIND:
        return f"is a kerasnets {manifest.kind} folder"
    if os.path.exists(os.path.join(path, "run.json")):
        return "is a training run folder"
    if manifest is None:
        if not os.path.isfile(os.path.join(path, METADATA_FILE)):
            return f"is not a kerasnets export (no {METADATA_FILE})"
        manifest = Manifest(path, MANIFEST_KIND, ["assets/", "variables/"])  # written before the manifest
        foreign = [name for name in manifest.unlisted() if not _LEGACY_SAVED_MODEL.match(name)]
    else:
        foreign = manifest.unlisted()
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        return f"holds files a kerasnets export did not write ({shown})"
    return None


def record_export(staging) -> None:
    """Writes the manifest of a folder export just written to ``staging``: every file in it."""
    Manifest.of_tree(staging, MANIFEST_KIND).write()


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
    remove_stale_partials(parent)  # what crashed exports left here
    staging_root = tempfile.mkdtemp(prefix=partial_prefix(name), dir=parent)
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
    reason = _not_an_export_folder(path)  # again: a file may have been added since the check
    if reason:
        raise FileExistsError(f"{path} {reason}; not replacing it.")
    os.rename(path, aside)
    try:
        os.rename(staging, path)
    except BaseException:
        os.rename(aside, path)
        raise
