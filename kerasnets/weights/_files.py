"""Where weight files live, how they are fetched and how they are checked.

Every file goes through `fetch`: a file already in the cache (downloaded before, or
placed there by hand) is used as it is after its hash is checked; otherwise
``keras.utils.get_file`` downloads it with the published hash. Offline, or with
``KERASNETS_OFFLINE=1``, a missing file raises one error that names the URL, the
cache path and how to place the file by hand.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

__all__ = ["WeightFile", "cache_dir", "fetch", "file_hash"]

ENV_HOME = "KERASNETS_HOME"
ENV_OFFLINE = "KERASNETS_OFFLINE"


@dataclasses.dataclass(frozen=True)
class WeightFile:
    """One published weight file.

    Attributes:
        url: where it is published.
        file_hash: its published hash: 32 hex digits are an MD5 (keras.applications
            publishes those), 40 a SHA-1 (Caffe's model zoo), 64 a SHA-256, fewer (8)
            the first digits of a SHA-256 (torchvision puts them in its file names, and
            torch.hub checks them).
        file_name: its name in the cache (default: the last part of the URL).
        hash_source: where the hash comes from, when it is not the publisher's code.
    """

    url: str
    file_hash: str
    file_name: str | None = None
    hash_source: str = ""

    @property
    def name(self) -> str:
        return self.file_name or self.url.rsplit("/", 1)[-1]

    @property
    def algorithm(self) -> str:
        return {32: "md5", 40: "sha1"}.get(len(self.file_hash), "sha256")

    @property
    def full_hash(self) -> str | None:
        """The hash for ``keras.utils.get_file``, which checks MD5 and SHA-256 only;
        ``None`` for a SHA-1 or a prefix, which `fetch` checks after the download."""
        return self.file_hash if len(self.file_hash) in (32, 64) else None


def cache_dir() -> str:
    """The folder weight files are kept in: ``$KERASNETS_HOME/weights``, by default
    ``~/.keras/kerasnets/weights``."""
    home = os.environ.get(ENV_HOME) or os.path.join(os.path.expanduser("~"), ".keras", "kerasnets")
    return os.path.join(home, "weights")


def file_hash(path, algorithm="sha256", chunk=1 << 20) -> str:
    """The hex digest of a file (``"md5"``, ``"sha1"`` or ``"sha256"``)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _how_to_place(file: WeightFile, path: str) -> str:
    return (
        f"Download {file.url} on a machine with internet access and copy it to {path} "
        f"(set {ENV_HOME} to use another folder than {os.path.dirname(os.path.dirname(path))}); "
        f"kerasnets then uses it offline."
    )


def check_hash(file: WeightFile, path: str):
    """Raises a ValueError when the file at ``path`` is not the published file."""
    actual = file_hash(path, file.algorithm)
    if not actual.startswith(file.file_hash.lower()) or len(file.file_hash) < 8:
        size = os.path.getsize(path)
        raise ValueError(
            f"The weight file {path} ({size:,} bytes) is not the published {file.name}: its "
            f"{file.algorithm} is {actual}, the published one is {file.file_hash}. It is corrupt, "
            f"truncated or another file; delete it to download it again. "
            + _how_to_place(file, path)
        )


def fetch(file: WeightFile) -> str:
    """The local path of ``file``: from the cache, else downloaded; its hash is checked."""
    folder = cache_dir()
    path = os.path.join(folder, file.name)
    if os.path.exists(path):
        check_hash(file, path)
        return path
    offline = os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")
    if offline:
        raise OSError(
            f"{file.name} is not in the weight cache and {ENV_OFFLINE} is set, so it is not "
            f"downloaded. URL: {file.url}. Cache path: {path}. " + _how_to_place(file, path)
        )
    import keras

    os.makedirs(folder, exist_ok=True)
    try:
        downloaded = keras.utils.get_file(
            fname=file.name, origin=file.url, file_hash=file.full_hash,
            hash_algorithm=file.algorithm if file.full_hash else "auto", cache_dir=folder, cache_subdir=".",
        )
    except Exception as error:  # no network, HTTP error, bad hash after download
        if os.path.exists(path):  # get_file leaves nothing half-written, but be sure
            os.remove(path)
        raise OSError(
            f"Could not download {file.name} ({type(error).__name__}: {error}). URL: {file.url}. "
            f"Cache path: {path}. " + _how_to_place(file, path)
        ) from error
    try:
        check_hash(file, downloaded)
    except ValueError:
        os.remove(downloaded)
        raise
    return downloaded
