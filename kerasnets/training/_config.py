"""`TrainingConfig`: what a training run is asked for, typed and validated once.

`kerasnets.training.train`, `kerasnets.training.prepare` and ``kerasnets train`` all
build one and hand it to the same path; the run records its `TrainingConfig.to_json`
in ``run.json`` as ``request`` and compares it when the folder is run again.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

import keras

from kerasnets._validate import (
    check_bool,
    check_choice,
    check_free_of,
    check_instance,
    check_int,
    check_keys,
    check_number,
    check_path,
    check_string,
    fail,
    is_int,
)
from kerasnets.registry import get_entry
from kerasnets.training import _io
from kerasnets.training.recipes import Recipe, get_recipe
from kerasnets.training.strategy import PRECISIONS, STRATEGIES, XLA_CHOICES

__all__ = ["TrainingConfig", "REQUEST_KEYS", "check_overrides", "default_output"]

# The fields `TrainingConfig.to_json` records (run.json's ``request``), in its order;
# ``weights`` only when given (a run from random initialisation records none).
REQUEST_KEYS = ("model", "dataset", "image_size", "batch_size", "recipe", "overrides",
                "learning_rate", "model_kwargs", "train_split", "augment", "seed", "weights")
# Builder arguments a run sets itself, from the dataset and the image size.
_RUN_SETS = ("classes", "input_shape", "weights", "include_top", "input_tensor")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """What a training run is asked for: every argument of `kerasnets.training.train`.

    Frozen and validated once, at construction: a bad value raises the ValueError
    the argument's check words (``epochs must be a positive integer. Received:
    epochs=0``) before any work. The model name is stored as registered
    (``"ResNet20"`` becomes ``"resnet20"``); ``overrides`` and ``model_kwargs`` are
    the config's own copies. `kerasnets.training.train` and ``kerasnets train``
    build the same config from the same options. The fields, their defaults and
    meaning are `kerasnets.training.train`'s arguments.

    Example:

    >>> config = TrainingConfig(model="resnet20", epochs=5, batch_size=64)
    >>> config.to_json()["batch_size"]
    64
    >>> kerasnets.training.train(config)  # doctest: +SKIP
    """

    model: str
    dataset: str = "shapes"
    weights: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    image_size: int | None = None
    recipe: str | Recipe | None = None
    overrides: dict = dataclasses.field(default_factory=dict)
    learning_rate: float | None = None
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    output: str | None = None
    strategy: Any = "auto"  # a name of STRATEGIES, or a tf.distribute.Strategy
    precision: str = "auto"
    xla: str | bool = "auto"
    data_dir: str | None = None
    download: bool = False
    seed: int | None = None
    augment: str | None = "auto"
    train_split: str = "train"
    validation_split: str | None = None
    test_split: str | None = None
    verify: str | None = "full"
    overwrite: bool = False
    export: bool = True
    callbacks: tuple = ()
    verbose: str | int = "auto"

    def __post_init__(self):
        def set_(name, value):
            object.__setattr__(self, name, value)

        set_("model", get_entry(self.model).name)
        set_("dataset", check_path("dataset", self.dataset, expected="a dataset name or a folder path"))
        if self.weights is not None:
            check_string("weights", self.weights, expected="'imagenet', a preset name or None")
        for name in ("epochs", "batch_size", "image_size"):
            check_int(name, getattr(self, name), allow_none=True)
        if isinstance(self.recipe, str):
            get_recipe(self.recipe)  # an unknown name: the recipes it could be
        elif self.recipe is not None:
            check_instance("recipe", self.recipe, Recipe, "a recipe name, a Recipe or None")
        check_number("learning_rate", self.learning_rate, allow_none=True)
        set_("overrides", check_overrides(self.overrides, self.learning_rate))
        set_("model_kwargs", _check_model_kwargs(self.model_kwargs))
        for name in ("output", "data_dir"):
            if getattr(self, name) is not None:
                set_(name, check_path(name, getattr(self, name)))
        if isinstance(self.strategy, str):
            check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("precision", self.precision, PRECISIONS)
        if not isinstance(self.xla, bool):
            check_choice("xla", self.xla, XLA_CHOICES)
        for name in ("download", "overwrite", "export"):
            check_bool(name, getattr(self, name))
        if self.seed is not None and not is_int(self.seed):
            fail("seed", "an integer or None", self.seed)
        if self.augment is not None:
            check_string("augment", self.augment, expected="an augmentation name or None")
        check_string("train_split", self.train_split, expected="a split name")
        for name in ("validation_split", "test_split"):
            if getattr(self, name) is not None:
                check_string(name, getattr(self, name), expected="a split name or None")
        check_choice("verify", self.verify, ("full", "header", None))
        set_("callbacks", tuple(self.callbacks))
        for callback in self.callbacks:
            check_instance("callbacks", callback, keras.callbacks.Callback, "a sequence of Keras callbacks")
        check_choice("verbose", self.verbose, ("auto", 0, 1, 2))

    def to_json(self) -> dict:
        """The request as ``run.json`` records it (``request``): strict JSON, the keys of
        `REQUEST_KEYS` (``weights`` only when given), a `Recipe` by its name.

        `from_json` reads it back. A run records it with the batch and the recipe
        resolved (the recipe's own when not given), so that the command with those
        spelt out resumes the same folder.
        """
        recipe = self.recipe.name if isinstance(self.recipe, Recipe) else self.recipe
        request = {key: recipe if key == "recipe" else getattr(self, key) for key in REQUEST_KEYS}
        if self.weights is None:
            del request["weights"]
        return _io.json_roundtrip(request)

    @classmethod
    def from_json(cls, request: dict, **options) -> TrainingConfig:
        """The config of a recorded ``request`` (`to_json`), with ``options`` for the
        fields it does not record (``epochs``, ``output``, ...)."""
        check_instance("request", request, dict, "a dict (run.json's request)")
        check_keys("request", request, REQUEST_KEYS)
        return cls(**request, **options)


def check_overrides(overrides, learning_rate) -> dict:
    """The recipe overrides, refusing what contradicts the arguments or one of them silently
    wins over: the epochs and the batch are arguments (``--epochs``, ``--batch-size``), which
    rescale the schedule and the rate; an overridden rate (the recipe's at its own batch,
    scaled to yours) and ``learning_rate`` (as is) are one too many."""
    overrides = dict(overrides or {})
    check_free_of("overrides", overrides, ("epochs", "batch_size"),
                  "give them as epochs= and batch_size= (--epochs, --batch-size), which rescale the "
                  "schedule and the learning rate")
    if learning_rate is not None and "learning_rate" in overrides:
        fail("learning_rate", "given once: as learning_rate= (--lr, the rate as is) or as "
             "overrides={'learning_rate': ...} (--set, the recipe's rate at its own batch, scaled to "
             "yours), not both", learning_rate,
             received=f"learning_rate={learning_rate!r}, overrides={{'learning_rate': {overrides['learning_rate']!r}}}")
    return overrides


def _check_model_kwargs(model_kwargs) -> dict:
    model_kwargs = dict(model_kwargs or {})
    return check_free_of("model_kwargs", model_kwargs, set(_RUN_SETS),
                         "train sets them itself, from the dataset and image size")


def default_output(config: TrainingConfig) -> str:
    """The run folder of ``config``: its ``output``, else ``runs/<model>-<dataset>``; absolute."""
    return os.path.abspath(config.output or os.path.join("runs", f"{config.model}-{_slug(config.dataset)}"))


def _slug(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(os.path.normpath(str(text)))).strip("_") or "data"
