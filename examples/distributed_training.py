# %% [markdown]
# # Every GPU, mixed precision, and a run that survives interruption
#
# Three things a long training run needs, and how kerasnets does them:
#
# * **all the GPUs of the machine**: `tf.distribute.MirroredStrategy` keeps a copy of the
#   model on each GPU, splits every global batch between them and averages the gradients;
# * **mixed precision**: `mixed_float16` on GPUs with tensor cores (Volta and later:
#   Colab's T4, A100, ...), `mixed_bfloat16` on TPUs and on CPUs that compute bfloat16
#   natively; variables stay float32, and Keras scales the float16 loss for you;
# * **resumable training**: after every epoch the run folder gets a backup of the model and
#   optimizer state (written atomically); running the same command again, after a crash or
#   a preempted Colab session, continues from the last completed epoch.
#
# `kerasnets.training.train` (and the `kerasnets train` command) does all three. This example
# shows what it chooses, then trains, interrupts the run on purpose, and resumes it.
#
# * `python examples/distributed_training.py`: ResNet-56 on CIFAR-10 (downloaded) for 30
#   epochs, on every GPU.
# * `--quick` (or `KERASNETS_QUICK=1` for the notebook): a slim ResNet-20 for 3 epochs on a
#   slice of the built-in `shapes`; without GPUs, MirroredStrategy mirrors over the CPU.

# %%
import argparse
import os
import sys

parser = argparse.ArgumentParser(description="MirroredStrategy, mixed precision and resumable training.")
parser.add_argument("--quick", action="store_true", default=os.environ.get("KERASNETS_QUICK") == "1",
                    help="a slim ResNet-20, 3 epochs on a slice of `shapes` (no download): a CPU smoke run")
parser.add_argument("--model", default=None, help="a registered model (default resnet56, or resnet20 with --quick)")
parser.add_argument("--epochs", type=int, default=None, help="default 30, or 3 with --quick")
parser.add_argument("--batch-size-per-replica", type=int, default=None, help="default 128, or 16 with --quick")
parser.add_argument("--interrupt-at", type=int, default=2,
                    help="stop the first run after this many epochs, to show the resume (0: no interruption)")
parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data_dir")
parser.add_argument("--output", default="outputs/distributed_training", help="the run folder")
# In a notebook the command line is the kernel's: the defaults above apply (edit them here).
IN_NOTEBOOK = "ipykernel" in sys.modules
args = parser.parse_args(args=[] if IN_NOTEBOOK else None)

QUICK = args.quick
MODEL = args.model or ("resnet20" if QUICK else "resnet56")
EPOCHS = args.epochs or (3 if QUICK else 30)
PER_REPLICA = args.batch_size_per_replica or (16 if QUICK else 128)

# %% [markdown]
# ## What runs where
#
# `setup_hardware(strategy="mirrored")` mirrors over every GPU (or, without GPUs, over the
# logical CPU devices: `training.strategy.split_cpu(2)`, called at the very start of a
# process, makes two of them to try it). A model built in `strategy.scope()` under the mixed
# policy keeps float32 variables and computes in the low precision; its classifier computes
# in float32.

# %%
from kerasnets import training

hardware = training.setup_hardware(strategy="mirrored", precision="auto")
print(hardware.describe())
print("replica devices:", list(hardware.strategy.extended.worker_devices))
GLOBAL_BATCH = PER_REPLICA * hardware.replicas
print(f"global batch {GLOBAL_BATCH} = {PER_REPLICA} per replica x {hardware.replicas} replicas")

# %%
import keras

import kerasnets

with hardware.strategy.scope():
    probe = kerasnets.get_model(MODEL, width_multiplier=0.25 if QUICK else 1.0)
conv = probe.get_layer("conv1_conv")
print(f"policy {keras.mixed_precision.global_policy().name}: {conv.name} computes in {conv.compute_dtype}, "
      f"its kernel is {conv.kernel.dtype}; the classifier computes in {probe.get_layer('predictions').compute_dtype}")
print(f"its variable is a {type(conv.kernel.value).__name__}: one synchronised copy per replica")
del probe

# %% [markdown]
# ## A run, interrupted
#
# `training.train` writes everything to the run folder: `run.json` (what and how),
# `log.csv`, `curves.png`, TensorBoard logs, the best checkpoint, the final model, and
# `backup/` (the resume state). A callback stands in for a crash or a preemption: it
# raises at the start of epoch `--interrupt-at` + 1, after that many epochs are backed up.

# %%
class Preempted(Exception):
    """The interruption we simulate."""


class PreemptAt(keras.callbacks.Callback):
    def __init__(self, completed_epochs):
        super().__init__()
        self.completed_epochs = completed_epochs

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.completed_epochs:
            raise Preempted(f"preempted after {epoch} epochs")


if QUICK:
    dataset, splits = "shapes", dict(train_split="train[:128]", validation_split="validation[:64]", test_split="test[:64]")
else:
    dataset, splits = "cifar10", dict(train_split="train", validation_split="test", test_split="test")
options = dict(
    epochs=EPOCHS, batch_size=GLOBAL_BATCH, strategy="mirrored", precision="auto", output=args.output,
    model_kwargs={"width_multiplier": 0.25} if QUICK else {}, data_dir=args.data_dir, download=not QUICK,
    seed=0, export=False, verbose=2, **splits,
)
if 0 < args.interrupt_at < EPOCHS:
    try:
        training.train(MODEL, dataset, overwrite=True, callbacks=[PreemptAt(args.interrupt_at)], **options)
    except Preempted as error:
        print(f"\n*** {error} ***")
    state = training.callbacks.BackupAndRestore(os.path.join(args.output, "backup")).read_state()
    print(f"the backup holds {state['epoch']} completed epochs")

# %% [markdown]
# ## The same call again resumes
#
# Same model, dataset and settings, same output folder: the run continues after the last
# backed-up epoch (the banner says so) and ends with `EPOCHS` epochs in all. From a shell
# the same run is:
#
# ```
# kerasnets train resnet56 --dataset cifar10 --download --strategy mirrored --precision auto \
#     --batch-size 256 --epochs 30 --output runs/resnet56-cifar10     # run it again to resume
# ```

# %%
result = training.train(MODEL, dataset, **options)
print(result)

# %%
from kerasnets.training.callbacks import CSVLog

rows = CSVLog.read(result.files["log"])
print("epochs in log.csv:", [int(row["epoch"]) for row in rows])
assert [int(row["epoch"]) for row in rows] == list(range(1, EPOCHS + 1))
if IN_NOTEBOOK:
    from IPython.display import Image, display

    display(Image(result.files["curves"]))
