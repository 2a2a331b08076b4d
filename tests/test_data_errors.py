"""kerasnets.data errors: one clear message (ending with "Received: ..."), no deep stack trace.

Nothing downloads: the "no network" case replaces tfds' download with one that fails.
"""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from _data_fixtures import shapes_data_dir, write_id_folder, write_image  # noqa: F401

import kerasnets.data as kd
from kerasnets.data import DataError, _tfds


def _error(**kwargs):
    source = kwargs.pop("source")
    split = kwargs.pop("split", "train")
    with pytest.raises(DataError) as info:
        kd.load(source, split, **kwargs)
    message = str(info.value)
    assert "Received:" in message
    return message


# ---------------------------------------------------------------------------
# tensorflow-datasets names.
# ---------------------------------------------------------------------------


def test_tfds_dataset_not_prepared_and_no_download(tmp_path):
    message = _error(source="cifar10", data_dir=str(tmp_path))
    assert str(tmp_path) in message  # where it looked
    assert "download=True" in message and "--data-dir" in message and "'shapes'" in message


def test_tfds_download_that_fails_is_explained(tmp_path, monkeypatch):
    def no_network(self, *args, **kwargs):
        raise ConnectionError("Failed to establish a new connection: Network is unreachable")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_network)
    monkeypatch.setattr(_tfds, "_network_available", lambda: True)
    message = _error(source="mnist", data_dir=str(tmp_path), download=True)
    assert "Could not download" in message and "Network is unreachable" in message
    assert str(tmp_path) in message and "'shapes'" in message


def test_no_network_fails_fast_with_a_clear_error(tmp_path, monkeypatch):
    def must_not_run(self, *args, **kwargs):
        raise AssertionError("download attempted without network")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", must_not_run)
    monkeypatch.setattr(_tfds, "_network_available", lambda: False)
    message = _error(source="mnist", data_dir=str(tmp_path), download=True)
    assert "no network access" in message and "--data-dir" in message and "'shapes'" in message


def test_unknown_dataset_name_suggests_close_names(tmp_path):
    message = _error(source="cifar1O", data_dir=str(tmp_path))
    assert "Unknown data source" in message and "cifar10" in message
    assert "shapes" in _error(source="shape", data_dir=str(tmp_path))


def test_split_that_does_not_exist(shapes_data_dir):
    message = _error(source="shapes", split="valid", data_dir=shapes_data_dir)
    assert "no split 'valid'" in message and "train, validation" in message.replace("test, ", "")
    _error(source="shapes", split="train[:200%]", data_dir=shapes_data_dir)


def test_unknown_shapes_config(shapes_data_dir):
    message = _error(source="shapes/33", data_dir=shapes_data_dir)
    assert "shapes/33" in message


# ---------------------------------------------------------------------------
# Folders.
# ---------------------------------------------------------------------------


def test_missing_folder(tmp_path):
    assert "does not exist" in _error(source=str(tmp_path / "nowhere"))


def test_empty_folder(tmp_path):
    message = _error(source=str(tmp_path))
    assert "No images found" in message and "root/<class>/<image>" in message


def test_images_without_class_folders(tmp_path):
    write_image(str(tmp_path / "a.png"), np.zeros((8, 8, 3)))
    assert "need a class folder" in _error(source=str(tmp_path))


def test_folder_with_one_class(tmp_path):
    write_id_folder(str(tmp_path), classes=("only",), per_class=3)
    message = _error(source=str(tmp_path))
    assert "1 class folder" in message and "at least 2" in message


def test_unreadable_images(tmp_path):
    write_id_folder(str(tmp_path), classes=("a", "b"), per_class=2)
    (tmp_path / "a" / "notes.jpg").write_text("this is not an image")
    (tmp_path / "b" / "empty.png").write_bytes(b"")
    message = _error(source=str(tmp_path), split="all")
    assert "2 of 6" in message and "notes.jpg" in message and "empty.png is empty" in message
    # verify=None skips the check (the caller takes responsibility).
    assert kd.load(str(tmp_path), "all", verify=None).num_examples == 6


def test_truncated_image_caught_by_full_verification(tmp_path):
    write_id_folder(str(tmp_path), classes=("a", "b"), per_class=2)
    good = (tmp_path / "a" / "000.png").read_bytes()
    (tmp_path / "b" / "cut.png").write_bytes(good[: len(good) // 2])
    assert kd.load(str(tmp_path), "all").num_examples == 5  # the header is fine
    message = _error(source=str(tmp_path), split="all", verify="full")
    assert "cut.png cannot be decoded" in message


def test_folder_split_that_does_not_exist(tmp_path):
    write_id_folder(str(tmp_path / "flat"), classes=("a", "b"), per_class=2)
    message = _error(source=str(tmp_path / "flat"), split="test")
    assert "train, validation, all" in message
    assert "train, all" in _error(source=str(tmp_path / "flat"), split="validation",
                                  validation_fraction=0.0)
    write_id_folder(str(tmp_path / "nested" / "train"), classes=("a", "b"), per_class=2)
    write_id_folder(str(tmp_path / "nested" / "val"), classes=("a", "b"), per_class=1)
    message = _error(source=str(tmp_path / "nested"), split="test")
    assert "no 'test' split folder" in message and "train, validation" in message


def test_split_folder_with_a_class_that_train_lacks(tmp_path):
    write_id_folder(str(tmp_path / "train"), classes=("a", "b"), per_class=2)
    write_id_folder(str(tmp_path / "val"), classes=("a", "zebra"), per_class=1)
    assert "zebra" in _error(source=str(tmp_path), split="validation")


# ---------------------------------------------------------------------------
# Arguments are checked before any work (a plain ValueError, not a DataError).
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(image_size="big"), "image_size"),
        (dict(augment="mixup"), "augment"),
        (dict(seed="x"), "seed"),
        (dict(crop_fraction=0.0), "crop_fraction"),
        (dict(preprocessing="zscore"), "preprocessing"),
        (dict(validation_fraction=1.0), "validation_fraction"),
        (dict(verify="maybe"), "verify"),
        (dict(cache=3), "cache"),
    ],
)
def test_bad_arguments(kwargs, needle, tmp_path):
    with pytest.raises(ValueError, match=needle) as info:
        kd.load(str(tmp_path / "does-not-exist"), **kwargs)  # the folder is never looked at
    assert not isinstance(info.value, DataError)
    assert "Received:" in str(info.value)


def test_unknown_model_name(tmp_path):
    with pytest.raises(ValueError, match="Unknown model"):
        kd.load(str(tmp_path), model="resnet5000")
