"""`compile_model`: a model gets its paper's recipe in one line.

The loss (sparse cross-entropy, with label smoothing when the recipe asks),
the metrics (top-1 and top-5 accuracy, per head for auxiliary classifiers), the
optimizer and its schedule, gradient clipping, the auxiliary loss weights and
the L2 weight decay all come from the `Recipe`.
"""

from __future__ import annotations

import keras

from kerasnets._validate import check_instance
from kerasnets.models import outputs_logits
from kerasnets.training.recipes import Recipe, get_recipe, recipe_for

__all__ = ["compile_model", "compile", "SparseCrossentropy", "WeightDecay", "apply_weight_decay", "output_names"]

# Variables decayed by the recipe's weight decay: the kernels of convolutions
# and dense layers (Keras names them so), never biases or BatchNorm parameters.
_DECAYED_VARIABLES = ("kernel", "depthwise_kernel", "pointwise_kernel")


@keras.saving.register_keras_serializable(package="kerasnets")
class SparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels, with optional label smoothing.

    `keras.losses.SparseCategoricalCrossentropy` has no ``label_smoothing``;
    this loss one-hot encodes the labels and smooths them as Inception v3 does:
    the target is ``(1 - s) * one_hot + s / classes``.

    Args:
        label_smoothing: ``s`` in ``[0, 1)``.
        from_logits: whether predictions are logits (else probabilities).

    Example:

    >>> loss = SparseCrossentropy(label_smoothing=0.1)
    >>> float(loss([1], [[0.05, 0.9, 0.05]]))  # doctest: +ELLIPSIS
    0.4...
    """

    def __init__(self, label_smoothing=0.0, from_logits=False, name="sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        ops = keras.ops
        if len(y_true.shape) == len(y_pred.shape):
            y_true = ops.squeeze(y_true, axis=-1)
        if self.label_smoothing == 0.0:
            return keras.losses.sparse_categorical_crossentropy(
                y_true, y_pred, from_logits=self.from_logits
            )
        one_hot = ops.one_hot(ops.cast(y_true, "int32"), ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=self.from_logits, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        config = super().get_config()
        config.update(label_smoothing=self.label_smoothing, from_logits=self.from_logits)
        return config


@keras.saving.register_keras_serializable(package="kerasnets")
class WeightDecay(keras.regularizers.L2):
    """The papers' weight decay ``wd`` as an L2 penalty ``wd / 2 * sum(w ** 2)``.

    Its gradient is ``wd * w``: Caffe's ``weight_decay``, added to the gradient
    before momentum. A subclass only so that `apply_weight_decay` recognises
    the penalties it set (and never replaces a user's own regularizer).
    """

    def __init__(self, weight_decay=0.0, **kwargs):
        if "l2" in kwargs:  # from_config of the L2 base
            weight_decay = 2.0 * kwargs.pop("l2")
        super().__init__(l2=weight_decay / 2.0)
        self.weight_decay = float(weight_decay)


def apply_weight_decay(model, weight_decay: float) -> int:
    """Sets the L2 penalty of ``weight_decay`` on every kernel of ``model``.

    Kernels that already carry a regularizer other than a `WeightDecay` keep
    it. ``weight_decay=0`` removes the penalties a previous call set.

    Returns:
        The number of variables decayed.
    """
    count = 0
    for variable in model.trainable_variables:
        if variable.name not in _DECAYED_VARIABLES:
            continue
        current = variable.regularizer
        if current is not None and not isinstance(current, WeightDecay):
            continue
        variable.regularizer = WeightDecay(weight_decay) if weight_decay > 0 else None
        count += weight_decay > 0
    return count


def output_names(model) -> list[str]:
    """The output names, main head first (``["main", "aux1", "aux2"]``), or ``[]``."""
    heads = getattr(model, "head_names", None)
    if heads:
        return list(heads)
    if isinstance(model.output, dict):
        names = sorted(model.output)
        if "main" in names:
            names.remove("main")
            names.insert(0, "main")
        return names
    return []


def _metrics(num_classes, top5=True):
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if top5 and (num_classes is None or num_classes > 5):
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    return metrics


def compile_model(
    model,
    recipe: str | Recipe | None = None,
    *,
    steps_per_epoch: int | None = None,
    global_batch_size: int | None = None,
    epochs: int | None = None,
    from_logits: bool | None = None,
    jit_compile="auto",
    **overrides,
) -> Recipe:
    """Compiles ``model`` with a paper's recipe: optimizer, schedule, loss, metrics.

    Call it inside the strategy's scope, like ``model.compile``. Labels are
    integer class indices; a model with auxiliary classifiers (GoogLeNet,
    Inception v3) takes one label per image for every head.

    Args:
        model: a `keras.Model` (a kerasnets model or any classifier).
        recipe: a recipe name (`list_recipes`), a `Recipe`, or ``None`` for the
            model's own (`recipe_for(model)`: its `kerasnets.model_card` names it).
        steps_per_epoch: batches per epoch; needed by schedules that change the
            rate at given epochs (``step``, ``exponential``, warm-up).
        global_batch_size: the batch ``fit`` sees (per replica x replicas); the
            rates scale linearly from the recipe's batch (`Recipe.with_batch_size`).
        epochs: train for this many epochs instead of the paper's; the schedule
            is rescaled (`Recipe.with_epochs`).
        from_logits: whether the model outputs logits; default: read from the
            classifier's activation.
        jit_compile: passed to `keras.Model.compile` (see
            `kerasnets.training.choose_jit_compile`).
        **overrides: recipe fields to change, at the recipe's own batch size
            (``learning_rate=0.05``, ``weight_decay=0``, ...).

    The optimizer's variables are created here, for the weights trainable now
    (`_build_optimizer`): set ``trainable`` before calling it.

    Returns:
        The recipe as applied (after overrides, epochs and batch size): pass
        ``epochs=recipe.epochs`` and ``callbacks=recipe.callbacks()`` to ``fit``.

    Example:

    >>> model = kerasnets.ResNet20(weights=None)
    >>> recipe = kerasnets.training.compile_model(model, steps_per_epoch=len(train_ds))
    >>> model.fit(train_ds, validation_data=val_ds, epochs=recipe.epochs,
    ...           callbacks=recipe.callbacks())  # doctest: +SKIP
    """
    check_instance("model", model, keras.Model, "a keras.Model", context="compile_model")
    if recipe is None:
        resolved = recipe_for(model, **overrides)
    else:
        resolved = get_recipe(recipe, **overrides)
    if epochs is not None:
        resolved = resolved.with_epochs(epochs)
    if global_batch_size is not None:
        resolved = resolved.with_batch_size(global_batch_size)

    heads = output_names(model)
    if heads and resolved.plateau_monitor in ("val_accuracy", "val_loss", "accuracy", "loss"):
        prefix = "val_" if resolved.plateau_monitor.startswith("val_") else ""
        base = resolved.plateau_monitor[len(prefix):]
        if base == "accuracy":  # the main head's accuracy; the total loss stays "loss"
            resolved = resolved.replace(plateau_monitor=f"{prefix}{heads[0]}_accuracy")

    if from_logits is None:
        from_logits = outputs_logits(model)
    loss = SparseCrossentropy(label_smoothing=resolved.label_smoothing, from_logits=from_logits)
    main_output = model.outputs[list(model.output_names).index(heads[0])] if heads else model.outputs[0]
    num_classes = main_output.shape[-1]
    optimizer = resolved.make_optimizer(steps_per_epoch=steps_per_epoch)
    apply_weight_decay(model, resolved.weight_decay)

    kwargs = {}
    if heads:
        metrics = {name: _metrics(num_classes, top5=(i == 0)) for i, name in enumerate(heads)}
        losses = {name: loss for name in heads}
        if resolved.aux_loss_weight is not None:
            kwargs["loss_weights"] = {
                name: 1.0 if i == 0 else resolved.aux_loss_weight for i, name in enumerate(heads)
            }
        elif not hasattr(model, "default_loss_weights"):
            kwargs["loss_weights"] = {name: 1.0 for name in heads}
    else:
        metrics, losses = _metrics(num_classes), loss
    model.compile(optimizer=optimizer, loss=losses, metrics=metrics, jit_compile=jit_compile, **kwargs)
    _build_optimizer(model)
    return resolved


def _build_optimizer(model) -> None:
    """Creates the compiled optimizer's variables now, for ``model``'s trainable weights.

    Under TensorFlow, a model compiled outside a distribution strategy's scope gets its
    optimizer built inside the first traced train step: Keras then traces that step twice
    and wraps every slot variable's initializer in a conditional. Built here, the first
    ``fit`` or ``train_on_batch`` traces once (InceptionV3's first step took half the time;
    benchmarks/README.md). Under a strategy, and under JAX and torch, Keras builds it this
    way itself before the first step. As there, the optimizer then serves the weights that
    are trainable now: change ``trainable`` before compiling, not after.
    """
    optimizer = model.optimizer
    if optimizer is None or optimizer.built or not model.built or keras.backend.backend() != "tensorflow":
        return
    with model.distribute_strategy.scope():
        optimizer.build(model.trainable_variables)


# The name `compile_model` had before: the same function, kept so that code written for it runs.
# New code uses `compile_model`, which does not shadow the builtin `compile`.
compile = compile_model
