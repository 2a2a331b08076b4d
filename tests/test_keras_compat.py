"""The Keras internals of `kerasnets._keras_compat` still exist in the installed Keras.

A failure names the Keras version and the attribute that changed: the fix is in
`kerasnets/_keras_compat.py` alone.
"""

import keras
import pytest

from kerasnets import _keras_compat as compat


def _require(obj, attribute):
    if not hasattr(obj, attribute):
        pytest.fail(
            f"Keras {keras.__version__} has no {type(obj).__name__}.{attribute}, which "
            "kerasnets/_keras_compat.py reads: adapt that module to this Keras."
        )


@pytest.fixture(scope="module")
def model():
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(5, name="classifier")(x)
    main = keras.layers.Identity(name="main")(x)
    aux = keras.layers.Dense(2, activation="softmax", name="aux")(keras.layers.Flatten(name="f2")(inputs))
    inner = keras.Model(inputs, {"main": main, "aux": aux}, name="inner")
    outer_in = keras.Input((4, 4, 3))
    return inner, keras.Model(outer_in, inner(outer_in), name="outer")


def test_every_internal_is_listed():
    assert set(compat.INTERNALS) == {
        "KerasTensor._keras_history", "Layer._inbound_nodes", "Layer._flatten_layers",
        "Model._initial_epoch", "keras.src.backend.common.global_state",
    }


def test_keras_history_and_producing_layer(model):
    inner, _ = model
    main = inner.outputs[list(inner.output_names).index("main")]
    _require(main, "_keras_history")
    history = compat.keras_history(main)
    assert history.operation.name == "main" and history.node_index == 0 and history.tensor_index == 0
    assert compat.producing_layer(main).name == "main"
    assert compat.classifier_layer(main).name == "classifier"  # through the naming Identity
    assert compat.keras_history(keras.ops.ones((1,))) is None  # an eager tensor has none


def test_inbound_nodes(model):
    inner, _ = model
    dense = inner.get_layer("classifier")
    _require(dense, "_inbound_nodes")
    nodes = compat.inbound_nodes(dense)
    assert len(nodes) == 1
    assert [parent.operation.name for parent in nodes[0].parent_nodes] == ["flatten"]
    assert len(compat.inbound_nodes(inner)) == 1  # called once, inside "outer"


def test_nested_layers(model):
    _, outer = model
    _require(outer, "_flatten_layers")
    names = {layer.name for layer in compat.nested_layers(outer)}
    assert {"inner", "classifier", "main", "aux", "flatten"} <= names and "outer" not in names


def test_set_initial_epoch_is_where_fit_starts():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    _require(model, "_initial_epoch")
    compat.set_initial_epoch(model, 2)
    history = model.fit(keras.ops.ones((4, 2)), keras.ops.ones((4, 1)), epochs=4, verbose=0)
    assert history.epoch == [2, 3]
    compat.set_initial_epoch(model, None)
    history = model.fit(keras.ops.ones((4, 2)), keras.ops.ones((4, 1)), epochs=2, verbose=0)
    assert history.epoch == [0, 1]


def test_deferred_variables_initialise_nothing():
    try:
        from keras.src.backend.common import global_state
    except ImportError:
        pytest.fail(f"Keras {keras.__version__} has no keras.src.backend.common.global_state, "
                    "which kerasnets/_keras_compat.py reads: adapt that module to this Keras.")
    with compat.deferred_variables():
        layer = keras.layers.Dense(3)
        layer.build((None, 7))
    assert tuple(layer.kernel.shape) == (7, 3)
    assert not global_state.get_global_attribute("uninitialized_variables")
