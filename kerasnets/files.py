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
"""

from __future__ import annotations

import contextlib
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
    "remove_stale_partials",
    "describe_keras_file",
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
