# %% [markdown]
# # Transfer learning on a folder of images, in two phases
#
# A kerasnets backbone built with `include_top=False` and `pooling="avg"` gives one feature
# vector per image; a new classifier goes on top. Training follows the usual two phases:
#
# 1. **the head alone**, the backbone frozen, at a normal learning rate;
# 2. **fine-tuning**: the backbone's last stage unfrozen, at a learning rate a hundred
#    times smaller, BatchNorm kept in inference mode so that its statistics survive.
#
# The data is any folder laid out as `root/<class name>/<image>` (JPEG, PNG, ...):
# `kerasnets.data.load(folder, "train")` holds out a stable 20% of each class as the
# `"validation"` split and applies the backbone's own preprocessing.
#
# **Pretrained weights.** `weights="imagenet"` loads the model's ImageNet preset (for
# InceptionV3, keras.applications' published file, converted exactly); the data is then
# normalised as those weights expect: `kerasnets.weights.preprocessing_for(model, weights)`.
#
# * `python examples/transfer_learning.py --data PATH`: your folder (default: the
#   TensorFlow flower photos, 3,670 images in 5 classes, downloaded), InceptionV3 with the
#   ImageNet weights, 299×299; a Colab GPU.
# * `--quick` (or `KERASNETS_QUICK=1` for the notebook): the example writes a small folder
#   of PNG images itself and uses a slim, randomly initialised ResNet-18 at 64×64: a CPU
#   check of the code, not of transfer learning.

# %%
import argparse
import os
import sys

parser = argparse.ArgumentParser(description="A kerasnets backbone, a new head, two-phase fine-tuning on an image folder.")
parser.add_argument("--quick", action="store_true", default=os.environ.get("KERASNETS_QUICK") == "1",
                    help="a generated folder of images and a slim random ResNet-18: a CPU smoke run")
parser.add_argument("--data", default=None,
                    help="a folder root/<class>/<image> (default: the TensorFlow flower photos, downloaded)")
parser.add_argument("--backbone", default=None, help="a registered model (default inception_v3, or resnet18 with --quick)")
parser.add_argument("--weights", default="auto",
                    help="'imagenet' (the backbone's ImageNet preset), another preset name, a .weights.h5 file "
                         "of the backbone, or 'none'; 'auto': imagenet, none with --quick")
parser.add_argument("--image-size", type=int, default=None, help="default: the backbone's (299), or 64 with --quick")
parser.add_argument("--epochs", type=int, nargs=2, default=None, metavar=("HEAD", "FINE_TUNE"),
                    help="epochs of each phase (default 5 5, or 1 1 with --quick)")
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--output", default="outputs/transfer_learning", help="where the plot and the model are written")
# In a notebook the command line is the kernel's: the defaults above apply (edit them here).
IN_NOTEBOOK = "ipykernel" in sys.modules
args = parser.parse_args(args=[] if IN_NOTEBOOK else None)

QUICK = args.quick
BACKBONE = args.backbone or ("resnet18" if QUICK else "inception_v3")
WEIGHTS = args.weights
if WEIGHTS == "auto":
    WEIGHTS = "none" if QUICK else "imagenet"
WEIGHTS = None if WEIGHTS == "none" else WEIGHTS
HEAD_EPOCHS, FINE_TUNE_EPOCHS = args.epochs or ((1, 1) if QUICK else (5, 5))
os.makedirs(args.output, exist_ok=True)

# %% [markdown]
# ## The folder of images

# %%
import keras
import numpy as np

import kerasnets
import kerasnets.data
from kerasnets import training

FLOWERS = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"


def class_folder_root(path):
    """The first folder under ``path`` whose subfolders (two or more) hold the images."""
    for folder, subfolders, _ in os.walk(path):
        if len(subfolders) >= 2 and all(
            any(f.lower().endswith(kerasnets.data.IMAGE_EXTENSIONS) for f in os.listdir(os.path.join(folder, s)))
            for s in subfolders
        ):
            return folder
    raise ValueError(f"No folder of class subfolders with images under {path}. Received: {path!r}")


def write_example_folder(root, classes=("circle", "square", "triangle", "star"), per_class=24, size=48):
    """A small image folder: PNGs of a few of the built-in shapes, root/<class>/<n>.png."""
    from PIL import Image

    from kerasnets.data.shapes import CLASS_NAMES, render_shapes

    rng = np.random.default_rng(0)
    for name in classes:
        os.makedirs(os.path.join(root, name), exist_ok=True)
        images = render_shapes([CLASS_NAMES.index(name)] * per_class, size, rng)
        for i, image in enumerate(images):
            Image.fromarray(image).save(os.path.join(root, name, f"{i:03d}.png"))
    return root


if args.data:
    folder = args.data
elif QUICK:
    folder = write_example_folder(os.path.join(args.output, "images"))
else:
    folder = class_folder_root(keras.utils.get_file("flower_photos.tgz", FLOWERS, extract=True))  # the extracted folder
print(f"images from {folder}: " + ", ".join(
    f"{name} ({len(os.listdir(os.path.join(folder, name)))})" for name in sorted(os.listdir(folder))
    if os.path.isdir(os.path.join(folder, name))
))

hardware = training.setup_hardware()
print(hardware.describe())
info = kerasnets.get_model_info(BACKBONE)
IMAGE_SIZE = args.image_size or (64 if QUICK else info.default_size)
# The preprocessing the weights were trained with (the backbone's own without weights).
load = dict(image_size=IMAGE_SIZE, batch_size=args.batch_size, model=BACKBONE, validation_fraction=0.2,
            preprocessing=kerasnets.weights.preprocessing_for(BACKBONE, WEIGHTS))
train = kerasnets.data.load(folder, "train", seed=0, **load)
val = kerasnets.data.load(folder, "validation", **load)
print(f"{train.num_examples} training / {val.num_examples} validation images, classes {train.class_names}, "
      f"{IMAGE_SIZE}×{IMAGE_SIZE}, preprocessing {train.preprocessing.name}, augmentation {train.augment}")

# %% [markdown]
# ## The backbone and its weights

# %%
input_shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
with hardware.strategy.scope():
    backbone = kerasnets.get_model(BACKBONE, include_top=False, pooling="avg", input_shape=input_shape,
                                   weights=WEIGHTS, **({"width_multiplier": 0.25} if QUICK else {}))

print(f"{BACKBONE}: {backbone.count_params():,} parameters, features of size {backbone.output_shape[-1]}, weights {WEIGHTS}")

# %% [markdown]
# ## Phase 1: the new head
#
# The backbone is called with `training=False`: its BatchNorm layers use their moving
# statistics in both phases, whatever is trainable.

# %%
with hardware.strategy.scope():
    inputs = keras.Input(input_shape)
    features = backbone(inputs, training=False)
    features = keras.layers.Dropout(0.2, name="head_dropout")(features)
    outputs = keras.layers.Dense(train.num_classes, activation="softmax", dtype="float32", name="head")(features)
    model = keras.Model(inputs, outputs, name=f"{BACKBONE}_transfer")
    backbone.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=hardware.jit_compile)
trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
print(f"phase 1: {trainable:,} trainable parameters (the head)")
phase1 = model.fit(train.dataset, validation_data=val.dataset, epochs=HEAD_EPOCHS, shuffle=False, verbose=2)

# %% [markdown]
# ## Phase 2: fine-tuning the last stage
#
# The last stage is found by its layer names (`mixed7*` in Inception v3, `conv5_*` in the
# ImageNet ResNets, `block5_*` in VGG, `inception_5*` in GoogLeNet); BatchNorm layers stay
# frozen. The optimizer is compiled again, with a learning rate 100 times smaller.

# %%
LAST_STAGE = {"inception": "mixed7", "resnet": "conv5_", "vgg": "block5_", "googlenet": "inception_5"}
prefix = LAST_STAGE.get(info.family)
if prefix is None:
    raise ValueError(f"No last stage known for the {info.family} family. Received: backbone={BACKBONE!r}")
with hardware.strategy.scope():
    backbone.trainable = True
    for layer in backbone.layers:
        layer.trainable = layer.name.startswith(prefix) and not isinstance(layer, keras.layers.BatchNormalization)
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=hardware.jit_compile)
trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
print(f"phase 2: {trainable:,} trainable parameters (the head and {prefix}*)")
phase2 = model.fit(train.dataset, validation_data=val.dataset, initial_epoch=HEAD_EPOCHS,
                   epochs=HEAD_EPOCHS + FINE_TUNE_EPOCHS, shuffle=False, verbose=2)

# %%
import matplotlib.pyplot as plt

logs = {k: phase1.history[k] + phase2.history[k] for k in ("accuracy", "val_accuracy")}
epochs = range(1, len(logs["accuracy"]) + 1)
figure, axes = plt.subplots(figsize=(7, 4))
axes.plot(epochs, logs["accuracy"], "--o", label="training")
axes.plot(epochs, logs["val_accuracy"], "-o", label="validation")
axes.axvline(HEAD_EPOCHS + 0.5, color="gray", linestyle=":")
axes.text(HEAD_EPOCHS + 0.6, min(logs["accuracy"] + logs["val_accuracy"]), "fine-tuning starts", color="gray")
axes.set_xlabel("epoch")
axes.set_ylabel("accuracy")
axes.set_title(f"{BACKBONE} ({WEIGHTS} weights) on {os.path.basename(os.path.normpath(folder))}")
axes.grid(True, alpha=0.3)
axes.legend()
figure.tight_layout()
plot_path = os.path.join(args.output, "transfer_learning.png")
figure.savefig(plot_path, dpi=120)
print(f"wrote {plot_path}")
if IN_NOTEBOOK:
    plt.show()
plt.close(figure)

# %% [markdown]
# ## The result
#
# The fine-tuned model is a plain Keras model: save it, or export it for serving with
# `kerasnets.export.saved_model(model, path, class_names=...)`. It holds the backbone's model
# card (`kerasnets.model_card(model)`), so the export normalises images as the backbone's
# weights expect.

# %%
result = model.evaluate(val.dataset, verbose=0, return_dict=True)
print(f"validation accuracy {result['accuracy']:.3f} after {HEAD_EPOCHS} + {FINE_TUNE_EPOCHS} epochs")
images, labels = next(iter(val.dataset))
predicted = model.predict(images[:8], verbose=0).argmax(axis=-1)
for label, guess in zip(labels[:8].numpy(), predicted):
    print(f"  {train.class_names[label]:>12} -> {train.class_names[guess]}")
model_path = os.path.join(args.output, "model.keras")
model.save(model_path)
print(f"wrote {model_path}")
