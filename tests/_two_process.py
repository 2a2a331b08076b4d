"""One process of the two-process JAX test (tests/test_backends.py), or its single-process reference.

``KERAS_BACKEND=jax python tests/_two_process.py ROLE PORT DATA_DIR OUTPUT RESULT.npz PHASE``

ROLE is ``0`` or ``1`` (a process of the two, coordinator on 127.0.0.1:PORT) or
``reference`` (one process, one device, the same global batch). Each trains ResNet-20 with
`kerasnets.training.prepare(...).run()` on the run folder OUTPUT:

* PHASE ``die``: two epochs, and this process SIGKILLs itself at the end of the second,
  after epoch 1 committed to the backup and before epoch 2 does (the worst moment: the
  restart must run epoch 2 again). A process of the two leaves its peer alone, as a host
  that loses another host is; the reference saves its epoch-1 weights (``first/``, in
  RESULT with ``-first`` before ``.npz``).
* PHASE ``survive``: the peer of a ``die`` process (it cannot finish: its collectives lose
  their partner).
* PHASE ``resume``: two epochs on the same run folder in a new process, a restart after the
  kill (resumed from epoch 1's backup). It saves the model's variables, BatchNorm
  statistics included (``resumed/``), and prints a JSON report.
"""

import json
import os
import signal
import sys

role, port, data_dir, output, result, phase = sys.argv[1:7]

import numpy as np  # noqa: E402

from kerasnets.training import distribution  # noqa: E402

if role != "reference":
    # A survivor stops 10 s after its peer's last heartbeat (JAX's default: 100 s).
    distribution.initialize_processes(2, int(role), f"127.0.0.1:{port}", bind_address="127.0.0.1",
                                      heartbeat_timeout=10)

import keras  # noqa: E402

from kerasnets.training import _run  # noqa: E402

TINY = dict(model_kwargs={"width_multiplier": 0.25}, image_size=16, batch_size=32,
            train_split="train[:128]", validation_split="validation[:64]", test_split="test[:64]",
            seed=5, augment=None, precision="float32", export=False, verbose=0)


arrays, report = {}, {"process_index": distribution.process_index(),
                      "process_count": distribution.process_count()}


def keep(prefix, model):
    for variable in model.variables:
        arrays[f"{prefix}/{variable.path}"] = keras.ops.convert_to_numpy(variable)


class DieAtEpochEnd(keras.callbacks.Callback):
    """SIGKILL at the end of epoch 2, before the backup (the run's last callback) commits it."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0 and role == "reference":
            keep("first", self.model)
            np.savez(result.replace(".npz", "-first.npz"), **arrays)
        if epoch == 1:
            print(json.dumps({"dying": role}), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


run = _run.prepare("resnet20", "shapes", data_dir=data_dir, output=output, epochs=2,
                   callbacks=[DieAtEpochEnd()] if phase == "die" else [], **TINY)
report.update(output=run.output, resume_epoch=run.resume_epoch, replicas=run.hardware.replicas)
run.run()
if phase == "die":
    sys.exit("the run was not killed")
report["best_epoch"] = run.best_checkpoint.best_epoch
keep("resumed", run.model)
np.savez(result, **arrays)
print(json.dumps(report), flush=True)
