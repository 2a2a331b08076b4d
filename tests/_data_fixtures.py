"""Fixtures for the data tests: a prepared ``shapes`` and image folders written by the test.

Import the fixtures into a test module (``from _data_fixtures import shapes_data_dir``).
``shapes_data_dir`` is prepared once per test session and shared by pytest-xdist
workers (the preparation is locked, so only one worker generates it).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    """A tfds ``data_dir`` holding the prepared ``shapes/32``; nothing downloads."""
    import kerasnets.data

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the workers of this session
    data_dir = str(base / "tfds_shapes")
    # Preparing through load() exercises the automatic, locked preparation.
    kerasnets.data.load("shapes", "test", batch_size=1, data_dir=data_dir)
    return data_dir


def write_image(path, array, fmt=None):
    """Writes a uint8 array (H, W, C) or (H, W) as an image; the format follows the suffix."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(np.asarray(array, np.uint8))
    if fmt == "JPEG" or str(path).lower().endswith((".jpg", ".jpeg")):
        image.save(path, format="JPEG", quality=95)
    else:
        image.save(path)


def write_id_folder(root, classes=("bird", "cat", "dog"), per_class=10, size=(24, 40),
                    suffixes=(".png",), ids_start=1):
    """A folder ``root/<class>/<n><suffix>`` of constant images whose value is a unique id.

    PNG keeps the id exact, so after an evaluation transform with no normalisation
    every pixel of an image equals its id: tests can see which files a split holds.
    Returns ``{id: class_index}``.
    """
    ids = {}
    next_id = ids_start
    for label, name in enumerate(classes):
        for n in range(per_class):
            suffix = suffixes[n % len(suffixes)]
            write_image(os.path.join(root, name, f"{n:03d}{suffix}"),
                        np.full(size + (3,), next_id, np.uint8))
            ids[next_id] = label
            next_id += 1
    return ids


@pytest.fixture
def image_folder(tmp_path):
    """``root/<class>/<image>`` with JPEG and PNG images of varied sizes and modes."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    sizes = [(48, 64), (64, 48), (50, 50), (80, 120)]
    for label, name in enumerate(("apple", "banana", "cherry")):
        for n in range(6):
            h, w = sizes[n % len(sizes)]
            array = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            if n % 3 == 0:
                write_image(str(root / name / f"{n}.jpg"), array)
            elif n % 3 == 1:
                write_image(str(root / name / f"{n}.png"), array)
            else:  # grey and RGBA PNGs must come out as RGB too
                mode = array[..., 0] if n % 2 else np.dstack([array, np.full((h, w), 255, np.uint8)])
                write_image(str(root / name / f"{n}.PNG"), mode)
    return str(root)
