"""Helper of test_train_cli.py: a training run that SIGKILLs itself mid-run.

Usage: ``python tests/_train_and_die.py '<json kwargs of kerasnets.training.train>' EPOCH``

Trains exactly as ``kerasnets train`` would with the same arguments, and kills
itself with SIGKILL at the end of epoch ``EPOCH`` (1-based) after the CSV row,
the checkpoint and the TensorBoard logs of that epoch are written but before
the epoch commits to the backup: the worst moment, since a resumed run must
then run that epoch again without duplicating its log row.
"""

import json
import os
import signal
import sys

import keras

from kerasnets import training


class KillAtEpochEnd(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    kwargs = json.loads(sys.argv[1])
    training.train(**kwargs, callbacks=[KillAtEpochEnd(int(sys.argv[2]))])
    sys.exit("the run was not killed")
