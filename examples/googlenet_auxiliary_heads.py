# %% [markdown]
# # GoogLeNet and its auxiliary classifiers
#
# Szegedy et al., *Going Deeper with Convolutions* (2014), section 5: two small classifiers
# on the outputs of inception (4a) and (4d) add their losses, weighted 0.3, to the main
# loss while training, "to encourage discrimination in the lower stages ... increase the
# gradient signal that gets propagated back, and provide additional regularization". At
# inference time they are discarded.
#
# In kerasnets the model trained with them is a `keras.Model` with three outputs, a dict
# `{"main", "aux1", "aux2"}`, that takes **one label per image** and sends it to every
# head. This example trains it, plots each head's loss, then exports the inference model
# (main head only) as a SavedModel that serves raw images.
#
# * `python examples/googlenet_auxiliary_heads.py`: Imagenette (ten ImageNet classes,
#   downloaded by tensorflow-datasets) at 224×224, the paper's recipe; a Colab GPU.
# * `--quick` (or `KERASNETS_QUICK=1` for the notebook): a slim GoogLeNet at 79×79 (the
#   smallest input the auxiliary heads accept) on a slice of the built-in `shapes`, a few
#   CPU seconds per epoch.

# %%
import argparse
import os
import sys

parser = argparse.ArgumentParser(description="Train GoogLeNet with its auxiliary classifiers; export the inference model.")
parser.add_argument("--quick", action="store_true", default=os.environ.get("KERASNETS_QUICK") == "1",
                    help="a slim model, 2 epochs on a slice of `shapes` (no download): a CPU smoke run")
parser.add_argument("--model", default="googlenet", choices=["googlenet", "googlenet_bn"],
                    help="the paper's network (LRN, no BatchNorm) or the batch-normalised variant")
parser.add_argument("--dataset", default="imagenette/320px", help="a tensorflow-datasets name (not used with --quick)")
parser.add_argument("--epochs", type=int, default=None, help="default 30, or 2 with --quick")
parser.add_argument("--batch-size", type=int, default=None, help="global batch (default 64, or 32 with --quick)")
parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data_dir")
parser.add_argument("--output", default="outputs/googlenet_auxiliary_heads", help="where plots and the export are written")
# In a notebook the command line is the kernel's: the defaults above apply (edit them here).
IN_NOTEBOOK = "ipykernel" in sys.modules
args = parser.parse_args(args=[] if IN_NOTEBOOK else None)

QUICK = args.quick
EPOCHS = args.epochs or (2 if QUICK else 30)
BATCH_SIZE = args.batch_size or (32 if QUICK else 64)
IMAGE_SIZE = 79 if QUICK else 224
WIDTH = 0.125 if QUICK else 1.0
os.makedirs(args.output, exist_ok=True)

# %% [markdown]
# ## Data and hardware

# %%
import keras
import numpy as np

import kerasnets
import kerasnets.data
from kerasnets import training

hardware = training.setup_hardware()
print(hardware.describe())

if QUICK:
    source, train_split, val_split = "shapes", "train[:256]", "validation[:128]"
else:
    source, train_split, val_split = args.dataset, "train", "validation"
load = dict(image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, model=args.model, data_dir=args.data_dir,
            download=not QUICK)
train = kerasnets.data.load(source, train_split, seed=0, **load)
val = kerasnets.data.load(source, val_split, **load)
print(f"{source}: {train.num_examples} training / {val.num_examples} validation images, "
      f"{train.num_classes} classes, at {IMAGE_SIZE}×{IMAGE_SIZE}")

# %% [markdown]
# ## The model: three heads, one label
#
# With `include_top=True` GoogLeNet has its auxiliary classifiers; `training.compile_model` uses
# the paper's recipe (SGD with momentum 0.9, the learning rate decreased by 4% every 8
# epochs, auxiliary losses weighted 0.3), one loss for every head and metrics per head.

# %%
keras.utils.set_random_seed(0)
with hardware.strategy.scope():
    model = kerasnets.get_model(args.model, classes=train.num_classes, width_multiplier=WIDTH,
                                input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    recipe = training.compile_model(model, steps_per_epoch=train.steps_per_epoch, global_batch_size=BATCH_SIZE,
                                    epochs=EPOCHS, jit_compile=hardware.jit_compile)
print(f"outputs: {sorted(model.output_names)}; auxiliary loss weight {recipe.aux_loss_weight}")
profile = kerasnets.profile(model)
print(f"main path {profile.params:,} parameters, {profile.macs / 1e6:,.1f}M multiply-adds per image; "
      + ", ".join(f"{head} +{a['params']:,} parameters" for head, a in profile.aux.items()))

# %%
# shuffle=False: kerasnets.data shuffles the training split itself.
history = model.fit(train.dataset, validation_data=val.dataset, epochs=recipe.epochs,
                    callbacks=recipe.callbacks(), shuffle=False, verbose=2)
print(sorted(history.history))

# %% [markdown]
# ## Each head's loss
#
# `loss` is the total the optimizer minimises (main + 0.3 × aux1 + 0.3 × aux2, plus the
# weight decay penalty); `main_loss`, `aux1_loss` and `aux2_loss` are each head's own
# cross-entropy. The auxiliary heads sit lower in the network and usually end with a
# higher loss than the main one.

# %%
import matplotlib.pyplot as plt

logs = history.history
epochs = range(1, len(logs["loss"]) + 1)
figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for head, color in (("main", "tab:blue"), ("aux1", "tab:orange"), ("aux2", "tab:green")):
    left.plot(epochs, logs[f"{head}_loss"], "--", color=color, label=f"{head} train")
    left.plot(epochs, logs[f"val_{head}_loss"], "-", color=color, label=f"{head} validation")
    right.plot(epochs, logs[f"val_{head}_accuracy"], "-", color=color, label=f"{head} validation")
left.plot(epochs, logs["loss"], ":", color="black", label="total (train)")
left.set_title("loss per head")
right.set_title("validation accuracy per head")
for axes in (left, right):
    axes.set_xlabel("epoch")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
figure.tight_layout()
plot_path = os.path.join(args.output, "head_losses.png")
figure.savefig(plot_path, dpi=120)
print(f"wrote {plot_path}")
if IN_NOTEBOOK:
    plt.show()
plt.close(figure)

# %% [markdown]
# ## The inference model
#
# `kerasnets.inference_model` returns the single-output model that shares the trained
# layers of the main path: the auxiliary heads are gone, the main predictions unchanged.

# %%
serving_model = kerasnets.inference_model(model)
images, labels = next(iter(val.dataset))
with_heads = model.predict(images, verbose=0)["main"]
without = serving_model.predict(images, verbose=0)
print(f"{model.count_params():,} parameters with the auxiliary heads, {serving_model.count_params():,} without")
print(f"largest difference of the main predictions: {np.abs(with_heads - without).max():.2e}")
assert np.allclose(with_heads, without, atol=1e-5)

# %% [markdown]
# ## Export for serving
#
# `kerasnets.export.saved_model` writes a TensorFlow SavedModel of the inference model
# whose `serving_default` signature takes `uint8` RGB images of any size and applies the
# evaluation preprocessing (resize, central crop, GoogLeNet's mean subtraction) in the
# graph. Any TensorFlow process can serve it, without kerasnets.

# %%
import tensorflow as tf

export_path = os.path.join(args.output, "saved_model")
metadata = kerasnets.export.saved_model(model, export_path, class_names=train.class_names, overwrite=True)
print(f"wrote {export_path}: model input {metadata['input_size']}, preprocessing {metadata['preprocessing']['name']}")

served = tf.saved_model.load(export_path).signatures["serving_default"]
raw = tf.cast(tf.random.uniform((2, 120, 160, 3), 0, 256, dtype=tf.int32), tf.uint8)  # any size, uint8
outputs = served(images=raw)
print({name: tuple(value.shape) for name, value in outputs.items()})
print("top classes of the first image:", [name.decode() for name in outputs["top_k_class_names"][0].numpy()])
