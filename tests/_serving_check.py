"""Runs exported SavedModels in a fresh process that imports only TensorFlow and NumPy.

Used by tests/test_export.py: ``python _serving_check.py JOBS.json REPORT.json``.
Each job names a SavedModel, a signature and its inputs (a ``.npy`` of uint8
images, or image files whose bytes are sent); the outputs are written to the
job's ``.npz``. Importing kerasnets is blocked, so a SavedModel that needed it
would fail here.
"""

import importlib.abc
import json
import sys


class _BlockKerasnets(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "kerasnets" or name.startswith("kerasnets."):
            raise ImportError(f"{name} must not be imported when serving a SavedModel")
        return None


sys.meta_path.insert(0, _BlockKerasnets())

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(jobs_file, report_file):
    with open(jobs_file) as f:
        jobs = json.load(f)
    loaded = {}
    for job in jobs:
        if job["path"] not in loaded:
            loaded[job["path"]] = tf.saved_model.load(job["path"])
        signature = loaded[job["path"]].signatures[job["signature"]]
        if "images" in job:
            outputs = signature(images=tf.constant(np.load(job["images"])))
        else:
            outputs = signature(image_bytes=tf.stack([tf.io.read_file(f) for f in job["files"]]))
        arrays = {
            key: value.numpy().astype(str) if value.dtype == tf.string else value.numpy()
            for key, value in outputs.items()
        }
        np.savez(job["output"], **arrays)
    report = {
        "kerasnets_modules": sorted(m for m in sys.modules if m.split(".")[0] == "kerasnets"),
        "signatures": {path: sorted(obj.signatures) for path, obj in loaded.items()},
    }
    with open(report_file, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
