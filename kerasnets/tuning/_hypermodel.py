"""`WidthHyperModel`: a keras-tuner HyperModel over the widths of a kerasnets model."""

from __future__ import annotations

import json
import math
import numbers
import warnings
from typing import Mapping

import keras_tuner

from kerasnets._validate import check_bool, check_free_of, check_int, fail
from kerasnets import training
from kerasnets.layers import spatial_shape
from kerasnets.profiling import profile
from kerasnets.registry import get_entry, get_model
from kerasnets.tuning import _space

__all__ = ["WidthHyperModel", "build_from_args"]


def build_from_args(builder_args: Mapping):
    """Builds the model a trial built, from its reported ``builder_args``.

    ``builder_args`` is ``{"name": registered name, **builder keyword arguments}``
    (``best_args.json``'s ``"builder_args"``): the same as
    ``kerasnets.get_model(args.pop("name"), **args)``. The model is not compiled.
    """
    args = dict(builder_args)
    return get_model(args.pop("name"), **args)


class WidthHyperModel(keras_tuner.HyperModel):
    """Searches the widths (optionally the depth and learning rate) of a kerasnets model.

    The search space (`space`, printed by `describe`) is, by family:

    ======================  ==========================================================
    hyperparameter          meaning (default range)
    ======================  ==========================================================
    ``width_multiplier``    scales every width: one of 0.25, 0.5, 0.75, 1.0
    ``conv{s}_width``       ResNet stage ``s`` base filters (conv2 .. conv5 ImageNet,
                            conv2 .. conv4 CIFAR): base/4 .. base step base/4
    ``block{b}_width``      VGG block ``b`` filters (block1 .. block5), as above
    ``inception_{m}_scale`` GoogLeNet module ``m`` (3a .. 5b): every branch times one
                            of 0.25, 0.5, 0.75, 1.0
    ``mixed{m}_scale``      Inception v2/v3 module (mixed5b .. mixed7c), as above
    ``depth``               with ``depth=True``: ResNet 18/34, 50/101/152, CIFAR
                            20/32/44/56/110; VGG 11/13/16/19
    ``learning_rate``       with ``learning_rate=True``: recipe's rate /30 .. x3 (log)
    ======================  ==========================================================

    A stage width is the base of the builder's ``stage_widths``;
    ``width_multiplier`` scales it again (a layer has
    ``round(conv3_width * width_multiplier)`` filters). AlexNet searches only
    ``width_multiplier``.

    Override any entry with ``overrides`` (``{"width_multiplier": [0.5, 1.0]}``
    a choice, ``{"conv2_width": 16}`` fixed, ``{"conv3_width": {"min_value": 8,
    "max_value": 32, "step": 8}}`` a range), or as keras-tuner allows, with the
    tuner's ``hyperparameters=`` (a predefined name keeps its definition).

    Each trial's model is ``build_from_args(hypermodel.builder_args(hp))``,
    compiled with the family's paper recipe (`kerasnets.training.compile_model`) at
    the trial's learning rate; the same ``builder_args`` rebuild it outside the
    tuner (`build_from_args`).

    Args:
        model: a registered model name (``"resnet20"``).
        input_shape: the input shape (without the batch axis) of the trials' models.
        classes: number of classes.
        per_block: search per-stage / per-block / per-module widths, not only
            ``width_multiplier``.
        depth: search the depth as well (see the table).
        learning_rate: search the learning rate as well.
        overrides: changes to the search space (see above).
        recipe: the training recipe (a name or `kerasnets.training.Recipe`);
            default: the model's.
        batch_size: the global batch size of the training data; the recipe's rate
            is scaled to it (linear rule). Default: the recipe's batch.
        steps_per_epoch: batches per epoch, for recipes whose schedule changes at
            given epochs (ResNet's).
        epochs: the epochs each trial trains; the recipe's schedule is compressed
            to them. Default: the recipe's.
        model_kwargs: further builder arguments for every trial (``residual=False``,
            ``batch_norm=True``, ...).
        jit_compile: passed to `kerasnets.training.compile_model` (`kerasnets.training.choose_jit_compile`).

    Example:

    >>> import keras_tuner, kerasnets.tuning as kt
    >>> hypermodel = kt.WidthHyperModel("resnet20", input_shape=(32, 32, 3), classes=10)
    >>> print(hypermodel.describe())
    >>> tuner = kt.make_tuner("random", hypermodel, max_trials=10, directory="runs")
    >>> tuner.search(train_ds, validation_data=val_ds, epochs=3)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str,
        *,
        input_shape,
        classes: int,
        per_block: bool = True,
        depth: bool = False,
        learning_rate: bool = False,
        overrides: Mapping | None = None,
        recipe=None,
        batch_size: int | None = None,
        steps_per_epoch: int | None = None,
        epochs: int | None = None,
        model_kwargs: Mapping | None = None,
        jit_compile="auto",
        name: str | None = None,
        tunable: bool = True,
    ):
        entry = get_entry(model)  # unknown names raise here, with suggestions
        for arg, value in (("per_block", per_block), ("depth", depth), ("learning_rate", learning_rate)):
            check_bool(arg, value)
        for arg, value in (("batch_size", batch_size), ("steps_per_epoch", steps_per_epoch), ("epochs", epochs)):
            check_int(arg, value, allow_none=True)
        check_int("classes", classes)
        model_kwargs = dict(model_kwargs or {})
        reserved = {"input_shape", "classes", "width_multiplier", "name"}
        space = _space.family_space(entry.name)
        if space.argument:  # the searched widths, under any of their names
            reserved |= {space.argument} | {a for a, arg in entry.spec.aliases.items() if arg == space.argument}
        check_free_of("model_kwargs", model_kwargs, reserved,
                      "the hypermodel sets them from its own arguments and the hyperparameters")
        super().__init__(name=name or f"{entry.name}_widths", tunable=tunable)
        self.model = entry.name
        self.input_shape = tuple(int(d) for d in input_shape)
        self.classes = classes
        self.model_kwargs = model_kwargs
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self._recipe = recipe
        self.jit_compile = jit_compile
        self._warned_schedule = False
        self._callbacks = []
        self._stats = {}
        default_rate = self.recipe_for(entry.name).learning_rate if learning_rate else None
        self.space = _space.search_space(
            entry.name, per_block=per_block, depth=depth, learning_rate=default_rate,
            overrides=overrides,
        )
        # The paper's model at the smallest widths must accept the input: raise now,
        # not in every trial.
        self._check_input()

    # -- the search space ----------------------------------------------------------

    def describe(self) -> str:
        """The search space as a table: name, range, default, meaning."""
        rows = [(hp.name, hp.describe(), str(hp.default), hp.doc) for hp in self.space]
        head = ("hyperparameter", "values", "default", "meaning")
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(3)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(head[:3], widths)) + "  " + head[3]]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3] for r in rows]
        return "\n".join(lines)

    def declare_hyperparameters(self, hp):
        for entry in self.space:
            entry.declare(hp)

    def values(self, hp) -> dict:
        """The values of the searched hyperparameters in ``hp`` (declared if new)."""
        return {entry.name: entry.declare(hp) for entry in self.space}

    # -- from hyperparameters to a model ---------------------------------------------

    def builder_args(self, hp) -> dict:
        """``{"name": ..., **builder kwargs}`` of the model for ``hp``: `build_from_args` rebuilds it."""
        values = hp if isinstance(hp, Mapping) else self.values(hp)
        name, kwargs = _space.builder_kwargs(self.model, values)
        return {
            "name": name,
            **self.model_kwargs,
            "input_shape": list(self.input_shape),
            "classes": self.classes,
            **kwargs,
        }

    def learning_rate(self, hp) -> float:
        """The trial's initial learning rate (searched, or the recipe's at the batch size)."""
        values = hp if isinstance(hp, Mapping) else self.values(hp)
        if "learning_rate" in values:
            return float(values["learning_rate"])
        return self.recipe_for(_space.builder_kwargs(self.model, values)[0]).learning_rate

    def recipe_for(self, name):
        """The recipe of a trial's model at this hypermodel's batch size and epochs."""
        recipe = training.recipe_for(name) if self._recipe is None else training.get_recipe(self._recipe)
        if self.batch_size is not None:
            recipe = recipe.with_batch_size(self.batch_size)
        if self.epochs is not None:
            recipe = recipe.with_epochs(self.epochs)
        return recipe

    def build(self, hp):
        values = self.values(hp)
        args = self.builder_args(values)
        model = build_from_args(args)
        self.compile(model, args["name"], self.learning_rate(values))
        return model

    def compile(self, model, name, learning_rate):
        """Compiles a trial's model: the recipe of ``name`` at ``learning_rate``.

        Called inside the strategy's scope (keras-tuner builds there).
        """
        recipe = self.recipe_for(name).replace(learning_rate=learning_rate)
        if recipe.needs_steps_per_epoch and self.steps_per_epoch is None:
            if not self._warned_schedule:
                warnings.warn(
                    f"The '{recipe.name}' recipe changes the learning rate at given epochs, which "
                    "needs steps_per_epoch; without it the trials keep their initial rate. Pass "
                    "steps_per_epoch= to WidthHyperModel.",
                    stacklevel=3,
                )
                self._warned_schedule = True
            recipe = recipe.replace(schedule="constant", warmup_epochs=0.0)
        applied = training.compile_model(
            model, recipe, steps_per_epoch=self.steps_per_epoch, jit_compile=self.jit_compile
        )
        self._callbacks = applied.callbacks()
        return applied

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        """``model.fit`` with the recipe's callbacks (a plateau schedule's) added."""
        callbacks = list(callbacks or []) + list(self._callbacks)
        if args and _is_dataset(args[0]):
            kwargs.setdefault("shuffle", False)  # a dataset shuffles itself; Keras warns otherwise
        return model.fit(*args, callbacks=callbacks, **kwargs)

    def model_stats(self, hp) -> tuple:
        """``(widths, params, macs)`` of the model for ``hp``, rebuilt once per distinct model.

        ``params`` are the learnable parameters of the inference model (BatchNorm
        statistics and auxiliary heads not counted) and ``macs`` its multiply-adds
        for one image, both from `kerasnets.profile`.
        """
        values = hp if isinstance(hp, Mapping) else self.values(hp)
        args = self.builder_args(values)
        key = json.dumps(_jsonable(args), sort_keys=True)
        if key not in self._stats:
            model = build_from_args(args)
            p = profile(model)
            widths = _space.effective_widths(self.model, values, model=model)
            self._stats[key] = (widths, p.params, p.macs)
        return self._stats[key]

    # -- validation -----------------------------------------------------------------

    def _check_input(self):
        info = get_entry(self.model).info
        spatial = spatial_shape(self.input_shape)
        if len(self.input_shape) != 3 or any(d < info.min_size for d in spatial):
            fail("input_shape", f"3 integers with a height and width of at least {info.min_size}",
                 self.input_shape, context=self.model)

    def get_config(self):
        return {"model": self.model, "input_shape": list(self.input_shape), "classes": self.classes}


def _is_dataset(x):
    return type(x).__module__.startswith("tensorflow") and hasattr(x, "element_spec")


def _jsonable(value):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value

