"""The model, contract, auxiliary-head, .keras (model card included), profiler and data checks
under one backend.

Run by tests/test_backends.py as ``KERAS_BACKEND=jax|torch python tests/_backend_checks.py
DATA_DIR OUT_DIR``: Keras picks its backend once per process, so each backend
gets one process that runs every check and prints one JSON report (last line):
``{"backend": ..., "checks": {name: "ok" | traceback}, "values": {...}, "seconds": {...}}``.
A failing check does not stop the others (``googlenet:fit_all_heads`` reads the model and
history that ``googlenet:forward_step_keras_file`` trained). The values (output shapes, parameter
and multiply-add counts) are compared by the test with TensorFlow's.

A representative subset of the registry, small: every family, both auxiliary
layouts (GoogLeNet's two heads, InceptionV3's one), at their minimum sizes.
"""

import json
import os
import sys
import time
import traceback

if os.environ.get("KERAS_BACKEND") == "jax" and "device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()

import numpy as np  # noqa: E402

import keras  # noqa: E402

import kerasnets  # noqa: E402

# name -> (size, builder kwargs)
MODELS = {
    "resnet20": (16, {"width_multiplier": 0.25}),
    "resnet50": (32, {"width_multiplier": 0.125}),
    "vgg11_bn": (32, {"width_multiplier": 0.125}),
    "alexnet": (67, {"width_multiplier": 0.125}),
    "googlenet": (79, {"width_multiplier": 0.125}),  # aux1, aux2 on by default
    "inception_v2": (75, {"width_multiplier": 0.125}),
    "inception_v3": (299, {"width_multiplier": 0.0625, "aux_classifiers": True}),  # aux needs 299
}

# Under JAX, whose eager mode compiles each new operation once (InceptionV3 at 299x299 alone
# took minutes of CPU), a subset for CI's time: residual blocks and GoogLeNet's two auxiliary
# heads; PyTorch runs every model above, InceptionV3's auxiliary head included.
JAX_MODELS = ("resnet20", "googlenet")


def models_for(backend):
    return {name: spec for name, spec in MODELS.items() if backend != "jax" or name in JAX_MODELS}


CHECKS, VALUES, SECONDS = {}, {}, {}
MODELS_BUILT = {}  # name -> the model the forward_step check trained


def check(name):
    def wrap(fn):
        keras.utils.set_random_seed(0)
        start = time.perf_counter()
        try:
            value = fn()
            CHECKS[name] = "ok"
            if value is not None:
                VALUES[name] = value
        except Exception:  # noqa: BLE001  (reported, the other checks still run)
            CHECKS[name] = traceback.format_exc()[-3000:]
        SECONDS[name] = round(time.perf_counter() - start, 1)
        return fn
    return wrap


def images(size, batch=2, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, channels)).astype("float32")


def as_dict(out):
    return out if isinstance(out, dict) else {"main": out}


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def model_checks(name, size, kwargs, out_dir):
    classes = 4

    @check(f"{name}:forward_step_keras_file")
    def _():
        model = kerasnets.get_model(name, input_shape=(size, size, 3), classes=classes, **kwargs)
        x, y = images(size), np.array([1, 3])
        out = {k: numpy(v) for k, v in as_dict(model(x, training=False)).items()}
        for key, value in out.items():
            assert value.shape == (2, classes), (key, value.shape)
            assert np.all(np.isfinite(value)), key
            np.testing.assert_allclose(value.sum(-1), 1.0, rtol=1e-4, err_msg=key)
        # One SGD step of fit, every head trained from one label, moves every trainable
        # weight: each has a gradient. The backend's default jit_compile (on under JAX, as a
        # user gets it; eager JAX compiles each operation apart, minutes for GoogLeNet).
        model.compile(keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        before = [numpy(w).copy() for w in model.trainable_weights]
        history = model.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
        still = [w.path for w, b in zip(model.trainable_weights, before) if np.array_equal(numpy(w), b)]
        assert not still, f"no gradient reached {still[:5]}"
        assert all(np.isfinite(v[0]) for v in history.history.values()), history.history
        MODELS_BUILT[name] = model
        names = [layer.name for layer in model.layers]
        assert len(names) == len(set(names))
        path = os.path.join(out_dir, f"{name}.keras")
        model.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        card = kerasnets.model_card(model)  # the model card round-trips in this backend's file
        assert card is not None and kerasnets.model_card(loaded) == card, kerasnets.model_card(loaded)
        got = {k: numpy(v) for k, v in as_dict(loaded(x, training=False)).items()}
        want = {k: numpy(v) for k, v in as_dict(model(x, training=False)).items()}
        assert sorted(got) == sorted(want)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
        return {"outputs": sorted(out), "params": int(model.count_params()), "history": sorted(history.history),
                "trainable": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
                "card": card.to_dict()}

    @check(f"{name}:contract")
    def _():
        feats = kerasnets.get_model(name, include_top=False, pooling="avg", input_shape=(size, size, 3),
                                    **{k: v for k, v in kwargs.items() if k != "aux_classifiers"})
        f = numpy(feats(images(size), training=False))
        assert f.ndim == 2 and f.shape[0] == 2 and np.all(np.isfinite(f))
        logits = kerasnets.get_model(name, classes=7, classifier_activation=None,
                                     input_tensor=keras.Input((size, size, 4)), **kwargs)
        out = as_dict(logits(images(size, channels=4), training=False))
        assert all(tuple(v.shape) == (2, 7) for v in out.values())
        return {"features": list(f.shape)}

    @check(f"{name}:profile")
    def _():
        p = kerasnets.profile(name, input_size=size, **{k: v for k, v in kwargs.items() if k != "aux_classifiers"})
        return {"params": int(p.params), "macs": int(p.macs)}


def main(data_dir, out_dir):
    backend = keras.backend.backend()
    for name, (size, kwargs) in models_for(backend).items():
        model_checks(name, size, kwargs, out_dir)

    @check("googlenet:fit_all_heads")
    def _():
        # The model fit trained above (one label, three heads): a loss and a metric per head.
        model = MODELS_BUILT["googlenet"]
        history = VALUES["googlenet:forward_step_keras_file"]["history"]
        assert {"main_loss", "aux1_loss", "aux2_loss", "main_accuracy", "aux1_accuracy"} <= set(history), history
        single = kerasnets.inference_model(model)
        assert tuple(single.output.shape) == (None, 4)
        assert kerasnets.model_card(single) == kerasnets.model_card(model)
        np.testing.assert_allclose(numpy(single(images(79), training=False)),
                                   numpy(model(images(79), training=False)["main"]), rtol=1e-5, atol=1e-6)
        return history

    @check("channels_first")
    def _():
        keras.config.set_image_data_format("channels_first")
        try:
            model = kerasnets.ResNet20(weights=None, input_shape=(3, 16, 16), width_multiplier=0.25)
            out = numpy(model(np.transpose(images(16), (0, 3, 1, 2)), training=False))
            assert out.shape == (2, 10) and np.all(np.isfinite(out))
        finally:
            keras.config.set_image_data_format("channels_last")

    @check("data_to_fit")
    def _():
        # The tf.data pipeline of kerasnets.data feeding fit/evaluate of this backend (jit as setup chooses).
        from kerasnets import data, training

        train = data.load("shapes", "train[:64]", batch_size=16, image_size=16, model="resnet20",
                          data_dir=data_dir, training=True, seed=0)
        val = data.load("shapes", "validation[:32]", batch_size=16, image_size=16, model="resnet20",
                        data_dir=data_dir)
        hw = training.setup_hardware("default", "float32", "auto")
        with hw.strategy.scope():
            model = kerasnets.ResNet20(weights=None, input_shape=(16, 16, 3), width_multiplier=0.25)
            training.compile_model(model, steps_per_epoch=train.steps_per_epoch, global_batch_size=16, epochs=1,
                                   jit_compile=hw.jit_compile)
        history = model.fit(train.dataset, validation_data=val.dataset, epochs=1, verbose=0)
        values = model.evaluate(val.dataset, return_dict=True, verbose=0)
        assert np.isfinite(history.history["loss"][0]) and 0 <= values["accuracy"] <= 1
        # What `kerasnets train` reports at its end: the same numbers (no weight decay in the
        # loss here), and no warnings from Keras on the way.
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            test = training.evaluate_model(model, val, verbose=0)
        assert abs(test["accuracy"] - values["accuracy"]) < 1e-6, (test, values)
        return {"jit_compile": hw.jit_compile, "steps": train.steps_per_epoch,
                "evaluate_warnings": [str(w.message)[:200] for w in caught]}

    @check("hardware")
    def _():
        from kerasnets import training

        auto = training.setup_hardware("auto", "auto", "auto", set_policy=False)
        report = {"auto": auto.to_dict(), "describe": auto.describe()}
        if backend == "jax":
            mirrored = training.setup_hardware("mirrored", "float32", set_policy=False)
            report["mirrored"] = mirrored.to_dict()
            keras.distribution.set_distribution(None)
            # Bad several-process arguments: one clear error before jax.distributed starts.
            from kerasnets.training import distribution

            errors = []
            for args, kwargs in (((2, 2, "127.0.0.1:1234"), {}), ((2, 0, "127.0.0.1"), {}),
                                 ((2, 0, "127.0.0.1:1234"), {"heartbeat_timeout": 0})):
                try:
                    distribution.initialize_processes(*args, **kwargs)
                    errors.append("no error")
                except ValueError as error:
                    errors.append(str(error))
            report["process_errors"] = errors
        else:
            try:
                training.setup_hardware("mirrored", "float32", set_policy=False)
            except ValueError as error:
                report["mirrored_error"] = str(error)
        return report

    if backend == "jax":
        @check("data_parallel_equals_one_device")
        def _():
            # Two logical CPU devices under DataParallel against one device, same data: the same
            # weights and BatchNorm statistics, held as ONE replicated copy (nothing to sync).
            from kerasnets import training

            x = images(16, batch=8, seed=1)
            y = np.arange(8) % 10
            results = {}
            for strategy in ("mirrored", "default"):
                hw = training.setup_hardware(strategy, "float32", set_policy=False)
                keras.utils.set_random_seed(3)
                with hw.strategy.scope():
                    model = kerasnets.ResNet20(weights=None, input_shape=(16, 16, 3), width_multiplier=0.25)
                    model.compile(keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
                model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False)
                variables = {v.path: v for v in model.variables}
                results[strategy] = ({k: numpy(v) for k, v in variables.items()}, hw.replicas, variables)
            keras.distribution.set_distribution(None)
            dp, one = results["mirrored"], results["default"]
            assert dp[1] == 2 and one[1] == 1
            bn = [k for k in dp[0] if k.endswith("moving_mean") or k.endswith("moving_variance")]
            sharding = dp[2][bn[0]].value.sharding
            assert len(sharding.device_set) == 2 and sharding.is_fully_replicated, sharding
            diff = max(float(np.max(np.abs(dp[0][k] - one[0][k]))) for k in one[0])
            moved = max(float(np.max(np.abs(v))) for k, v in one[0].items() if "moving_mean" in k)  # from 0
            assert diff < 1e-4 and moved > 1e-4, (diff, moved)
            return {"max_diff": diff, "bn_moved": moved, "bn_variables": len(bn)}

    print(json.dumps({"backend": backend, "checks": CHECKS, "values": VALUES, "seconds": SECONDS}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
