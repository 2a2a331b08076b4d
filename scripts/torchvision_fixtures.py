"""Writes the torchvision fixtures of ``tests/test_torchvision_weights.py`` from real torchvision.

torchvision is not a kerasnets dependency, and the tests never import it: this
script records, once, what they compare against:

* the state-dict key names and shapes of every torchvision model that a
  kerasnets preset converts (``resnet18`` .. ``resnet152``, ``vgg11`` ..
  ``vgg19_bn``, ``alexnet``), so the key maps are checked on the real names;
* for small cases (full-width ResNets on 32x32 images, VGG and AlexNet at 1/64 of
  their widths on 224x224 images so that the flatten order of the first
  fully-connected layer is exercised), the outputs of torchvision's own modules
  with weights drawn by `draw_state_dict` (NumPy only, so the tests rebuild the
  same weights without torch);
* a real ``torch.save`` checkpoint of the small AlexNet, to test the torch-free
  reader of PyTorch's file format.

Rerun (a few minutes; torch and torchvision in a separate environment)::

    python -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch torchvision numpy   # recorded with torch 2.14.1, torchvision 0.29.1
    /tmp/tvenv/bin/python scripts/torchvision_fixtures.py   # writes tests/fixtures/torchvision*
"""

from __future__ import annotations

import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures")
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255

# name: (torchvision model, kerasnets builder, its arguments, input size, classes)
CASES = {
    "resnet18": ("resnet18", "ResNet18", {}, 32, 1000),
    "resnet50": ("resnet50", "ResNet50", {"downsample_on": "3x3"}, 32, 1000),
    "vgg11_small": ("vgg11", "VGG11", {"width_multiplier": 1 / 64}, 224, 10),
    "vgg11_bn_small": ("vgg11_bn", "VGG11BN", {"width_multiplier": 1 / 64}, 224, 10),
    "alexnet_small": ("alexnet", "AlexNet", {"variant": "torchvision", "width_multiplier": 1 / 64}, 224, 10),
}
KEY_MODELS = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg11", "vgg11_bn", "vgg13",
    "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "alexnet",
]


def draw_state_dict(keys_and_shapes, seed):
    """Weights for a state dict, from its key names and shapes, NumPy only."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in keys_and_shapes:
        if key.endswith("num_batches_tracked"):
            state[key] = np.zeros(shape, np.int64)
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif key.endswith(("running_mean", "bias")):
            state[key] = rng.normal(0, 0.1, shape).astype(np.float32)
        elif len(shape) > 1:  # conv / linear weights, ~He-scaled
            fan_in = int(np.prod(shape[1:]))
            state[key] = rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
        else:  # BN gamma
            state[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    return state


def images(size, seed):
    return np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3)).astype(np.float32)


def _small_module(name, torch, tv):
    """torchvision's own classes at 1/64 of the widths (same key names and layout)."""
    nn = torch.nn
    if name.startswith("vgg11"):
        cfg = [1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"]
        features = tv.models.vgg.make_layers(cfg, batch_norm=name.endswith("_bn"))
        model = tv.models.VGG(features, num_classes=10, init_weights=False)
        model.classifier = nn.Sequential(
            nn.Linear(8 * 7 * 7, 64), nn.ReLU(True), nn.Dropout(),
            nn.Linear(64, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, 10),
        )
        return model
    model = tv.models.AlexNet(num_classes=10)
    model.features = nn.Sequential(
        nn.Conv2d(3, 1, 11, 4, 2), nn.ReLU(True), nn.MaxPool2d(3, 2),
        nn.Conv2d(1, 3, 5, padding=2), nn.ReLU(True), nn.MaxPool2d(3, 2),
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(True),
        nn.Conv2d(6, 4, 3, padding=1), nn.ReLU(True),
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(3, 2),
    )
    model.classifier = nn.Sequential(
        nn.Dropout(), nn.Linear(4 * 6 * 6, 64), nn.ReLU(True),
        nn.Dropout(), nn.Linear(64, 64), nn.ReLU(True), nn.Linear(64, 10),
    )
    return model


def main():
    import torch
    import torchvision as tv

    torch.set_grad_enabled(False)
    os.makedirs(OUT, exist_ok=True)
    keys = {}
    for name in KEY_MODELS:
        state = getattr(tv.models, name)(weights=None).state_dict()
        keys[name] = [[k, list(v.shape)] for k, v in state.items()]
    cases, arrays = {}, {}
    for seed, (case, (tv_name, builder, kwargs, size, classes)) in enumerate(CASES.items(), start=1):
        if case.endswith("_small"):
            module = _small_module(tv_name, torch, tv)
        else:
            module = getattr(tv.models, tv_name)(weights=None)
        shapes = [[k, list(v.shape)] for k, v in module.state_dict().items()]
        state = draw_state_dict(shapes, seed)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        module.eval()
        x = images(size, seed + 100)
        batch = torch.from_numpy(((x - MEAN) / STD).transpose(0, 3, 1, 2).copy())
        arrays[f"{case}/logits"] = module(batch).numpy()
        if tv_name.startswith("resnet"):
            features = torch.nn.Sequential(*list(module.children())[:-2])(batch)
            arrays[f"{case}/features"] = features.numpy().transpose(0, 2, 3, 1)
        cases[case] = dict(torchvision=tv_name, builder=builder, kwargs=kwargs, size=size,
                           classes=classes, seed=seed, image_seed=seed + 100, keys=shapes)
        if case == "alexnet_small":
            torch.save(module.state_dict(), os.path.join(OUT, "torchvision_alexnet_small.pth"))
    meta = dict(torch=torch.__version__, torchvision=tv.__version__, cases=cases, state_dict_keys=keys)
    with open(os.path.join(OUT, "torchvision.json"), "w") as f:
        json.dump(meta, f, indent=None, separators=(",", ":"))
    np.savez_compressed(os.path.join(OUT, "torchvision_outputs.npz"), **arrays)
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
