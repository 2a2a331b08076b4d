"""What every kerasnets command that writes shares: write checks, the run lock, stale leftovers.

* `check_writable`: before any work, one clear error when a destination
  cannot be written (a read-only folder, a file where a folder must be).
* `RunLock`: an OS lock (``fcntl.flock``) on a run folder, so that one process
  at a time trains in it; the OS releases it when the process dies, even by
  SIGKILL, so a killed run resumes at once.
* `remove_stale_partials`: deletes what an interrupted atomic write left
  behind (``.tmp-<pid>-*`` files, ``.<name>.partial-<pid>-*`` folders) when
  the process that wrote it is gone; an export killed between its two renames
  gets its previous version put back.
* `describe_keras_file`: what is wrong with a ``.keras`` file that does not
  load (empty, truncated, not a zip archive, a zip without a model).
* `Manifest`: the marker of a folder kerasnets writes (a training run, an
  export, a search) and the list of what it wrote there, so that replacing
  or starting over deletes only those files and never a user's.
* `lock_holder`: whether a live process holds a folder's `RunLock`, without
  taking it or writing anything.
* `atomic_path`, `write_text`, `write_bytes`, `write_json`: atomic writes. A
  file is either the old one or the complete new one, never half: the new
  one is written to a temporary file beside it (same file system), flushed to
  disk (`fsync`) and ``os.replace``d over it, which is atomic on POSIX and
  Windows. A process killed at any moment (even by SIGKILL) leaves at worst a
  ``.tmp-<pid>-*`` file, which `remove_stale_partials` deletes later.
* `read_json_object`, `strict_json`, `json_roundtrip`: JSON records read with
  one clear error naming the file, and written as strict JSON (no bare ``NaN``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import numbers
import os
import re
import shutil
import tempfile
import zipfile

__all__ = [
    "check_writable",
    "RunLock",
    "RunLockedError",
    "LOCK_FILE",
    "TMP_PREFIX",
    "partial_prefix",
    "is_leftover",
    "remove_stale_partials",
    "describe_keras_file",
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "Manifest",
    "ManifestError",
    "lock_holder",
    "read_json_object",
    "strict_json",
    "json_roundtrip",
    "json_text",
    "fsync",
    "atomic_path",
    "write_text",
    "write_bytes",
    "write_json",
]

LOCK_FILE = ".lock"
TMP_PREFIX = ".tmp-"
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-(?:(?P<pid>\d+)-)?[^/]*$")
_TMP = re.compile(r"^\.tmp-(?:(?P<pid>\d+)-)?")


def check_writable(path, *, received: str) -> None:
    """Raises ValueError unless something can be created at ``path``.

    Checks the folder that will hold it: ``path`` itself when it is an existing
    folder, else the nearest existing folder above it, by creating (and at once
    removing) a temporary file there, so that permissions, ACLs and read-only
    file systems all count. ``received`` ends the message (``"output='runs/x'"``).
    """
    path = os.path.abspath(os.fspath(path))
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"{folder} is a file, so nothing can be written under it. Received: {received}")
    try:
        handle, probe = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}-write-check-", dir=folder)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(
            f"Cannot write to {folder} ({reason}): choose another destination or fix its "
            f"permissions. Received: {received}"
        ) from None
    os.close(handle)
    with contextlib.suppress(OSError):
        os.remove(probe)


class RunLockedError(ValueError):
    """Another live process holds the lock of a run folder."""


def _lock(fd):
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


class RunLock:
    """An exclusive OS lock on ``folder/.lock``, held from `acquire` to `release`.

    The lock file holds the holder's process id; a second process (or a second
    `RunLock` in the same process) gets `RunLockedError` naming the folder and
    that id. The lock goes with the process: a killed run leaves the file but
    not the lock.
    """

    def __init__(self, folder):
        self.folder = os.path.abspath(os.fspath(folder))
        self.path = os.path.join(self.folder, LOCK_FILE)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self):
        """The process id written in the lock file, or None."""
        try:
            with open(self.path, encoding="ascii", errors="replace") as f:
                text = f.read().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def acquire(self) -> "RunLock":
        if self._fd is not None:
            return self
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            holder = self.holder()
            raise RunLockedError(
                f"The run folder {self.folder} is in use by another kerasnets process "
                f"(pid {holder if holder is not None else 'unknown'}): wait for it to finish or "
                f"stop it, or choose another --output. Received: output={self.folder!r}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the file releases the lock

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def __del__(self):
        self.release()


def _alive(pid) -> bool:
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def partial_prefix(name: str) -> str:
    """The prefix of the staging folder of an atomic write of ``name`` by this process."""
    return f".{name}.partial-{os.getpid()}-"


def remove_stale_partials(folder, *, all_processes=False) -> list:
    """Removes the leftovers of interrupted atomic writes in ``folder``; returns their names.

    A leftover is a ``.tmp-<pid>-*`` file or a ``.<name>.partial-*`` staging
    folder. It is stale when the process that wrote it is gone, or always with
    ``all_processes=True`` (a locked run folder, where no other process
    writes). A staging folder that still holds the previous version of
    ``<name>`` (``.previous``: the writer died between its two renames) while
    ``<name>`` is missing gets it moved back first.
    """
    folder = os.fspath(folder)
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for entry in entries:
        partial, tmp = _PARTIAL.match(entry), _TMP.match(entry)
        if not (partial or tmp):
            continue
        match = partial or tmp
        pid = int(match.group("pid")) if match.group("pid") else None
        if pid is None and not all_processes:
            continue  # an old-style name: its writer cannot be told
        if not all_processes and _alive(pid):
            continue
        path = os.path.join(folder, entry)
        if partial and os.path.isdir(path):
            previous = os.path.join(path, ".previous")
            target = os.path.join(folder, partial.group("name"))
            if os.path.lexists(previous) and not os.path.lexists(target):
                with contextlib.suppress(OSError):
                    os.rename(previous, target)
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)
        removed.append(entry)
    return removed


def describe_keras_file(path):
    """None if ``path`` looks like a loadable ``.keras`` file, else what is wrong with it."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return "does not exist"
    if os.path.isdir(path):
        return "is a folder, not a .keras file"
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as error:
        return f"cannot be read ({error.strerror or type(error).__name__})"
    if size == 0:
        return "is empty (0 bytes)"
    if not zipfile.is_zipfile(path):
        if head == b"PK\x03\x04":
            return (f"is truncated: a zip archive without its end ({size:,} bytes), as a write "
                    "that did not finish leaves it")
        if head == b"\x89HDF":
            return "is an HDF5 file (.h5 weights or a legacy model), not a .keras zip archive"
        return f"is not a .keras file: a .keras file is a zip archive, this one starts with {head!r}"
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f"is a damaged zip archive ({error})"
    if bad is not None:
        return f"is a damaged zip archive (a bad CRC in {bad})"
    if "config.json" not in names:
        return "is a zip archive but holds no Keras model (no config.json)"
    return None


# -- the manifest: what kerasnets wrote in a folder ------------------------------------

MANIFEST_FILE = ".kerasnets-manifest.json"
MANIFEST_FORMAT = 1
# The manifest's first key: the package's name, its value the format. A file of a user's own
# tool does not carry it by accident, as a run.json or a kerasnets_export.json copied from
# elsewhere can.
_MARKER = "kerasnets_manifest"


class ManifestError(ValueError):
    """A manifest that is there but cannot be trusted: damaged, of a newer format, or
    listing a path outside its folder. Its message says what is wrong; the caller adds
    what to do and what it received."""


def _clean_entry(entry):
    """``entry`` as a normalised relative path (a folder ends with ``/``), or None if unsafe."""
    if not isinstance(entry, str) or not entry or "\\" in entry or entry.startswith("/"):
        return None
    folder = entry.endswith("/")
    parts = entry.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    return "/".join(parts) + ("/" if folder else "")


def is_leftover(name) -> bool:
    """Whether ``name`` is what an atomic write leaves while it runs (or when killed):
    a ``.tmp-*`` file or a ``.<name>.partial-*`` staging folder."""
    return bool(_PARTIAL.match(name) or _TMP.match(name))


class Manifest:
    """The marker of a folder kerasnets writes, and the list of everything it wrote there.

    ``folder/.kerasnets-manifest.json`` holds::

        {"kerasnets_manifest": 1, "kind": "run", "files": ["checkpoints/", "checkpoints/best.keras", ...]}

    ``kind`` says what the folder is (``"run"``, ``"export"``, ``"search"``); ``files``
    the paths kerasnets wrote, relative to the folder, a folder with a trailing ``/``.
    A listed folder that holds a manifest of its own (a run's ``saved_model/`` export)
    is described by that one. A writer records a path *before* it writes it, so a
    crash never leaves a kerasnets file unlisted; a listed path that was never
    written is harmless. `remove_written` deletes only what is listed and reports
    the rest, so that ``--overwrite`` never deletes a file a user put there.

    Args:
        folder: the folder the manifest describes.
        kind: what the folder is.
        entries: the paths already written.
    """

    def __init__(self, folder, kind: str, entries=()):
        self.folder = os.path.abspath(os.fspath(folder))
        self.kind = kind
        self.entries = set()
        for entry in entries:
            clean = _clean_entry(entry)
            if clean is None:
                raise ManifestError(f"{self.path} lists {entry!r}, which is not a path inside its folder: "
                                    "it was not written by kerasnets.")
            self.entries.add(clean)

    @property
    def path(self) -> str:
        return os.path.join(self.folder, MANIFEST_FILE)

    def __repr__(self):
        return f"Manifest({self.folder!r}, kind={self.kind!r}, {len(self.entries)} entries)"

    @classmethod
    def read(cls, folder):
        """The manifest of ``folder``; None when it has none; `ManifestError` when it
        has one that is damaged, of a newer format or unsafe."""
        folder = os.path.abspath(os.fspath(folder))
        path = os.path.join(folder, MANIFEST_FILE)
        if not os.path.lexists(path):
            return None
        if os.path.islink(path) or not os.path.isfile(path):
            raise ManifestError(f"{path} is not a file kerasnets wrote (a link or a folder).")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as error:
            raise ManifestError(f"{path} is damaged ({error}).") from None
        version = data.get(_MARKER) if isinstance(data, dict) else None
        if not isinstance(version, int) or isinstance(version, bool) or version < 1 \
                or not isinstance(data.get("kind"), str) or not isinstance(data.get("files"), list):
            raise ManifestError(f"{path} is not a kerasnets manifest.")
        if version > MANIFEST_FORMAT:
            raise ManifestError(f"{path} has format {version}, written by a newer kerasnets than this one "
                                f"(which reads format {MANIFEST_FORMAT}): upgrade kerasnets.")
        return cls(folder, data["kind"], data["files"])

    @classmethod
    def of_tree(cls, folder, kind: str) -> "Manifest":
        """A manifest listing everything now in ``folder`` (a staging folder just written)."""
        folder = os.path.abspath(os.fspath(folder))
        entries = []
        for here, dirs, files in os.walk(folder):
            rel = os.path.relpath(here, folder).replace(os.sep, "/")
            prefix = "" if rel == "." else rel + "/"
            entries += [f"{prefix}{d}/" for d in dirs] + [prefix + f for f in files if f != MANIFEST_FILE]
        return cls(folder, kind, entries)

    def record(self, *names) -> "Manifest":
        """Adds ``names`` (paths relative to the folder; folders end with ``/``) and the
        folders above them, and rewrites the manifest when that changed anything."""
        before = len(self.entries)
        for name in names:
            clean = _clean_entry(name)
            if clean is None:
                raise ValueError(f"A manifest entry must be a relative path inside its folder. Received: {name!r}")
            parts = clean.rstrip("/").split("/")
            self.entries.update("/".join(parts[:i]) + "/" for i in range(1, len(parts)))
            self.entries.add(clean)
        if len(self.entries) != before or not os.path.exists(self.path):
            self.write()
        return self

    def write(self) -> None:
        """Writes the manifest atomically (a temporary file renamed over it)."""
        write_json(self.path, {_MARKER: MANIFEST_FORMAT, "kind": self.kind, "files": sorted(self.entries)},
                   indent=1)

    def _inside(self, rel) -> bool:
        """Whether ``rel`` is reached without going through a link (so it is in the folder)."""
        real = os.path.realpath(self.folder)
        parent = os.path.dirname(os.path.join(real, rel.rstrip("/")))
        return os.path.realpath(parent) == os.path.normpath(parent)

    def unlisted(self) -> list:
        """What the folder holds that kerasnets did not write, as sorted relative paths
        (a folder of them as ``name/``). Leftovers of killed writes, the lock and the
        manifest itself are kerasnets's."""
        found = []

        def walk(rel_dir, manifest):
            try:
                listing = sorted(os.scandir(os.path.join(manifest.folder, rel_dir)), key=lambda e: e.name)
            except OSError:
                return
            for entry in listing:
                rel = rel_dir + entry.name
                if (not rel_dir and entry.name in (MANIFEST_FILE, LOCK_FILE)) or is_leftover(entry.name):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    nested = _nested_manifest(entry.path) if rel + "/" in manifest.entries else None
                    if nested is not None:
                        found.extend(os.path.relpath(os.path.join(entry.path, u), self.folder).replace(os.sep, "/")
                                     for u in nested.unlisted())
                    elif rel + "/" in manifest.entries or any(e.startswith(rel + "/") for e in manifest.entries):
                        walk(rel + "/", manifest)
                    else:
                        found.append(rel + "/")
                elif rel not in manifest.entries:
                    found.append(rel)

        walk("", self)
        return sorted(found)

    def remove_written(self) -> list:
        """Deletes what kerasnets wrote: every listed file, what the manifests of listed
        folders list, the listed folders left empty and the manifest. Returns what is
        left (`unlisted`): nothing a user put in the folder is deleted."""
        kept = self.unlisted()
        for rel in sorted(e for e in self.entries if not e.endswith("/")):
            path = os.path.join(self.folder, rel)
            if self._inside(rel) and (os.path.islink(path) or os.path.isfile(path)):
                with contextlib.suppress(OSError):
                    os.remove(path)
        folders = sorted((e for e in self.entries if e.endswith("/")), key=lambda e: e.count("/"), reverse=True)
        for rel in folders:
            path = os.path.join(self.folder, rel)
            if not self._inside(rel) or os.path.islink(path) or not os.path.isdir(path):
                continue
            nested = _nested_manifest(path)
            if nested is not None:
                nested.remove_written()
            remove_stale_partials(path, all_processes=True)
            with contextlib.suppress(OSError):
                os.rmdir(path)  # only when empty: what a user put there stays
        with contextlib.suppress(OSError):
            os.remove(self.path)
        return kept


def _nested_manifest(folder):
    """The manifest of a listed folder, or None (none, or one that cannot be trusted: then
    its content counts as unlisted and is kept)."""
    try:
        return Manifest.read(folder)
    except ManifestError:
        return None


def lock_holder(folder):
    """The process id of the live process that holds ``folder``'s `RunLock` (``-1`` when
    its id cannot be read), or None when none does. Takes no lock and writes nothing."""
    path = os.path.join(os.fspath(folder), LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            _lock(fd)
        except OSError:
            holder = RunLock(folder).holder()
            return holder if holder is not None else -1
        return None
    finally:
        os.close(fd)  # releases the lock if this call took it


_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false",
               type(None): "null"}


def read_json_object(path, *, received: str, remedy: str = ""):
    """The JSON object in ``path``; a ValueError that names the file, what is wrong with
    it and ``remedy`` (what to do) when it cannot be read or is not an object."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as error:
        problem = f"cannot be read ({error.strerror or type(error).__name__})"
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        problem = f"is not valid JSON ({error})" if os.path.getsize(path) else "is empty"
    else:
        if isinstance(data, dict):
            return data
        problem = f"holds {_JSON_TYPES.get(type(data), type(data).__name__)}, not a JSON object"
    raise ValueError(f"{path} {problem}{': ' + remedy if remedy else ''}. Received: {received}")


def strict_json(data):
    """``data`` with every non-finite number (NaN, infinity) replaced by None, so that
    ``json.dumps(..., allow_nan=False)`` writes strict JSON (``null``, not a bare ``NaN``)."""
    if isinstance(data, dict):
        return {key: strict_json(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict_json(value) for value in data]
    if isinstance(data, numbers.Real) and not isinstance(data, numbers.Integral):  # NumPy's too
        value = float(data)
        return value if math.isfinite(value) else None
    return data


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


def json_text(data, *, indent=2, sort_keys=False) -> str:
    """``data`` as strict JSON text ending in a newline: NaN and infinity become ``null``
    (a diverged loss is no bare ``NaN``), tuples lists, NumPy numbers Python's."""
    return json.dumps(strict_json(json_roundtrip(data)), indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n"


# -- atomic writes ---------------------------------------------------------------------


def fsync(path) -> None:
    """Flushes the file ``path`` to disk (best effort: a file system without fsync is let be)."""
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


_WRITES = itertools.count()  # a distinct temporary name for every write of this process


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to ``path`` (same suffix); commits it on success.

    The suffix is kept because writers check it (Keras's ``.keras`` and
    ``.weights.h5``, matplotlib's ``.png``). On an exception the temporary file
    is removed and ``path`` is untouched.
    """
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f"{TMP_PREFIX}{os.getpid()}-{next(_WRITES)}-{name}")
    try:
        yield tmp
        fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_bytes(path, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json(path, data, *, indent=2, sort_keys=False) -> None:
    """Writes ``data`` to ``path`` atomically, as strict JSON (`json_text`)."""
    write_text(path, json_text(data, indent=indent, sort_keys=sort_keys))
