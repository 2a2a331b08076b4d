"""tensorflow-datasets sources: find the builder, prepare or explain, read encoded records."""

from __future__ import annotations

import contextlib
import difflib
import os
import socket
import sys
import threading

import tensorflow as tf
import tensorflow_datasets as tfds

from kerasnets.data._common import DataError, Records

__all__ = ["BUILTIN_DATASETS", "is_registered", "tfds_records"]

# kerasnets' own builders: generated locally, so prepared automatically when missing.
BUILTIN_DATASETS = ("shapes",)


def _base_name(name):
    return name.split("/")[0].split(":")[0]


def is_registered(name: str) -> bool:
    """Whether tfds has code for the dataset ``name`` (``"cifar10"``, ``"shapes/64"``)."""
    try:
        tfds.builder_cls(_base_name(name))
        return True
    except Exception:  # DatasetNotFoundError and friends
        return False


def _data_root(data_dir):
    return os.path.expanduser(data_dir) if data_dir else tfds.core.constants.DATA_DIR


def _make_builder(name, data_dir):
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        try:
            known = tfds.list_builders(with_community_datasets=False)
        except Exception:  # pragma: no cover - listing is only a hint
            known = []
        close = difflib.get_close_matches(_base_name(name), list(known) + list(BUILTIN_DATASETS), n=4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise DataError(
            f"Unknown data source {name!r}: not a tensorflow-datasets name, not the built-in "
            f"dataset 'shapes' and not an existing folder.{hint} Received: source={name!r}"
        ) from None
    except (ValueError, KeyError, AssertionError) as error:  # e.g. an unknown config
        raise DataError(
            f"Cannot use the tensorflow-datasets dataset {name!r}: {error} Received: source={name!r}"
        ) from None


@contextlib.contextmanager
def _file_lock(path):
    """An exclusive lock between processes (pytest-xdist workers preparing the same data)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare_builtin(builder, name, root):
    with _file_lock(os.path.join(root, f".{_base_name(name)}.lock")):
        if builder.is_prepared():  # another process prepared it while we waited
            return
        print(
            f"kerasnets: generating the built-in dataset '{builder.info.full_name}' "
            f"in {builder.data_dir} (first use only; no download)...",
            file=sys.stderr,
        )
        builder.download_and_prepare()


def _network_available(host="storage.googleapis.com", port=443, timeout=5.0):
    """Whether ``host`` (where tfds downloads most datasets from) answers quickly.

    Offline, tfds retries each file with backoff for minutes before failing; this
    check fails in seconds instead. With a proxy configured it is skipped (True).
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")):
        return True
    result = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=connect, daemon=True)  # DNS ignores `timeout`
    thread.start()
    thread.join(timeout + 1)
    return bool(result and result[0])


def _download(builder, name, data_dir):
    manual = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
    manual_dir = os.path.join(builder.data_dir_root, "downloads", "manual")
    if not manual and not _network_available():
        raise DataError(
            f"Cannot download the tensorflow-datasets dataset {name!r}: this machine has no "
            "network access (storage.googleapis.com did not answer). To fix: prepare it on a "
            "machine with network access and copy its folder into data_dir (CLI: --data-dir; "
            f"it would go to {builder.data_dir}), or use the built-in dataset 'shapes', which "
            f"needs no download. Received: source={name!r}, data_dir={data_dir!r}, download=True"
        )
    try:
        builder.download_and_prepare()
    except Exception as error:  # network, checksum, manual files: all end here
        first_line = (str(error).strip().splitlines() or [""])[0][:300]
        advice = (
            f"{name!r} must be downloaded by hand: place its files in {manual_dir} "
            "(see https://www.tensorflow.org/datasets/catalog) and run again"
            if manual
            else "check the network connection, or prepare the dataset on a machine with "
            "network access and copy its folder into data_dir"
        )
        raise DataError(
            f"Could not download and prepare the tensorflow-datasets dataset {name!r} into "
            f"{builder.data_dir} ({type(error).__name__}: {first_line}). To fix: {advice}; "
            "or use the built-in dataset 'shapes', which needs no download. "
            f"Received: source={name!r}, data_dir={data_dir!r}, download=True"
        ) from error


def _features(builder, name):
    """The (image key, label key) of an image classification dataset."""
    features = builder.info.features
    keys = builder.info.supervised_keys
    if keys and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        image_key, label_key = keys
    else:
        image_key = next((k for k, f in features.items()
                          if isinstance(f, tfds.features.Image)), None)
        label_key = next((k for k, f in features.items()
                          if isinstance(f, tfds.features.ClassLabel)), None)
    if (image_key not in features or label_key not in features
            or not isinstance(features[image_key], tfds.features.Image)
            or not isinstance(features[label_key], tfds.features.ClassLabel)):
        raise DataError(
            f"{name!r} is not an image classification dataset: kerasnets needs an Image "
            f"feature and a ClassLabel feature. Its features: {list(features)}. "
            f"Received: source={name!r}"
        )
    return image_key, label_key


def _not_prepared(name, root, builder, data_dir):
    return DataError(
        f"The tensorflow-datasets dataset {name!r} is not prepared in {root} "
        f"(looked for {builder.data_dir}) and download=False. To fix: download and "
        "prepare it once with download=True (CLI: --download; needs network access), "
        "point data_dir (CLI: --data-dir) at the directory that holds it, or use the "
        "built-in dataset 'shapes', which needs no download. "
        f"Received: source={name!r}, data_dir={data_dir!r}"
    )


def _bad_split(name, split, info, error=None):
    available = ", ".join(sorted(info.splits.keys())) or "unknown"
    detail = f" ({str(error).splitlines()[0]})" if error is not None else ""
    return DataError(
        f"The dataset {name!r} has no split {split!r}{detail}. Available splits: "
        f"{available}; slices such as 'train[:90%]' work too. Received: split={split!r}"
    )


def tfds_records(name, split, *, data_dir=None, download=False) -> Records:
    """The `Records` of ``split`` of the tfds dataset ``name``, preparing it if allowed."""
    root = _data_root(data_dir)
    builder = _make_builder(name, root)
    if not builder.is_prepared():
        if _base_name(name) in BUILTIN_DATASETS:
            _prepare_builtin(builder, name, root)
        elif download:
            _download(builder, name, data_dir)
        # A fresh builder reads the split metadata just written (maybe by another
        # process while this one waited for the lock).
        builder = _make_builder(name, root)

    info = builder.info
    image_key, label_key = _features(builder, name)
    decoders = {image_key: tfds.decode.SkipDecoding()}
    num_examples = None
    if info.splits.keys():
        try:
            num_examples = info.splits[split].num_examples
        except (KeyError, ValueError) as error:
            raise _bad_split(name, split, info, error) from None
    # Reading is lazy and cheap; it is also how an unprepared dataset shows (and how
    # tfds.testing.mock_data, which has no split metadata, is supported).
    try:
        probe = builder.as_dataset(split=split, decoders=decoders)
    except AssertionError:
        if not builder.is_prepared():
            raise _not_prepared(name, root, builder, data_dir) from None
        raise
    except (KeyError, ValueError) as error:
        raise _bad_split(name, split, info, error) from None
    if num_examples is None:
        num_examples = int(probe.cardinality())
    if num_examples <= 0:
        raise DataError(f"The split {split!r} of {name!r} is empty. Received: split={split!r}")

    shape = info.features[image_key].shape
    native = shape[0] if shape[0] and shape[0] == shape[1] else None

    def make_dataset(shuffle, seed):
        ds = builder.as_dataset(
            split=split,
            shuffle_files=shuffle,
            decoders=decoders,
            read_config=tfds.ReadConfig(shuffle_seed=seed, try_autocache=False),
        )
        return ds.map(
            lambda ex: (ex[image_key], tf.cast(ex[label_key], tf.int32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    return Records(
        make_dataset=make_dataset,
        class_names=list(info.features[label_key].names),
        num_examples=int(num_examples),
        native_size=native,
        description=f"tfds:{info.full_name} in {root}",
    )
