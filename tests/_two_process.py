"""One process of the two-process JAX test (tests/test_backends.py), or its single-process reference.

``KERAS_BACKEND=jax python tests/_two_process.py ROLE PORT DATA_DIR OUTPUT RESULT.npz``, ROLE
``0``/``1`` (a process of the two, coordinator on 127.0.0.1:PORT) or ``reference`` (one
process, one device, the same global batch). Each trains ResNet-20 with
`kerasnets.training.prepare(...).run()` for one epoch, then again with ``epochs=2`` on the
same run folder (a resume from the first epoch's backup), and saves the model's
variables (BatchNorm statistics included) after each phase.
"""

import json
import os
import sys

role, port, data_dir, output, result = sys.argv[1:6]

import numpy as np  # noqa: E402

from kerasnets.training import distribution  # noqa: E402

if role != "reference":
    distribution.initialize_processes(2, int(role), f"127.0.0.1:{port}", bind_address="127.0.0.1")

import keras  # noqa: E402

from kerasnets.training import _run  # noqa: E402

TINY = dict(model_kwargs={"width_multiplier": 0.25}, image_size=16, batch_size=32,
            train_split="train[:128]", validation_split="validation[:64]", test_split="test[:64]",
            seed=5, augment=None, precision="float32", export=False, verbose=0)

arrays, report = {}, {"process_index": distribution.process_index(),
                      "process_count": distribution.process_count()}
for phase, epochs in (("first", 1), ("resumed", 2)):
    run = _run.prepare("resnet20", "shapes", data_dir=data_dir, output=output, epochs=epochs, **TINY)
    report[f"{phase}_output"] = run.output
    report[f"{phase}_resume_epoch"] = run.resume_epoch
    report[f"{phase}_replicas"] = run.hardware.replicas
    run.run()
    report[f"{phase}_best_epoch"] = run.best_checkpoint.best_epoch
    for variable in run.model.variables:
        arrays[f"{phase}/{variable.path}"] = keras.ops.convert_to_numpy(variable)
np.savez(result, **arrays)
print(json.dumps(report), flush=True)
