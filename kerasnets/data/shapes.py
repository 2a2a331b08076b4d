"""``shapes``: a built-in image-classification dataset that needs no download.

Ten geometric shapes drawn with a random colour, position, rotation and, above
all, a widely varying scale (from a few pixels to nearly the whole image) on
noisy, shaded backgrounds: the situation the GoogLeNet paper opens with, an
object that fills the image or occupies little of it. Every image is generated
locally with NumPy from fixed seeds, so two preparations write the same
examples; preparing the default configuration takes seconds.

It is a tensorflow-datasets ``GeneratorBasedBuilder``: after
``import kerasnets.data`` the usual tfds tooling works on it::

    import kerasnets.data, tensorflow_datasets as tfds
    ds = tfds.load("shapes", split="train", data_dir="/tmp/tfds", as_supervised=True)
    ds64 = tfds.load("shapes/64", split="validation", data_dir="/tmp/tfds")

Configurations (``shapes/<name>``):

========  ==========  =====  ==========  =====  ===========
name      resolution  train  validation  test   on disk
========  ==========  =====  ==========  =====  ===========
``32``    32x32       10000  2000        2000   about 32 MB
``64``    64x64       10000  2000        2000   about 120 MB
``128``   128x128     4000   800         800    about 185 MB
========  ==========  =====  ==========  =====  ===========

``32`` is the default. A custom configuration is a `ShapesConfig` passed to the
builder; once prepared it loads by name like the others::

    config = ShapesConfig(name="48_small", resolution=48, num_train=3000)
    Shapes(config=config, data_dir="/tmp/tfds").download_and_prepare()
    kerasnets.data.load("shapes/48_small", "train", data_dir="/tmp/tfds")

Learnable but not trivial: a small CNN reaches high accuracy in a few CPU
minutes, while a linear classifier on the pixels stays near chance, because
colour, position, rotation and scale all vary independently of the class.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

__all__ = ["Shapes", "ShapesConfig", "CLASS_NAMES", "render_shapes"]

CLASS_NAMES = (
    "circle", "ring", "triangle", "square", "frame",
    "star", "cross", "crescent", "heart", "ellipse",
)

# The seeds of the three splits: fixed, so every preparation is identical.
_SPLIT_SEEDS = {"train": 1, "validation": 2, "test": 3}
_CHUNK = 256  # images rendered at once (memory ~ CHUNK * size^2 * SUPERSAMPLE^2 floats)
_SUPERSAMPLE = 2  # sub-pixels per axis: anti-aliased edges even for tiny shapes


# ---------------------------------------------------------------------------
# Shapes as implicit functions of the shape's own coordinates (x, y), where the
# shape fits the unit disk. Each returns a boolean "inside" mask, vectorised over
# any array shape.
# ---------------------------------------------------------------------------


def _polygon_radius(x, y, sides):
    """Is 1 on the border of the regular polygon with circumradius 1, < 1 inside."""
    angle = np.arctan2(y, x)
    sector = 2 * np.pi / sides
    local = np.mod(angle + np.pi / 2, sector) - sector / 2
    return np.hypot(x, y) * np.cos(local) / np.cos(np.pi / sides)


def _star(x, y, points=5, inner=0.42):
    # Straight-edged star: in each half-sector the border runs from the tip
    # (radius 1) to the notch (radius `inner`).
    angle = np.mod(np.arctan2(y, x) + np.pi / 2, 2 * np.pi / points)
    half = np.pi / points
    t = np.abs(angle - half) / half  # 0 at a notch, 1 at a tip
    tip = np.array([1.0, 0.0])
    notch = inner * np.array([np.cos(half), np.sin(half)])
    # Border radius along direction t, by intersecting the ray with the tip-notch edge.
    phi = (1 - t) * half
    dx, dy = notch - tip
    denom = np.cos(phi) * dy - np.sin(phi) * dx
    border = (tip[0] * dy - tip[1] * dx) / denom
    return np.hypot(x, y) <= border


def _heart(x, y):
    u, v = x * 1.25, -y * 1.25 + 0.25
    return (u * u + v * v - 1) ** 3 - u * u * v ** 3 <= 0


_SHAPES = {
    "circle": lambda x, y: x * x + y * y <= 1,
    "ring": lambda x, y: (x * x + y * y <= 1) & (x * x + y * y >= 0.55 ** 2),
    "triangle": lambda x, y: _polygon_radius(x, y, 3) <= 1,
    "square": lambda x, y: _polygon_radius(x, y, 4) <= 1,
    "frame": lambda x, y: (_polygon_radius(x, y, 4) <= 1) & (_polygon_radius(x, y, 4) >= 0.6),
    "star": _star,
    "cross": lambda x, y: ((np.abs(x) <= 0.3) & (np.abs(y) <= 0.95))
    | ((np.abs(y) <= 0.3) & (np.abs(x) <= 0.95)),
    "crescent": lambda x, y: (x * x + y * y <= 1) & ((x - 0.5) ** 2 + y * y >= 0.8 ** 2),
    "heart": _heart,
    "ellipse": lambda x, y: x * x + (y / 0.45) ** 2 <= 1,
}
assert tuple(_SHAPES) == CLASS_NAMES


def render_shapes(labels, size, rng, *, min_scale=0.2, max_scale=0.95, return_coverage=False):
    """Draws one image per label; returns ``uint8`` images ``(n, size, size, 3)``.

    Args:
        labels: integer class indices into `CLASS_NAMES`.
        size: the image side, in pixels.
        rng: a ``numpy.random.Generator``; the images are a function of its state.
        min_scale, max_scale: the shape's diameter as a fraction of ``size``,
            drawn log-uniformly between the two.
        return_coverage: also return the float32 ``(n, size, size)`` fraction of
            each pixel covered by the shape.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    # Per-image parameters, drawn in a fixed order (determinism).
    radius = 0.5 * size * np.exp(rng.uniform(np.log(min_scale), np.log(max_scale), n))
    cx = rng.uniform(radius, size - radius)
    cy = rng.uniform(radius, size - radius)
    theta = rng.uniform(0, 2 * np.pi, n)
    background = rng.uniform(0, 255, (n, 3))
    gradient = rng.normal(0, 30, (n, 2, 3))  # colour change across the image, per axis
    noise_level = rng.uniform(3, 12, n)
    foreground = rng.uniform(0, 255, (n, 3))
    # Redraw foreground colours too close to the background (a visible shape).
    for _ in range(100):
        close = np.linalg.norm(foreground - background, axis=1) < 120
        if not close.any():
            break
        foreground[close] = rng.uniform(0, 255, (int(close.sum()), 3))
    noise = rng.standard_normal((n, size, size, 3), dtype=np.float32)
    noise *= noise_level.astype(np.float32)[:, None, None, None]

    # Sub-pixel sample positions: (size * S,) along each axis.
    s = _SUPERSAMPLE
    grid = ((np.arange(size * s) + 0.5) / s).astype(np.float32)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    coverage = np.zeros((n, size, size), np.float32)
    for label, draw in enumerate(_SHAPES.values()):
        idx = np.flatnonzero(labels == label)
        if idx.size == 0:
            continue
        r = f32(radius[idx, None, None])
        dx = (grid[None, None, :] - f32(cx[idx, None, None])) / r
        dy = (grid[None, :, None] - f32(cy[idx, None, None])) / r
        cos, sin = f32(np.cos(theta[idx])[:, None, None]), f32(np.sin(theta[idx])[:, None, None])
        x, y = cos * dx + sin * dy, -sin * dx + cos * dy
        inside = draw(x, y).astype(np.float32)
        coverage[idx] = inside.reshape(idx.size, size, s, size, s).mean(axis=(2, 4))

    ramp = f32((np.arange(size) + 0.5) / size - 0.5)
    gradient, background, foreground = f32(gradient), f32(background), f32(foreground)
    shading = (ramp[None, None, :, None] * gradient[:, None, None, 0]
               + ramp[None, :, None, None] * gradient[:, None, None, 1])
    alpha = coverage[..., None]
    image = (1 - alpha) * (background[:, None, None] + shading) + alpha * foreground[:, None, None]
    image += noise
    image = np.clip(np.rint(image, out=image), 0, 255, out=image).astype(np.uint8)
    return (image, coverage) if return_coverage else image


def generate_chunks(split, size, num_examples, *, num_classes=len(CLASS_NAMES)):
    """Yields ``(start, images, labels)`` chunks of one split, deterministically.

    Each chunk is seeded by ``(split, size, start)``, so an example depends only on
    its index, not on how many are generated.
    """
    for start in range(0, num_examples, _CHUNK):
        count = min(_CHUNK, num_examples - start)
        rng = np.random.default_rng([_SPLIT_SEEDS[split], size, start])
        labels = rng.integers(0, num_classes, count)
        yield start, render_shapes(labels, size, rng), labels


def generate_split(split, size, num_examples, *, num_classes=len(CLASS_NAMES)):
    """Yields ``(index, image, label)`` of one split, deterministically."""
    for start, images, labels in generate_chunks(split, size, num_examples, num_classes=num_classes):
        for offset in range(len(labels)):
            yield start + offset, images[offset], int(labels[offset])


@tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
def _encode_pngs(images):
    # One graph call per chunk: much faster than tfds encoding images one by one.
    return tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.string,
                     parallel_iterations=16)


@dataclasses.dataclass(eq=False)
class ShapesConfig(tfds.core.BuilderConfig):
    """A `Shapes` configuration: image resolution and the size of each split."""

    resolution: int = 32
    num_train: int = 10_000
    num_validation: int = 2_000
    num_test: int = 2_000


class Shapes(tfds.core.GeneratorBasedBuilder):
    """The procedurally generated ``shapes`` dataset (see the module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: 10 shapes, resolutions 32, 64 and 128."}
    BUILDER_CONFIGS = [
        ShapesConfig(name="32", description="32x32 images.", resolution=32),
        ShapesConfig(name="64", description="64x64 images.", resolution=64),
        ShapesConfig(
            name="128", description="128x128 images.", resolution=128,
            num_train=4_000, num_validation=800, num_test=800,
        ),
    ]
    DEFAULT_CONFIG_NAME = "32"

    def _info(self):
        r = self.builder_config.resolution
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "Procedurally generated geometric shapes of widely varying scale, "
                "colour, position and rotation on noisy backgrounds (kerasnets)."
            ),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(r, r, 3), encoding_format="png"),
                "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
            }),
            supervised_keys=("image", "label"),
            homepage="https://github.com/kerasnets/kerasnets",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        config = self.builder_config
        sizes = {
            "train": config.num_train,
            "validation": config.num_validation,
            "test": config.num_test,
        }
        return {
            split: self._generate_examples(split, count)
            for split, count in sizes.items() if count > 0
        }

    def _generate_examples(self, split, count):
        size = self.builder_config.resolution
        for start, images, labels in generate_chunks(split, size, count):
            encoded = _encode_pngs(images).numpy()
            for offset, (png, label) in enumerate(zip(encoded, labels)):
                yield start + offset, {"image": png, "label": int(label)}
