"""The package version, in one place (setup.cfg reads it from here), and the versions
record that runs and exports write (`versions`)."""

from __future__ import annotations

import importlib
import platform

__version__ = "0.1.0"


def backend_versions() -> dict:
    """The Keras backend library's version (``{"jax": "0.10.2"}``); ``{}`` under TensorFlow
    (`versions` names TensorFlow always)."""
    # Inside: `import kerasnets` imports this module before it quiets TensorFlow's start-up
    # (kerasnets._startup), so it imports neither Keras nor TensorFlow at its top.
    import keras

    name = keras.backend.backend()
    if name in ("jax", "torch"):
        return {name: importlib.import_module(name).__version__}
    return {}


def versions(*packages: str) -> dict:
    """What produced a run or an export: ``{"kerasnets", "keras", "tensorflow", <the backend
    library>, "python", <each of packages>: version}`` (run.json's and the export metadata's
    ``versions``). ``packages`` are importable names (``"onnx"``, ``"tf2onnx"``)."""
    import keras
    import tensorflow as tf  # every writer of a run or an export has TensorFlow loaded already

    return {
        "kerasnets": __version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        **backend_versions(),
        "python": platform.python_version(),
        **{name: importlib.import_module(name).__version__ for name in packages},
    }
