"""The model card: what a model built by kerasnets is travels with it (kerasnets.card).

Every reader (export, recipes, feature stages, the profiler, the data pipeline,
preprocess_input) takes the registered name, the builder arguments, the weights and
their preprocessing from the card, never from ``model.name``. The card under JAX and
torch: tests/_backend_checks.py; through ``kerasnets train`` (resume, best checkpoint,
fine-tuning): tests/test_train_cli.py and tests/test_torchvision_weights.py.
"""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import _caffe_files as cf
import kerasnets
from _data_fixtures import write_id_folder, write_image
from _weight_cache import (  # noqa: F401  (weight_cache: an autouse fixture)
    place, save_safetensors, torchvision_state, use_preset, weight_cache, write_legacy_h5,
)
from kerasnets.cli import main
from kerasnets.preprocessing import Preprocessing
from kerasnets.weights import WeightFile


def _plain_net(name="net"):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name=name)


def _same(a, b, tol=1e-4):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-6)) <= tol


# --------------------------------------------------------------------------- the record


def test_the_card_records_what_the_builder_built():
    renamed = kerasnets.ResNet20(weights=None, width_multiplier=0.25, name="custom")
    card = kerasnets.model_card(renamed)
    assert isinstance(card, kerasnets.ModelCard) and renamed.name == "custom"
    assert card.model == "resnet20" and dict(card.builder_kwargs) == {"width_multiplier": 0.25}
    assert card.weights is None and card.preprocessing == kerasnets.get_model_info("resnet20").preprocessing
    plain = kerasnets.ResNet20(weights=None, residual=False, input_tensor=keras.Input((24, 24, 3)))
    assert plain.name == "plain20"
    assert kerasnets.model_card(plain).model == "resnet20"
    assert dict(kerasnets.model_card(plain).builder_kwargs) == {"residual": False, "input_shape": [24, 24, 3]}
    # Aliases land on their argument; a preset's architecture arguments are recorded.
    vgg = kerasnets.VGG11(weights=None, include_top=False, block_widths=[8, 8, 8, 8, 8], pooling="max")
    assert dict(kerasnets.model_card(vgg).builder_kwargs) == {
        "include_top": False, "pooling": "max", "stage_widths": [8, 8, 8, 8, 8]}
    assert kerasnets.model_card(_plain_net()) is None
    with pytest.raises(ValueError, match="model must be a keras.Model"):
        kerasnets.model_card("resnet20")


def test_the_card_survives_every_path_that_rebuilds_the_model(tmp_path):
    model = kerasnets.GoogLeNet(weights=None, width_multiplier=0.125, input_shape=(79, 79, 3), classes=4,
                                name="mine")
    card = kerasnets.model_card(model)
    assert dict(card.builder_kwargs) == {"width_multiplier": 0.125, "input_shape": [79, 79, 3], "classes": 4}
    path = str(tmp_path / "googlenet.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)  # an AuxiliaryClassifierModel
    assert type(loaded) is type(model) and kerasnets.model_card(loaded) == card
    backbone = kerasnets.inference_model(loaded)
    rebuilt = {
        "clone_model": keras.models.clone_model(model),
        "clone_model(clone_function)": keras.models.clone_model(
            model, clone_function=lambda layer: layer.__class__.from_config(layer.get_config())),
        "inference_model": backbone,
        "feature_extractor": kerasnets.feature_extractor(loaded, stages=["inception_4e"]),
        "a new head": keras.Model(backbone.input, keras.layers.Dense(2)(backbone.output)),
        "called as a layer": keras.Sequential([keras.Input((79, 79, 3)), backbone, keras.layers.Dense(2)]),
    }
    assert {k: kerasnets.model_card(m) for k, m in rebuilt.items()} == {k: card for k in rebuilt}
    # Two kerasnets models in one model: it is neither of them.
    other = kerasnets.ResNet20(weights=None, width_multiplier=0.25, input_shape=(79, 79, 3), classes=4)
    inputs = keras.Input((79, 79, 3))
    both = keras.Model(inputs, keras.layers.Average()([backbone(inputs), other(inputs)]))
    assert kerasnets.model_card(both) is None
    # The card passes any input through unchanged, in any dtype.
    layer = model.get_layer("model_card")
    x = np.ones((1, 3, 3, 3), np.float16)
    assert layer(x).dtype == x.dtype and not layer.weights


# --------------------------------------------------------------------------- the readers


@pytest.mark.parametrize("name,kwargs,recipe", [
    ("resnet20", dict(name="custom", width_multiplier=0.25), "resnet_cifar"),
    ("resnet20", dict(residual=False, width_multiplier=0.25), "resnet_cifar"),  # named plain20
    ("resnet50", dict(width_multiplier=0.5, input_shape=(32, 32, 3)), "resnet"),
])
def test_renamed_plain_and_narrow_models_report_their_architecture(name, kwargs, recipe):
    from kerasnets import export, training

    model = kerasnets.get_model(name, weights=None, **kwargs)
    recorded = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items() if k != "name"}
    spec = export.resolve_spec(model)
    record = spec.metadata(format="saved_model")  # what kerasnets_export.json holds
    assert (record["model_name"], record["builder_kwargs"]) == (name, recorded)
    assert record["preprocessing"]["name"] == "imagenet_mean_std" and record["weights"] is None
    assert training.compile_model(model, steps_per_epoch=1).name == recipe  # no recipe given
    features = kerasnets.feature_extractor(model)
    assert sorted(features.output) == sorted(kerasnets.models.feature_stages(name))
    assert kerasnets.model_card(features).model == name
    assert kerasnets.profile(model).title.startswith(name + " (")


def test_a_model_without_a_card_still_needs_a_name_or_a_preprocessing():
    from kerasnets import export, training

    net = _plain_net(name="resnet20")  # a registered name is not a card
    with pytest.raises(ValueError, match="carries no kerasnets model card.*Pass model_name="):
        export.resolve_spec(net)
    assert export.resolve_spec(net, model_name="resnet20").preprocessing.name == "imagenet_mean_std"
    with pytest.raises(ValueError, match="carries no kerasnets model card.*Pass recipe="):
        training.recipe_for(net)
    with pytest.raises(ValueError, match="carries no kerasnets model card"):
        kerasnets.preprocess_input(np.zeros((1, 2, 2, 3)), net)
    # A card and another name: one of them is wrong.
    with pytest.raises(ValueError, match="model_name must be None or 'resnet20'"):
        export.resolve_spec(kerasnets.ResNet20(weights=None), model_name="resnet56")


def test_one_preprocessing_per_model_and_weights(tmp_path):
    """preprocess_input, data.load (the training pipeline's loader) and a built model's card
    give the same numbers for the same (model, weights); weights=None is the model's own."""
    for label in ("a", "b"):
        write_image(str(tmp_path / "images" / label / "0.png"), np.full((64, 64, 3), 128, np.uint8))
    pixels = np.full((1, 8, 8, 3), 128.0, np.float32)
    for name, weights in [("resnet50", None), ("resnet50", "imagenet"), ("resnet50", "torchvision_v2"),
                          ("inception_v3", None), ("alexnet", None)]:
        split = kerasnets.data.load(str(tmp_path / "images"), "all", model=name, weights=weights, image_size=8,
                                    batch_size=2, verify=None)
        images, _ = next(iter(split.dataset))
        want = kerasnets.preprocess_input(pixels, name, weights=weights)
        np.testing.assert_allclose(images.numpy()[:1], want, rtol=1e-5, atol=1e-6, err_msg=f"{name}, {weights}")
        assert split.preprocessing.name == kerasnets.weights.preprocessing_for(name, weights).name
    assert kerasnets.weights.preprocessing_for("resnet50").name == "imagenet_mean_std"  # weights=None
    model = kerasnets.ResNet20(weights=None, width_multiplier=0.25, input_shape=(8, 8, 3))
    split = kerasnets.data.load(str(tmp_path / "images"), "all", model=model, batch_size=2, verify=None)
    assert split.image_size == 8 and split.preprocessing.name == kerasnets.model_card(model).preprocessing.name
    np.testing.assert_allclose(next(iter(split.dataset))[0].numpy()[:1],
                               kerasnets.preprocess_input(pixels, model), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- every preset path

# Every preprocessing of the presets, each with its smallest model and without the classifier:
# what this test checks (the card from the weight file to the served preprocessing) depends
# neither on the converter nor on the classifier, which tests/test_weights.py and
# tests/test_torchvision_weights.py check against their sources for every converter.
# ResNet-50 with keras.applications' weights is the case the record was made for (its file
# expects RGB minus the mean pixel, not its family's default). Writing a SavedModel costs
# about 15 CPU-seconds for a ResNet-50: two cases write one with `kerasnets export`; the
# others compute what its signature computes (the model reloaded from the file, fed by
# the export's own preprocessing function with the export's own spec).
PRESET_PATHS = [
    # model, preset, input size, SavedModel: converter, preprocessing (the presets that share it)
    ("resnet50", "keras_applications", 32, True),  # keras_resnet, mean_subtraction (keras.applications'
    # ResNets and VGGs)
    ("alexnet", "torchvision_v1", 63, True),  # torchvision_alexnet, imagenet_mean_std (every V1)
    ("inception_v3", "keras_applications", 75, False),  # keras_by_order, inception
    ("resnet50", "torchvision_v2", 32, False),  # torchvision_resnet, imagenet_mean_std at 224/232 (every V2)
    ("googlenet", "bvlc", 79, False),  # caffe_googlenet, bvlc_googlenet
    ("alexnet", "bvlc", 67, False),  # caffe_alexnet, bvlc_alexnet (227/256 crops)
]
_KA_BUILDERS = {"resnet50": "ResNet50", "inception_v3": "InceptionV3"}


def _place_notop_file(monkeypatch, name, preset_name, size):
    """A file of ``preset_name`` in the source's layout, the classifier left out, in the cache."""
    preset = kerasnets.weights.get_preset(name, preset_name)
    if preset_name == "bvlc":  # a .caffemodel (the convolutions only, for AlexNet)
        shapes = cf.alexnet_shapes()[:5] if name == "alexnet" else cf.googlenet_shapes()
        layers = cf.random_layers(shapes)
        return place(monkeypatch, name, preset_name, True, lambda path: cf.caffemodel(layers).write(path))
    if preset_name == "keras_applications":
        source = getattr(keras.applications, _KA_BUILDERS[name])(
            weights=None, include_top=False, input_shape=(size, size, 3))
        return place(monkeypatch, name, preset_name, False, lambda path: write_legacy_h5(source, path))
    if preset.file.name.endswith(".pth"):  # the same arrays as safetensors (the .pth reader: its own test)
        stem = preset.file.name[: -len(".pth")]
        use_preset(monkeypatch, dataclasses.replace(
            preset, file=WeightFile(preset.file.url, preset.file.file_hash, file_name=f"{stem}.safetensors")))
    state = torchvision_state(name, prefixes="features." if name == "alexnet" else None)
    return place(monkeypatch, name, preset_name, True, lambda path: save_safetensors(state, path))


@pytest.mark.parametrize("name,preset_name,size,saved_model", PRESET_PATHS,
                         ids=[f"{m}-{p}" for m, p, _, _ in PRESET_PATHS])
def test_a_preset_model_saved_then_exported_serves_what_it_predicts(monkeypatch, tmp_path, name, preset_name,
                                                                     size, saved_model):
    _, preset = _place_notop_file(monkeypatch, name, preset_name, size)
    model = kerasnets.get_model(name, weights=preset_name, include_top=False, pooling="avg",
                                input_shape=(size, size, 3))
    card = kerasnets.model_card(model)
    assert (card.weights.preset, card.weights.source) == (preset_name, preset.source)
    assert card.preprocessing == preset.preprocessing and card.weights.file_hash in (
        preset.file.file_hash, getattr(preset.notop_file, "file_hash", None))
    path = str(tmp_path / "model.keras")
    model.save(path)
    images = np.random.default_rng(0).integers(0, 256, (2, size + 13, size + 7, 3), dtype=np.uint8)
    if saved_model:
        out = str(tmp_path / "served")
        assert main(["export", path, "--output", out]) == 0  # loads the file, safe_mode=True
        record = kerasnets.export.read_metadata(out)  # from the loaded model's card
        signature = tf.saved_model.load(out).signatures["serving_default"]
        served = signature(images=tf.constant(images))["features"]
    else:  # what `kerasnets export` resolves from the file, and what its signature computes
        loaded = kerasnets.export.exportable_model(keras.models.load_model(path, safe_mode=True))
        spec = kerasnets.export.resolve_spec(loaded)
        record = json.loads(json.dumps(spec.metadata(format="saved_model")))  # as written
        served = loaded(kerasnets.export.eval_preprocess(images, size, spec.preprocessing), training=False)
    assert (record["model_name"], record["builder_kwargs"]) == (name, dict(card.builder_kwargs))
    assert record["weights"] == card.weights.to_dict()
    assert {k: record["preprocessing"][k] for k in ("name", "mean", "std", "crop_fraction")} == json.loads(
        json.dumps(preset.preprocessing.to_dict()))
    # The same resize and crop, then the preset's normalisation as preprocess_input applies it.
    raw = Preprocessing("raw", crop_fraction=preset.preprocessing.crop_fraction)
    resized = kerasnets.data.preprocess_for_eval(images, size, raw).numpy()
    expected = model(kerasnets.preprocess_input(resized, name, weights=preset_name), training=False)
    assert _same(served, expected)


def test_fine_tuning_keeps_the_preset_and_what_it_fed_the_model(monkeypatch, tmp_path):
    """`kerasnets train alexnet --weights torchvision_v1 --dataset DIR`: the run's model.keras,
    best checkpoint and export name the preset it started from and the preprocessing it was fed."""
    _place_notop_file(monkeypatch, "alexnet", "torchvision_v1", 63)
    write_id_folder(str(tmp_path / "images"), classes=("a", "b", "c"), per_class=5, size=(72, 80))
    result = kerasnets.training.train("alexnet", str(tmp_path / "images"), weights="torchvision_v1", epochs=1,
                                      batch_size=4, image_size=67, output=str(tmp_path / "run"), verify=None,
                                      verbose=0)
    with open(result.files["run"]) as f:
        fed = json.load(f)["preprocessing"]
    assert fed["name"] == "imagenet_mean_std"  # the preset's (AlexNet's own is mean_subtraction)
    for name in ("model", "best_checkpoint"):
        card = kerasnets.model_card(keras.models.load_model(result.files[name], compile=False))
        assert (card.model, card.weights.preset, card.weights.new_head) == ("alexnet", "torchvision_v1", True)
        assert json.loads(json.dumps(card.preprocessing.to_dict())) == fed, name
        assert dict(card.builder_kwargs) == {"classes": 3, "input_shape": [67, 67, 3], "variant": "torchvision"}
    record = kerasnets.export.read_metadata(result.files["saved_model"])
    assert record["weights"] == card.weights.to_dict()
    assert {k: record["preprocessing"][k] for k in fed} == fed


def test_the_cases_above_cover_every_presets_preprocessing():
    """A preset with a new preprocessing needs its case above."""
    covered = {kerasnets.weights.get_preset(name, preset).preprocessing for name, preset, _, _ in PRESET_PATHS}
    missing = [f"{p.model}/{p.name}" for p in kerasnets.weights.list_presets() if p.preprocessing not in covered]
    assert not missing, f"add a case to PRESET_PATHS for the preprocessing of {missing}"
