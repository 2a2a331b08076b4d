"""Models with auxiliary classifiers: one label per image trains every head.

GoogLeNet (Szegedy et al., 2014) trains two auxiliary classifiers next to the
main one, "their loss ... added to the total loss of the network with a discount
weight (the losses of the auxiliary classifiers were weighted by 0.3)"; Inception
v3 trains one (weighted 0.4 in the released training script). Such a model is an
`AuxiliaryClassifierModel`: a functional `keras.Model` whose outputs are a dict
``{"main": ..., "aux1": ..., "aux2": ...}`` (never a positional tuple: see
docs/architecture.md) and which does the label plumbing itself:

* ``compile(loss=...)`` with **one** loss applies it to every head and defaults
  ``loss_weights`` to ``{"main": 1.0, <each aux head>: model.aux_loss_weight}``.
  A loss dict keyed by output name is kept; a partial ``loss_weights`` dict is
  merged with those defaults.
* ``metrics=[...]`` (one flat list) is given to every head, each head with its
  own metric objects, so the history reads ``main_accuracy``, ``aux1_accuracy``,
  ... A dict keyed by output name is kept (``{"main": ["accuracy"]}`` measures
  the main head only).
* ``fit``/``evaluate`` with a single label tensor per batch (``(images, labels)``
  arrays or a ``tf.data`` dataset) send the same labels to every head. Labels
  given as a dict keyed by output name are used as they are.
* The history holds the total ``loss`` (``main + w * aux1 + w * aux2``) and each
  head's unweighted ``main_loss``, ``aux1_loss``, ...

The plumbing lives in `compute_loss` and `compute_metrics` (which every Keras
backend's ``train_step`` and ``test_step`` call, also per replica under
``tf.distribute``), so no custom training loop is involved. The class is
registered, so ``.keras`` files load with ``safe_mode=True`` and no
``custom_objects``, compiled state included.

At inference only the main classifier is used: `inference_model` returns the
single-output model that shares the trained layers.

Example::

    model = kerasnets.GoogLeNet(weights=None, classes=10, input_shape=(96, 96, 3))
    model.compile("sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(images, labels, epochs=1)  # one label per image
    sorted(history.history)
    # ['aux1_accuracy', 'aux1_loss', 'aux2_accuracy', 'aux2_loss', 'loss',
    #  'main_accuracy', 'main_loss']
    serving = kerasnets.inference_model(model)  # images -> main predictions
"""

from __future__ import annotations

import keras

from kerasnets._keras_compat import classifier_layer, producing_layer
from kerasnets._validate import check_instance, check_keys, check_number, fail

__all__ = ["AuxiliaryClassifierModel", "inference_model", "outputs_logits", "MAIN_OUTPUT"]

MAIN_OUTPUT = "main"


def _is_nested(value):
    return isinstance(value, (list, tuple, dict))


@keras.saving.register_keras_serializable(package="kerasnets")
class AuxiliaryClassifierModel(keras.Model):
    """A functional model with a main and auxiliary classifiers as dict outputs.

    Build it like a functional model, ``AuxiliaryClassifierModel(inputs,
    {"main": y, "aux1": a1, ...}, aux_loss_weight=0.3)``; each output is the
    output of a layer named like its key (`with_named_outputs` does that).

    Args:
        aux_loss_weight: the default weight of every auxiliary loss in the total
            loss (the main loss weighs 1). Read by `compile`; to change it for a
            compiled model, compile again (or pass ``loss_weights``).
    """

    def __init__(self, *args, aux_loss_weight=0.3, **kwargs):
        super().__init__(*args, **kwargs)
        self.aux_loss_weight = check_number("aux_loss_weight", aux_loss_weight, allow_zero=True)

    # -- the heads ---------------------------------------------------------

    @property
    def head_names(self):
        """The output names, main head first: ``["main", "aux1", "aux2"]``."""
        names = list(self.output_names)
        if MAIN_OUTPUT in names:
            names.remove(MAIN_OUTPUT)
            names.insert(0, MAIN_OUTPUT)
        return names

    @property
    def default_loss_weights(self):
        """``{"main": 1.0, "aux1": aux_loss_weight, ...}``: what `compile` uses by default."""
        return {
            name: 1.0 if name == MAIN_OUTPUT else self.aux_loss_weight
            for name in self.head_names
        }

    # -- compile: one loss and one metric list for every head ---------------

    def compile(
        self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
        weighted_metrics=None, **kwargs,
    ):
        """`keras.Model.compile`, with one loss and one metric list for every head.

        Args:
            loss: one loss (name, function or `keras.losses.Loss`) for every head,
                or a dict keyed by output name.
            loss_weights: ``None`` (default: `default_loss_weights`) or a dict
                keyed by output name; missing heads keep their default weight.
            metrics: one flat list of metrics, measured on every head, or a dict
                keyed by output name.
            weighted_metrics: as ``metrics``.
            **kwargs: the other arguments of `keras.Model.compile`.
        """
        loss, loss_weights = self._expand_loss(loss, loss_weights)
        super().compile(
            optimizer=optimizer,
            loss=loss,
            loss_weights=loss_weights,
            metrics=self._expand_metrics(metrics, "metrics"),
            weighted_metrics=self._expand_metrics(weighted_metrics, "weighted_metrics"),
            **kwargs,
        )

    def _expand_loss(self, loss, loss_weights):
        heads = self.head_names
        if loss is None:
            return None, loss_weights
        if isinstance(loss, (list, tuple)):
            fail("loss", f"one loss (used by every head) or a dict keyed by output name {heads}, "
                 "not a positional list (Keras sorts dict outputs by name)", loss, context=self.name)
        if isinstance(loss, dict):
            check_keys("loss", loss, heads, what="outputs", context=self.name)
        else:
            loss = {name: loss for name in heads}
        if loss_weights is not None:
            check_instance("loss_weights", loss_weights, dict, f"None (main 1.0, auxiliary heads "
                           f"{self.aux_loss_weight}) or a dict keyed by output name {heads}", context=self.name)
        given = dict(check_keys("loss_weights", loss_weights or {}, heads, what="outputs", context=self.name))
        weights = {**self.default_loss_weights, **given}
        return loss, {name: float(weights[name]) for name in loss}

    def _expand_metrics(self, metrics, argument):
        if metrics is None or isinstance(metrics, dict):
            return metrics
        if not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        if any(_is_nested(m) for m in metrics):
            fail(argument, "one flat list (measured on every head) or a dict keyed by output name "
                 f"{self.head_names}, not a positional nested list", metrics, context=self.name)
        return {
            name: [m if name == MAIN_OUTPUT else _fresh_metric(m) for m in metrics]
            for name in self.head_names
        }

    def compile_from_config(self, config):
        # Keras skips compile_from_config for models that override compile();
        # the stored config is the expanded one, which `compile` keeps as is.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    # -- one label per image for every head -----------------------------------

    def _labels_per_head(self, y, y_pred):
        if y is None or _is_nested(y) or not isinstance(y_pred, dict):
            return y
        return {name: y for name in y_pred}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(
            x, self._labels_per_head(y, y_pred), y_pred, sample_weight, training=training
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(
            x, self._labels_per_head(y, y_pred), y_pred, sample_weight=sample_weight
        )

    def get_config(self):
        config = super().get_config()
        config["aux_loss_weight"] = self.aux_loss_weight
        return config


def _fresh_metric(metric):
    """A new metric object of the same kind (each head accumulates its own state)."""
    if isinstance(metric, keras.metrics.Metric):
        return type(metric).from_config(metric.get_config())
    return metric  # a name or a function: Keras makes one object per head


def with_named_outputs(inputs, outputs, *, name, aux_loss_weight, **kwargs):
    """Builds the model; dict outputs become an `AuxiliaryClassifierModel`.

    Each dict output goes through an ``Identity`` layer named like its key, so that
    the output names (and the history's ``main_loss``, ``aux1_accuracy``, ...) are
    the keys while the classifiers keep their names (``predictions``,
    ``aux1_predictions``). A model without dict outputs is a plain `keras.Model`.
    Pass it (with `functools.partial`) as ``build_application(model_class=...)``.
    """
    if not isinstance(outputs, dict):
        return keras.Model(inputs, outputs, name=name, **kwargs)
    # float32 like the classifiers (Head.classifier), also under mixed precision.
    outputs = {k: keras.layers.Identity(name=k, dtype="float32")(v) for k, v in outputs.items()}
    return AuxiliaryClassifierModel(
        inputs, outputs, name=name, aux_loss_weight=aux_loss_weight, **kwargs
    )


def inference_model(model):
    """The single-output model used at inference; it shares ``model``'s layers.

    For a model with auxiliary classifiers (dict outputs with a ``"main"`` key)
    returns a `keras.Model` from the same inputs to the main classifier: the same
    layer objects, so training either one trains both and no weights are copied.
    Its layers are exactly those of the same architecture built with
    ``aux_classifiers=False``. Any other model is returned unchanged.

    Args:
        model: a `keras.Model`.

    Returns:
        A `keras.Model` with a single output.

    Example:

    >>> import kerasnets
    >>> model = kerasnets.GoogLeNet(weights=None)   # outputs main, aux1, aux2
    >>> serving = kerasnets.inference_model(model)  # outputs the main predictions
    >>> serving.output_shape
    (None, 1000)
    """
    check_instance("model", model, keras.Model, "a keras.Model", context="inference_model")
    names = list(getattr(model, "output_names", None) or [])
    if len(names) < 2 or MAIN_OUTPUT not in names:
        return model
    main = model.outputs[names.index(MAIN_OUTPUT)]
    layer = producing_layer(main)
    if isinstance(layer, keras.layers.Identity) and layer.name == MAIN_OUTPUT:
        main = layer.input  # the classifier itself, as in the aux-free model
    return keras.Model(model.inputs[0] if len(model.inputs) == 1 else model.inputs, main, name=model.name)


def outputs_logits(model) -> bool:
    """Whether the model's main classifier has no activation, so that it outputs logits.

    The main output is ``main`` of a model with several outputs, else the first; the
    `keras.layers.Identity` that names an output is looked through. Training reads it for
    the loss's ``from_logits``, export for what the serving signature returns.
    """
    names = list(getattr(model, "output_names", None) or [])
    index = names.index(MAIN_OUTPUT) if MAIN_OUTPUT in names else 0
    try:
        layer = classifier_layer(model.outputs[index])
    except (AttributeError, IndexError, TypeError):
        return False
    return getattr(layer, "activation", None) is keras.activations.linear
