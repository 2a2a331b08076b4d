"""SavedModel and TFLite from a model of any backend: the conversion runs under TensorFlow.

Both formats are TensorFlow graphs, which only the TensorFlow backend can trace
(under JAX the model's call inside a `tf.function` fails with ``Cannot convert a
symbolic tf.Tensor ... to a numpy array``; TFLite with ``TracerArrayConversionError``
under JAX and ``add_endpoint is not supported`` under torch). Keras imports one
backend per process, so under JAX or PyTorch `saved_model` and `tflite` save the
model as a ``.keras`` file (backend-neutral) and convert it in a child process
started with ``KERAS_BACKEND=tensorflow``. Same files, same metadata; the
arguments must be plain data (a `Preprocessing` is sent as its ``to_dict()``;
``check_images`` as a list).

The child is ``python -m kerasnets.export._backend REQUEST.json``; it prints its
result as one JSON line. So that it runs once, with no runpy warning that it was found in
``sys.modules`` before running, the package imports this module inside the functions that
use it (`saved_model`, `tflite`, `onnx`), not when it loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import kerasnets.models  # noqa: F401  (registers the layers the child's load_model reads)
from kerasnets.export._atomic import check_destination

__all__ = ["needs_tensorflow", "export_in_tensorflow"]

_RESULT = "KERASNETS_EXPORT_RESULT "


def needs_tensorflow() -> bool:
    import keras

    return keras.backend.backend() != "tensorflow"


def _plain(value):
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def export_in_tensorflow(format, model, path, kwargs, *, timeout=None):
    """Writes ``kerasnets.export.export(model, path, format, **kwargs)`` from a TensorFlow child.

    Raises:
        RuntimeError: the conversion failed (its last error line is the message).
    """
    import keras

    # The destination is checked here, before any work (the child checks it again).
    check_destination(path, overwrite=kwargs.get("overwrite", False),
                      kind="dir" if format == "saved_model" else "file")
    with tempfile.TemporaryDirectory(prefix="kerasnets-export-") as tmp:
        source = os.path.join(tmp, "model.keras")
        model.save(source)
        request = {"format": format, "source": source, "path": os.path.abspath(os.fspath(path)),
                   "kwargs": {k: _plain(v) for k, v in kwargs.items()}}
        request_file = os.path.join(tmp, "request.json")
        with open(request_file, "w", encoding="utf-8") as f:
            json.dump(request, f)
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        print(f"Converting to {format} under the TensorFlow backend (this model is "
              f"{keras.backend.backend()}'s) ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, "-m", "kerasnets.export._backend", request_file],
                              capture_output=True, text=True, env=env, timeout=timeout)
    for line in done.stdout.splitlines():
        if line.startswith(_RESULT):
            return json.loads(line[len(_RESULT):])
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    raise RuntimeError(
        f"The {format} conversion under the TensorFlow backend failed (exit {done.returncode}): "
        + (lines[-1] if lines else "no output")
    )


def _child(request_file):
    with open(request_file, encoding="utf-8") as f:
        request = json.load(f)
    import keras
    import numpy as np

    from kerasnets import export  # a cycle: kerasnets.export imports this module

    model = keras.models.load_model(request["source"], compile=False)
    kwargs = dict(request["kwargs"])
    if kwargs.get("check_images") is not None:
        kwargs["check_images"] = np.asarray(kwargs["check_images"], np.uint8)
    result = export.export(model, request["path"], request["format"], **kwargs)
    print(_RESULT + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    _child(sys.argv[1])
