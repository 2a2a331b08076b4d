"""`kerasnets.training.TrainingConfig`: what a run is asked for, typed, frozen and
validated once; the CLI and the Python API build the same one; run.json records it."""

import dataclasses
import json
import os

import keras
import pytest

from kerasnets.cli import build_parser
from kerasnets.cli.train import training_config
from kerasnets.files import Manifest
from kerasnets.training import TrainingConfig, TrainingRun, prepare, train
from kerasnets.training import _run


def _no_data(*args, **kwargs):
    raise AssertionError("the data was loaded before the arguments were checked")


def test_config_is_frozen_and_owns_its_dicts():
    overrides = {"weight_decay": 0.0}
    config = TrainingConfig(model="ResNet20", overrides=overrides, epochs=3)
    assert config.model == "resnet20"  # the registered name
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 4
    overrides["label_smoothing"] = 0.1  # the caller's dict: not the config's
    assert config.overrides == {"weight_decay": 0.0}
    assert dataclasses.replace(config, epochs=4).epochs == 4


@pytest.mark.parametrize("options, message", [
    (dict(epochs=0), "epochs must be a positive integer or None. Received: epochs=0"),
    (dict(batch_size=2.5), "batch_size must be a positive integer or None"),
    (dict(learning_rate="fast"), "learning_rate must be"),
    (dict(overrides={"epochs": 3}), "overrides must be free of ['epochs']"),
    (dict(learning_rate=0.1, overrides={"learning_rate": 1.0}), "learning_rate must be given once"),
    (dict(model_kwargs={"classes": 3}), "model_kwargs must be free of ['classes']"),
    (dict(precision="half"), "precision must be one of"),
    (dict(strategy="gpus"), "strategy must be one of"),
    (dict(verify="all"), "verify must be one of"),
    (dict(verbose=3), "verbose must be one of"),
    (dict(overwrite="yes"), "overwrite must be True or False"),
    (dict(seed=1.5), "seed must be an integer or None"),
    (dict(recipe="nope"), "nope"),
])
def test_a_bad_value_raises_before_any_work(options, message, tmp_path, monkeypatch):
    monkeypatch.setattr(_run, "_load_split", _no_data)
    with pytest.raises(ValueError) as caught:
        TrainingConfig(model="resnet20", **options)
    assert message in str(caught.value)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=message.split(" ")[0]):  # train() builds the same config
        train("resnet20", output=str(out), **options)
    assert not out.exists()  # no folder, no lock


def test_an_unknown_model_is_refused_by_the_config():
    with pytest.raises(ValueError, match="resnet21"):
        TrainingConfig(model="resnet21")


def test_train_takes_a_config_alone():
    config = TrainingConfig(model="resnet20")
    with pytest.raises(ValueError, match=r"options must be empty with a TrainingConfig.*\['epochs'\]"):
        train(config, epochs=3)
    with pytest.raises(ValueError, match=r"\['dataset'\]"):
        prepare(config, "cifar10")


def test_to_json_is_the_request_and_reads_back():
    config = TrainingConfig(
        model="resnet20", dataset="shapes/64", recipe="resnet_cifar", batch_size=16, image_size=32,
        overrides={"weight_decay": 0.0}, model_kwargs={"width_multiplier": 0.5}, seed=3,
        weights=None, epochs=2, train_split="train[:64]", augment=None,
    )
    request = config.to_json()
    assert list(request) == ["model", "dataset", "image_size", "batch_size", "recipe", "overrides",
                             "learning_rate", "model_kwargs", "train_split", "augment", "seed"]
    assert json.loads(json.dumps(request, allow_nan=False)) == request
    back = TrainingConfig.from_json(request, epochs=2)
    assert back == config and back.to_json() == request
    assert TrainingConfig(model="resnet20", weights="imagenet").to_json()["weights"] == "imagenet"


def _complete_run(folder, request, epochs):
    """A complete run folder as `kerasnets train` leaves it (run.json and the manifest)."""
    os.makedirs(folder)
    Manifest(folder, "run").record("run.json")
    with open(os.path.join(folder, "run.json"), "w", encoding="utf-8") as f:
        json.dump({"format": 1, "status": "complete", "epochs": epochs, "request": request,
                   "created": "2024-01-01T00:00:00+00:00"}, f)


def test_a_run_resumes_by_the_recorded_request(tmp_path, monkeypatch):
    # The run compares its request (the config's to_json, the batch and recipe resolved) with
    # run.json's: the same config is the complete run (no data loaded), another is refused.
    monkeypatch.setattr(_run, "_load_split", _no_data)
    folder = str(tmp_path / "run")
    config = TrainingConfig(model="resnet20", recipe="resnet_cifar", batch_size=16, epochs=2,
                            output=folder, precision="float32", seed=1)
    _complete_run(folder, config.to_json(), epochs=2)
    run = prepare(config)
    try:
        assert isinstance(run, TrainingRun) and run.complete and run.model is None
        assert run.request == config.to_json() and run.output == folder
        assert run.created == "2024-01-01T00:00:00+00:00"
    finally:
        run.close()
    # Defaults spelt out or not, the same request: the recipe's own batch and name.
    defaults = TrainingConfig(model="resnet20", epochs=2, output=folder, precision="float32", seed=1)
    with pytest.raises(ValueError, match=r"holds another run \(batch_size: 16 -> 32\)"):
        prepare(defaults)


def test_cli_and_python_api_build_the_same_config():
    argv = ["train", "resnet20", "--dataset", "shapes/64", "--epochs", "3", "--batch-size", "16",
            "--image-size", "32", "--width-multiplier", "0.5", "--recipe", "resnet_cifar",
            "--set", "weight_decay=0", "--set", "nesterov=true", "--lr", "0.05", "--seed", "7",
            "--output", "runs/x", "--precision", "float32", "--xla", "off", "--augment", "none",
            "--verify", "none", "--train-split", "train[:64]", "--val-split", "validation[:32]",
            "--test-split", "test[:32]", "--overwrite", "--no-export", "--verbose", "2",
            "-O", "zero_init_residual=false"]
    from_cli = training_config(build_parser().parse_args(argv))
    from_api = TrainingConfig(
        model="resnet20", dataset="shapes/64", epochs=3, batch_size=16, image_size=32,
        model_kwargs={"width_multiplier": 0.5, "zero_init_residual": False}, recipe="resnet_cifar",
        overrides={"weight_decay": 0.0, "nesterov": True}, learning_rate=0.05, seed=7,
        output="runs/x", precision="float32", xla="off", augment=None, verify=None,
        train_split="train[:64]", validation_split="validation[:32]", test_split="test[:32]",
        overwrite=True, export=False, verbose=2,
    )
    assert from_cli == from_api
    assert from_cli.to_json() == from_api.to_json()
    # The defaults of the command are the defaults of train().
    assert training_config(build_parser().parse_args(["train", "resnet20"])) == TrainingConfig(model="resnet20")


def test_callbacks_are_keras_callbacks():
    callback = keras.callbacks.Callback()
    assert TrainingConfig(model="resnet20", callbacks=[callback]).callbacks == (callback,)
    with pytest.raises(ValueError, match="callbacks must be a sequence of Keras callbacks"):
        TrainingConfig(model="resnet20", callbacks=["csv"])
