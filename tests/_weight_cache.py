"""Weight files placed in a test's own cache, as a user places a file by hand: the
presets load them through the same path as a download (nothing downloads in tests).

Import into a test module: ``from _weight_cache import place, weight_cache``
(``weight_cache`` is an autouse fixture: every test of the module gets an empty,
offline cache).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os

import h5py
import numpy as np
import pytest

import kerasnets
from kerasnets import registry
from kerasnets.weights import file_hash

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _script():
    """scripts/torchvision_fixtures.py: how the fixtures were recorded, how weights are drawn."""
    path = os.path.join(os.path.dirname(__file__), "..", "scripts", "torchvision_fixtures.py")
    spec = importlib.util.spec_from_file_location("torchvision_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()
META = json.load(open(os.path.join(FIXTURES, "torchvision.json")))


@pytest.fixture(autouse=True)
def weight_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASNETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERASNETS_OFFLINE", "1")
    os.makedirs(kerasnets.weights.cache_dir())
    return kerasnets.weights.cache_dir()


def use_preset(monkeypatch, preset):
    """Puts ``preset`` (a changed copy of one of its model's presets) in the registry, for one test."""
    entry = registry.get_entry(preset.model)
    presets = tuple(preset if p.name == preset.name else p for p in entry.presets)
    spec = dataclasses.replace(entry.spec, presets=presets)
    monkeypatch.setitem(registry._REGISTRY, entry.name, dataclasses.replace(entry, spec=spec))
    return preset


def place(monkeypatch, model_name, preset_name, include_top, write):
    """``write(path)`` writes a file under the preset's published name in the cache; the preset
    takes its hash (the test's random weights are not the published ones). Returns
    ``(path, preset)``."""
    preset = kerasnets.weights.get_preset(model_name, preset_name)
    field = "file" if include_top or preset.notop_file is None else "notop_file"
    file = getattr(preset, field)
    path = os.path.join(kerasnets.weights.cache_dir(), file.name)
    write(path)
    patched = dataclasses.replace(
        preset, **{field: dataclasses.replace(file, file_hash=file_hash(path, file.algorithm))}
    )
    return path, use_preset(monkeypatch, patched)


def randomize(model, seed=0):
    """Random weights of a plausible scale (BatchNorm variances positive)."""
    rng = np.random.default_rng(seed)
    values = []
    for w in model.weights:
        if "variance" in w.path:
            values.append(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
        else:
            scale = 1.0 / np.sqrt(np.prod(w.shape[:-1])) if len(w.shape) > 1 else 0.1
            values.append(rng.normal(0, scale, w.shape).astype("float32"))
    model.set_weights(values)


def write_legacy_h5(model, path, rename=None):
    """The Keras 2 HDF5 weights layout keras.applications' files have."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
        for old, new in (rename or {}).items():  # e.g. keras-applications' "probs"
            f.move(old, new)
            names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
            f.attrs["layer_names"] = [(new if n == old else n).encode() for n in names]


def drop_layers(path, prefixes):
    """The same file without some layers (keras.applications' no-top file is its
    top file without the classifier)."""
    with h5py.File(path, "a") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
        keep = [n for n in names if not n.startswith(prefixes)]
        for n in set(names) - set(keep):
            del f[n]
        f.attrs["layer_names"] = [n.encode() for n in keep]


def save_safetensors(state, path):
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, path)


def torchvision_state(model, seed=0, prefixes=None):
    """A torchvision state dict of ``model`` (its real key names and shapes) with weights drawn
    from ``seed``; only the keys that start with ``prefixes`` when given (``"features."``: the
    layers an ``include_top=False`` model loads)."""
    keys = [(k, tuple(s)) for k, s in META["state_dict_keys"][model]
            if prefixes is None or k.startswith(prefixes)]
    return SCRIPT.draw_state_dict(keys, seed)
