# %% [markdown]
# # Classify an image with ImageNet weights
#
# `kerasnets.GoogLeNet(weights="imagenet")` loads the model's ImageNet preset (here the
# Berkeley Caffe model of the paper's network, converted exactly: see the README's *Weights*
# section); `kerasnets.preprocess_input` normalises the image as those weights expect and
# `kerasnets.decode_predictions` names the 1,000 classes (shipped with the package). Any
# model with weights works the same way (`--model resnet50`, `--model alexnet`).
#
# * `python examples/classify_image.py [--image PATH] [--model googlenet] [--weights imagenet]`:
#   downloads the weights once (54 MB for GoogLeNet, kept in `~/.keras/kerasnets/weights`,
#   or `$KERASNETS_HOME/weights`) and, without `--image`, TensorFlow's sample photo of
#   Grace Hopper.
# * `--quick` (or `KERASNETS_QUICK=1` for the notebook): nothing downloads; the example
#   draws an image, writes a GoogLeNet weight file of random values itself and loads it
#   with `weights=PATH`: a check of the code, not of the classes it prints.

# %%
import argparse
import os
import sys

parser = argparse.ArgumentParser(description="The top-5 ImageNet classes of an image.")
parser.add_argument("--quick", action="store_true", default=os.environ.get("KERASNETS_QUICK") == "1",
                    help="a drawn image and a locally written random weight file: nothing downloads")
parser.add_argument("--image", default=None, help="an image file (default: TensorFlow's sample photo)")
parser.add_argument("--model", default="googlenet", help="a registered model with ImageNet weights")
parser.add_argument("--weights", default="imagenet", help="'imagenet', a preset name or a weight file")
parser.add_argument("--output", default="outputs/classify_image", help="where the image is copied")
# In a notebook the command line is the kernel's: the defaults above apply (edit them here).
IN_NOTEBOOK = "ipykernel" in sys.modules
args = parser.parse_args(args=[] if IN_NOTEBOOK else None)
os.makedirs(args.output, exist_ok=True)

# %% [markdown]
# ## The model and its weights

# %%
import keras
import numpy as np
from PIL import Image

import kerasnets

MODEL, WEIGHTS = args.model, args.weights
if args.quick:  # a weight file written here: random values, the loading code is the same
    MODEL = "googlenet"
    WEIGHTS = os.path.join(args.output, "googlenet_random.weights.h5")
    kerasnets.get_model(MODEL, weights=None).save_weights(WEIGHTS)
    WEIGHTS_FOR_PREPROCESSING = "imagenet"  # the input the real preset expects
else:
    WEIGHTS_FOR_PREPROCESSING = WEIGHTS
# GoogLeNet's weights come with its two auxiliary classifiers: classify with the main one.
model = kerasnets.inference_model(kerasnets.get_model(MODEL, weights=WEIGHTS))
preprocessing = kerasnets.weights.preprocessing_for(MODEL, WEIGHTS_FOR_PREPROCESSING)
size = model.input_shape[1]
print(f"{MODEL} with weights {WEIGHTS}: {model.count_params():,} parameters, {size}x{size} inputs, "
      f"preprocessing {preprocessing.name} (mean {preprocessing.mean}, std {preprocessing.std})")

# %% [markdown]
# ## The image, resized and centre-cropped as in evaluation
#
# The shorter side is resized to `size / crop_fraction` (256 for a 224 crop, or AlexNet's
# 227), then the centre `size × size` is kept.

# %%
if args.image:
    path = args.image
elif args.quick:
    from kerasnets.data.shapes import render_shapes

    path = os.path.join(args.output, "image.png")
    Image.fromarray(render_shapes([0], 256, np.random.default_rng(0))[0]).save(path)
else:
    path = keras.utils.get_file(
        "grace_hopper.jpg", "https://storage.googleapis.com/download.tensorflow.org/example_images/grace_hopper.jpg"
    )
image = Image.open(path).convert("RGB")
short = round(size / preprocessing.crop_fraction)
scale = short / min(image.size)
image = image.resize((max(short, round(image.width * scale)), max(short, round(image.height * scale))),
                     Image.BILINEAR)
left, top = (image.width - size) // 2, (image.height - size) // 2
image = image.crop((left, top, left + size, top + size))
image.save(os.path.join(args.output, "input.png"))
pixels = np.asarray(image, dtype=np.float32)[None]  # (1, size, size, 3), RGB in [0, 255]

# %% [markdown]
# ## The top-5 classes

# %%
x = kerasnets.preprocess_input(pixels, model=MODEL, weights=WEIGHTS_FOR_PREPROCESSING)
predictions = model.predict(x, verbose=0)
print(f"top-5 ImageNet classes of {os.path.basename(path)}:")
for wnid, name, score in kerasnets.decode_predictions(predictions, top=5)[0]:
    print(f"  {score:7.2%}  {name} ({wnid})")
