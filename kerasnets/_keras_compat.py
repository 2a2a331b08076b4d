"""The Keras internals kerasnets relies on, reached in this one module.

Keras 3 has no public API for walking a functional graph from a tensor back to the
layer call that made it, for a layer's calls, for every nested layer of a model, or
for the epoch ``fit`` starts at; kerasnets reads the private attributes below for
those. When a Keras release renames one, this module and ``tests/test_keras_compat.py``
are the only places to change (the test names the Keras version and the attribute).
The import-order test keeps the attributes out of every other module.
"""

from __future__ import annotations

import contextlib

import keras

__all__ = [
    "INTERNALS",
    "keras_history",
    "producing_layer",
    "classifier_layer",
    "inbound_nodes",
    "nested_layers",
    "set_initial_epoch",
    "deferred_variables",
]

# What each helper reads, for the test that checks the installed Keras still has it.
INTERNALS = {
    "KerasTensor._keras_history": "keras_history, producing_layer, classifier_layer",
    "Layer._inbound_nodes": "inbound_nodes",
    "Layer._flatten_layers": "nested_layers",
    "Model._initial_epoch": "set_initial_epoch",
    "keras.src.backend.common.global_state": "deferred_variables",
}


def keras_history(tensor):
    """``(operation, node_index, tensor_index)`` of the call that made a symbolic tensor,
    or ``None`` for a tensor no layer made (a model input made by hand)."""
    return getattr(tensor, "_keras_history", None)


def producing_layer(tensor):
    """The layer whose call produced a symbolic tensor of a functional model."""
    return tensor._keras_history[0]


def classifier_layer(tensor):
    """The layer that computed an output, looking through the `keras.layers.Identity`
    that only names it (`AuxiliaryClassifierModel`'s ``main``/``aux1``/... outputs)."""
    layer = producing_layer(tensor)
    if isinstance(layer, keras.layers.Identity):
        layer = producing_layer(layer.input)
    return layer


def inbound_nodes(layer) -> list:
    """The calls of ``layer`` (Keras ``Node`` objects, with ``parent_nodes`` and ``operation``)."""
    return layer._inbound_nodes


def nested_layers(model) -> list:
    """Every layer of ``model``, nested models' layers included, ``model`` itself left out."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def set_initial_epoch(model, epoch):
    """The epoch the next ``model.fit`` starts at (``None``: the ``initial_epoch`` it is given),
    as keras.callbacks.BackupAndRestore sets it."""
    model._initial_epoch = epoch


@contextlib.contextmanager
def deferred_variables():
    """Builds layers without initialising their variables (only their shapes are needed).

    Inside `keras.StatelessScope(initialize_variables=False)` a new variable records its
    initializer instead of running it; the variables so created are dropped from Keras's
    list of pending initialisations on exit, so nothing initialises them later. With a
    Keras that lacks the internal, layers are built normally (slower, same shapes).
    """
    try:
        from keras.src.backend.common import global_state  # noqa: PLC0415
    except ImportError:
        yield
        return
    pending = global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True)
    before = len(pending)
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        pending = global_state.get_global_attribute("uninitialized_variables")
        if pending is not None and len(pending) > before:
            del pending[before:]
