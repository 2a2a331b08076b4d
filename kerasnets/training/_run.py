"""The whole training run behind ``kerasnets train``: `train`, `prepare`, `evaluate_model`.

A run folder (``--output``, default ``runs/<model>-<dataset>``)::

    run.json                 what was trained and how (schema below), the results
    log.csv                  one row per epoch: learning_rate, loss, accuracy,
                             top5_accuracy, val_* (and per head: main_*, aux1_*, ...)
    curves.png               loss and accuracy per epoch, train and validation
    tensorboard/             TensorBoard logs (train/, validation/)
    checkpoints/best.keras   the model of the best validation accuracy so far
                             (model.keras and best.keras carry the model card: the
                             registered name, builder arguments, the preset a
                             --weights run started from, the preprocessing it was fed)
    checkpoints/best.json    its score and epoch
    model.keras              the final model (with its auxiliary heads, compiled)
    evaluation.json          the final model on the test split: loss, top-1, top-5
    saved_model/             the SavedModel export (`kerasnets.export.saved_model`)
    backup/                  the resume state: state.json + epoch-NNNN.weights.h5
    .lock                    the lock of the process training in the folder
                             (kerasnets.files.RunLock): one at a time

Running the same command again resumes an interrupted run from its last
completed epoch; a finished run is left alone (``epochs`` larger than before
continues it, ``overwrite=True`` starts over).

``run.json`` (``format`` 1), written atomically when training starts and again
when the run completes::

    format, status          1; "running" or "complete"
    model                   the registered name ("resnet20")
    builder_kwargs          the builder's arguments, so that
                            kerasnets.get_model(model, **builder_kwargs) rebuilds it
                            (classes, input_shape, width_multiplier, dropout, ...)
    dataset, splits         "shapes"; {"train", "validation", "test"} split names
    num_examples            per split
    image_size              the square input size
    class_names             one per class, in label order
    preprocessing           kerasnets.preprocessing.Preprocessing as a dict
                            (name, mean, std, crop_fraction)
    augment                 the training augmentation
    epochs, global_batch_size, steps_per_epoch
    recipe                  the Recipe as applied (Recipe.from_dict reads it)
    hardware                strategy, replicas, device_type, precision, jit_compile
    request                 the arguments as given (compared on resume)
    versions                kerasnets, keras, tensorflow, python
    created, updated        ISO 8601 times: when the run started (its first
                            process), when run.json was last written
    files                   the layout above
  when complete:
    completed_epochs
    train_seconds           the training time of every process of the run (a
                            resumed run adds up), to the end of its last epoch
    test                    {loss, accuracy, top5_accuracy, examples, split}
    best                    {monitor, value, epoch} of checkpoints/best.keras
    exported                "saved_model" or null
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import inspect
import os
import platform
import re
import shutil
import sys

import keras

from kerasnets._validate import check_free_of, check_int, check_number, fail
from kerasnets.card import model_card, set_model_card
from kerasnets.files import LOCK_FILE, RunLock, check_writable
from kerasnets.training import _io
from kerasnets.training import distribution as _distribution
from kerasnets.training._compile import compile as compile_recipe
from kerasnets.training._compile import SparseCrossentropy, output_names
from kerasnets.training.callbacks import (
    BackupAndRestore,
    BestCheckpoint,
    CSVLog,
    LearningRateLogger,
    SyncReplicaStatistics,
    TensorBoard,
)
from kerasnets.training.recipes import Recipe, get_recipe, recipe_for
from kerasnets.training.strategy import setup_hardware

__all__ = [
    "train", "prepare", "resolve_recipe", "TrainingRun", "evaluate_model",
    "SHAPES_EPOCHS", "SHAPES_BATCH_SIZE", "SHAPES_RECIPE_OVERRIDES", "RUN_FILE", "LAYOUT",
]

RUN_FILE = "run.json"
RUN_FORMAT = 1
# On the built-in demo dataset the default run is short (a few CPU minutes): a smaller
# batch, for more updates, and a gradual warm-up, so that no seed sits at chance
# (benchmarks/README.md, "Notes on the main job").
SHAPES_EPOCHS = 10
SHAPES_BATCH_SIZE = 32
# Recipe fields the demo run on shapes changes, per recipe, at the recipe's own
# epochs and batch: 54.6 of resnet_cifar's 182 epochs are 3 of the demo run's 10, then two at
# the full rate before the first drop; 0.01 at batch 128 is 0.0025 at 32. A caller's
# overrides (`--set`) still win: `--set warmup_epochs=0` is the paper's.
SHAPES_RECIPE_OVERRIDES = {
    "resnet_cifar": dict(warmup="linear", warmup_epochs=54.6, warmup_learning_rate=0.01),
}


def resolve_recipe(model, dataset, *, recipe=None, overrides=None, epochs=None, batch_size=None,
                   learning_rate=None):
    """The recipe a run applies, with its epochs and global batch.

    Epochs and batch are the caller's, else shapes' demo values, else the
    recipe's; on shapes the recipe gets `SHAPES_RECIPE_OVERRIDES` before the
    caller's ``overrides``; the schedule rescales to the epochs and the rate to the batch;
    ``learning_rate`` then replaces the rate as is. Returns ``(recipe, epochs,
    global_batch)``.
    """
    base = get_recipe(recipe) if recipe is not None else recipe_for(model)
    shapes = _is_shapes(dataset)
    if shapes and base.name in SHAPES_RECIPE_OVERRIDES:
        base = base.replace(**SHAPES_RECIPE_OVERRIDES[base.name])
    base = base.replace(**overrides) if overrides else base
    epochs = epochs or (SHAPES_EPOCHS if shapes else base.epochs)
    batch_size = batch_size or (SHAPES_BATCH_SIZE if shapes else base.batch_size)
    resolved = base.with_epochs(epochs).with_batch_size(batch_size)
    if learning_rate is not None:
        resolved = resolved.replace(learning_rate=float(learning_rate))
    return resolved, epochs, batch_size


LAYOUT = {
    "run": RUN_FILE,
    "log": "log.csv",
    "curves": "curves.png",
    "tensorboard": "tensorboard",
    "best_checkpoint": "checkpoints/best.keras",
    "model": "model.keras",
    "evaluation": "evaluation.json",
    "saved_model": "saved_model",
    "backup": "backup",
}
# The request fields that must match for a run folder to be resumed.
_RESUME_KEYS = ("model", "dataset", "image_size", "batch_size", "recipe", "overrides",
                "learning_rate", "model_kwargs", "train_split", "augment")


def _slug(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(os.path.normpath(str(text)))).strip("_") or "data"


def _versions():
    import tensorflow as tf

    from kerasnets._version import __version__

    return {
        "kerasnets": __version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        **_distribution.backend_versions(),
        "python": platform.python_version(),
    }


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _is_shapes(dataset):
    return str(dataset).split("/")[0] == "shapes"


def _load_split(dataset, split, **kwargs):
    from kerasnets import data

    return data.load(dataset, split, **kwargs)


def first_split(dataset, names, **kwargs):
    """Loads the first split of ``names`` the dataset has; ``(name, DataSplit)``."""
    from kerasnets.data import DataError

    errors = []
    for name in names:
        try:
            return name, _load_split(dataset, name, **kwargs)
        except DataError as error:
            errors.append(str(error))
    raise ValueError(
        f"Dataset '{dataset}' has none of the splits {list(names)}: {errors[-1]} "
        f"Received: dataset={dataset!r}"
    )


def _builder_accepts(entry, name):
    try:
        return name in inspect.signature(entry.builder).parameters
    except (TypeError, ValueError):
        return False


@dataclasses.dataclass
class RunResult:
    """What a finished run left behind."""

    output: str
    epochs: int
    test: dict
    best: dict | None
    files: dict

    def __str__(self):
        return (f"RunResult(output={self.output!r}, epochs={self.epochs}, test={self.test}, "
                f"best={self.best})")


class TrainingRun:
    """A validated, ready run (see `prepare`); `run` trains it."""

    def __init__(self, **state):
        self.__dict__.update(state)

    # -- paths ---------------------------------------------------------------------

    def path(self, key):
        return os.path.join(self.output, LAYOUT[key])

    # -- the banner ----------------------------------------------------------------

    def _macs(self):
        try:
            from kerasnets.profiling import profile_model

            return profile_model(self.model).macs
        except Exception:  # the profiler is optional for the banner  # noqa: BLE001
            return None

    def banner(self) -> str:
        params = self.model.count_params()
        macs = self._macs()
        size = self.image_size
        hw = self.hardware
        lines = [
            f"kerasnets train {self.entry.name}",
            f"  model      {self.entry.name} ({self.model.name}): {params:,} parameters"
            + (f", {macs / 1e6:,.1f} M multiply-adds per image at {size}x{size}" if macs else ""),
            f"  dataset    {self.dataset}: {self.train.num_classes} classes, "
            f"{self.train.num_examples} {self.splits['train']} / "
            f"{self.val.num_examples} {self.splits['validation']} / "
            f"{self.test.num_examples} {self.splits['test']} images at {size}x{size}, "
            f"augment {self.train.augment}",
            f"  hardware   {hw.strategy_name} strategy, {hw.replicas} replica(s) on {hw.device_type}, "
            f"precision {hw.precision}"
            + (f" ({hw.precision_reason})" if hw.precision_reason.startswith("auto") else "")
            + f", XLA {_xla_text(hw.jit_compile)}",
            f"  batch      {self.global_batch_size} global = "
            f"{self.global_batch_size // hw.replicas}"
            f"{'+' if self.global_batch_size % hw.replicas else ''} per replica x {hw.replicas}, "
            f"{self.train.steps_per_epoch} steps per epoch",
            f"  recipe     {self.recipe.name}: {self.recipe.optimizer.upper() if self.recipe.optimizer == 'sgd' else 'RMSProp'}, "
            f"{self.recipe.describe_schedule()}, weight decay {self.recipe.weight_decay:g}"
            + (f", label smoothing {self.recipe.label_smoothing:g}" if self.recipe.label_smoothing else "")
            + (f", clip {self.recipe.gradient_clip_norm:g}" if self.recipe.gradient_clip_norm else ""),
            f"  epochs     {self.epochs}"
            + (f" (resuming after epoch {self.resume_epoch})" if self.resume_epoch else ""),
            f"  output     {self.output}",
        ]
        return "\n".join(lines)

    # -- run.json ------------------------------------------------------------------

    def record(self, **updates) -> dict:
        """The run.json content (see `kerasnets.training` docs for the schema)."""
        base = dict(
            format=RUN_FORMAT,
            status="running",
            model=self.entry.name,
            builder_kwargs=self.builder_kwargs,
            dataset=self.dataset,
            splits=self.splits,
            num_examples={k: s.num_examples for k, s in
                          (("train", self.train), ("validation", self.val), ("test", self.test))},
            image_size=self.image_size,
            class_names=list(self.train.class_names),
            preprocessing=self.train.preprocessing.to_dict(),
            augment=self.train.augment,
            epochs=self.epochs,
            global_batch_size=self.global_batch_size,
            steps_per_epoch=self.train.steps_per_epoch,
            recipe=self.recipe.to_dict(),
            hardware=self.hardware.to_dict(),
            request=self.request,
            versions=_versions(),
            created=self.created,
            updated=_now(),
            files=dict(LAYOUT),
        )
        base.update(updates)
        return base

    # -- training ------------------------------------------------------------------

    def callbacks(self):
        heads = output_names(self.model)
        monitor = f"val_{heads[0]}_accuracy" if heads else "val_accuracy"
        schedule = self.recipe.callbacks()
        self.best_checkpoint = BestCheckpoint(self.path("best_checkpoint"), monitor=monitor)
        self.backup = BackupAndRestore(self.path("backup"), tracked=schedule)
        sync = [SyncReplicaStatistics()] if self.hardware.replicas > 1 else []
        return [
            *sync,
            LearningRateLogger(),
            *schedule,
            CSVLog(self.path("log")),
            self.best_checkpoint,
            # Drops the events of epochs a killed process ran but never committed.
            TensorBoard(self.path("tensorboard"), backup_dir=self.path("backup"), write_graph=False),
            *self.extra_callbacks,
            self.backup,  # last: it commits the epoch
        ]

    def run(self) -> RunResult:
        """Trains (or resumes), then evaluates, plots and exports; returns a `RunResult`."""
        try:
            self.lock.acquire()  # held since `prepare`, unless released since
            return self._run()
        finally:
            keras.mixed_precision.set_global_policy(self.previous_policy)
            self.close()

    def close(self):
        """Releases the run folder's lock (`run` does, at its end)."""
        self.lock.release()

    def _run(self):
        out = self.output
        if self.complete:
            print(f"The run in {out} is complete ({self.previous.get('epochs')} epochs): nothing to do. "
                  "Pass a larger --epochs to train further, or --overwrite to start over.")
            return self._result(self.previous)
        os.makedirs(out, exist_ok=True)
        _io.remove_temporaries(out)
        print(self.banner(), flush=True)
        _io.write_json(self.path("run"), self.record())

        self.model.fit(
            self.train_data,
            validation_data=self.val.dataset,
            epochs=self.epochs,
            callbacks=self.callbacks(),
            verbose=self.verbose,
            shuffle=False,  # kerasnets.data shuffles; Keras cannot shuffle a tf.data dataset
            **self.fit_options,  # several processes: steps_per_epoch of a repeated input
        )

        _io.save_model(self.model, self.path("model"))
        test = evaluate_model(self.model, self.test, strategy=self.hardware.strategy, verbose=0)
        test["split"] = self.splits["test"]
        _io.write_json(self.path("evaluation"), test)
        from kerasnets.training.plotting import plot_history

        plot_history(self.path("log"), self.path("curves"),
                     title=f"{self.entry.name} on {self.dataset}")
        exported = _distribution.safe_export(self._export, self.path("model")) if self.export else None
        best = None
        if self.best_checkpoint.best is not None:
            best = {"monitor": self.best_checkpoint.monitor, "value": self.best_checkpoint.best,
                    "epoch": self.best_checkpoint.best_epoch}
        record = self.record(
            status="complete", completed_epochs=self.epochs, test=test, best=best,
            train_seconds=self.backup.train_seconds,  # every process's, up to its last epoch
            exported=exported,
        )
        _io.write_json(self.path("run"), record)
        result = self._result(record)
        print(
            f"\nTest ({self.splits['test']}, {test['examples']} images): loss {test['loss']:.4f}, "
            f"top-1 accuracy {test['accuracy']:.4f}"
            + (f", top-5 accuracy {test['top5_accuracy']:.4f}" if "top5_accuracy" in test else "")
        )
        print(f"Wrote {out}: " + ", ".join(
            LAYOUT[k] for k in ("model", "best_checkpoint", "log", "curves", "tensorboard", "evaluation")
        ) + (", saved_model" if exported else ""))
        return result

    def _export(self):
        try:
            from kerasnets import export
        except ImportError:
            return None
        saved_model = getattr(export, "saved_model", None)
        if saved_model is None:
            return None
        # What the model is and what it was fed: its model card.
        kwargs = dict(
            image_size=self.image_size, class_names=list(self.train.class_names), overwrite=True,
            source=self.path("model"),
        )
        accepted = inspect.signature(saved_model).parameters
        saved_model(self.model, self.path("saved_model"),
                    **{k: v for k, v in kwargs.items() if k in accepted})
        return LAYOUT["saved_model"]

    def _result(self, record):
        return RunResult(
            output=self.output, epochs=record.get("completed_epochs", record.get("epochs")),
            test=record.get("test") or {}, best=record.get("best"),
            files={k: os.path.join(self.output, v) for k, v in LAYOUT.items()},
        )


def _xla_text(jit_compile):
    return {True: "on", False: "off"}.get(jit_compile, "auto")


def _check_output(output, request, overwrite, epochs):
    """Reads a previous run in ``output``; returns ``(previous record, complete)``."""
    run_file = os.path.join(output, RUN_FILE)
    if not os.path.exists(output):
        return {}, False
    if not os.path.isdir(output):
        raise ValueError(f"The output path exists and is not a folder. Received: output={output!r}")
    if not os.path.exists(run_file):
        if [name for name in os.listdir(output) if name != LOCK_FILE]:
            raise ValueError(
                "The output folder is not empty and holds no kerasnets run (no run.json): "
                f"choose another --output. Received: output={output!r}"
            )
        return {}, False
    previous = _io.read_json(run_file)
    if overwrite:
        for name in LAYOUT.values():
            target = os.path.join(output, name.split("/")[0])
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
        return {}, False
    before = previous.get("request", {})
    changed = [k for k in _RESUME_KEYS if before.get(k) != request.get(k)]
    if changed:
        diffs = ", ".join(f"{k}: {before.get(k)!r} -> {request.get(k)!r}" for k in changed)
        raise ValueError(
            f"{output} holds another run ({diffs}). Resume it with the same arguments, pass "
            f"--overwrite to start over, or choose another --output. Received: output={output!r}"
        )
    complete = previous.get("status") == "complete" and int(previous.get("epochs", 0)) >= epochs
    return previous, complete


def prepare(model: str, dataset: str = "shapes", *, output: str | None = None, **options) -> TrainingRun:
    """Validates a run and builds everything it needs; raises ValueError on bad input.

    Nothing is trained: `TrainingRun.run` does that. The run folder is checked
    to be writable, then locked (`kerasnets.files.RunLock`) before anything in
    it is read or deleted, so that a second process on the same folder fails at
    once, naming the holder's process id; the lock is held until `run` ends (or
    `TrainingRun.close`). A folder this call created is removed again when it
    fails. The arguments are those of `train`.
    """
    from kerasnets.registry import get_entry

    output = os.path.abspath(output or os.path.join("runs", f"{get_entry(model).name}-{_slug(dataset)}"))
    # Several processes: only process 0 writes (and locks) the run folder; the others
    # work in a private scratch copy of it (`distribution.process_folder`).
    output, options["overwrite"], options["export"] = _distribution.process_folder(
        output, options.get("overwrite", False), options.get("export", True))
    check_writable(output, received=f"output={output!r}")
    if os.path.exists(output) and not os.path.isdir(output):
        raise ValueError(f"The output path exists and is not a folder. Received: output={output!r}")
    created = [output]  # the folders the lock creates, innermost first
    while not os.path.exists(os.path.dirname(created[-1])):
        created.append(os.path.dirname(created[-1]))
    if os.path.exists(output):
        created = []
    lock = RunLock(output)
    new_lock_file = not os.path.exists(lock.path)
    lock.acquire()
    try:
        run = _prepare(model, dataset, output=output, **options)
    except BaseException:  # leave the folder as it was: no lock file, no new folder
        with contextlib.suppress(OSError):
            if new_lock_file:
                os.remove(lock.path)
            for folder in created:
                os.rmdir(folder)  # only empty ones
        lock.release()
        raise
    run.lock = lock
    return run


def _check_model_kwargs(model_kwargs) -> dict:
    model_kwargs = dict(model_kwargs or {})
    return check_free_of("model_kwargs", model_kwargs, {"classes", "input_shape", "weights", "include_top", "input_tensor"},
                         "train sets them itself, from the dataset and image size")


def _check_batch_and_size(hardware, global_batch, entry, image_size):
    if global_batch < hardware.replicas:
        fail(f"batch_size (the global batch, split between the {hardware.replicas} replicas of the "
             f"{hardware.strategy_name} strategy)", f"at least {hardware.replicas}", global_batch,
             received=f"batch_size={global_batch}")
    if image_size is not None and image_size < entry.info.min_size:
        fail("image_size", f"at least {entry.info.min_size}", image_size, context=entry.name)


def _load_data(entry, dataset, load, train_split, validation_split, test_split, augment, seed):
    """The training split, then ``(name, DataSplit)`` of the validation and test splits."""
    train_data = _load_split(dataset, train_split, training=True, augment=augment, seed=seed, **load)
    image_size = train_data.image_size
    load = dict(load, image_size=image_size)
    min_size = entry.info.min_size
    if image_size < min_size:
        raise ValueError(
            f"The images of {dataset} are {image_size}x{image_size}, below the minimum of "
            f"{entry.name} ({min_size}); pass --image-size. Received: image_size={image_size}"
        )
    val = first_split(
        dataset, [validation_split] if validation_split else ["validation", "test"], training=False, **load
    )
    test = first_split(
        dataset, [test_split] if test_split else ["test", "validation"], training=False, **load
    )
    return train_data, val, test


def _build_and_compile(entry, model_kwargs, weights, recipe, train_data, hardware, seed):
    """The model, built and compiled in the strategy's scope under the run's dtype policy
    (left set: `TrainingRun` restores the previous one); ``(model, builder kwargs, recipe)``."""
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(hardware.precision)
    image_size = train_data.image_size
    try:
        if seed is not None:
            keras.utils.set_random_seed(seed)
        builder_kwargs = dict(model_kwargs)
        if recipe.dropout is not None and "dropout" not in builder_kwargs and _builder_accepts(entry, "dropout"):
            builder_kwargs["dropout"] = recipe.dropout
        builder_kwargs.update(classes=train_data.num_classes, input_shape=(image_size, image_size, 3))
        with hardware.strategy.scope():
            if weights is None:
                built = entry.build(weights=None, **builder_kwargs)
            else:  # the preset's backbone, a new head for the dataset's classes
                from kerasnets.weights import fine_tuning_model

                built, builder_kwargs = fine_tuning_model(entry.name, weights, **builder_kwargs)
            # The recipe as applied (its plateau monitor named for the model's heads).
            recipe = compile_recipe(built, recipe, steps_per_epoch=train_data.steps_per_epoch,
                                    jit_compile=hardware.jit_compile)
    except BaseException:
        keras.mixed_precision.set_global_policy(previous_policy)
        raise
    return built, builder_kwargs, recipe


def _resume_epoch(output, previous) -> int:
    """The epochs a previous run of this folder completed (0 for a new run)."""
    resume_epoch = 0
    state_path = os.path.join(output, LAYOUT["backup"], "state.json")
    if previous and os.path.exists(state_path):
        resume_epoch = int(_io.read_json(state_path).get("epoch", 0))
    _distribution.check_resume_epoch(resume_epoch)
    return resume_epoch


def _prepare(
    model: str,
    dataset: str = "shapes",
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    image_size: int | None = None,
    recipe: str | Recipe | None = None,
    overrides: dict | None = None,
    learning_rate: float | None = None,
    model_kwargs: dict | None = None,
    output: str | None = None,
    strategy="auto",
    precision: str = "auto",
    xla: str = "auto",
    data_dir: str | None = None,
    download: bool = False,
    seed: int | None = None,
    augment: str | None = "auto",
    train_split: str = "train",
    validation_split: str | None = None,
    test_split: str | None = None,
    overwrite: bool = False,
    export: bool = True,
    callbacks=(),
    verbose="auto",
    verify="full",
    weights: str | None = None,
) -> TrainingRun:
    from kerasnets.registry import get_entry

    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("image_size", image_size)):
        check_int(name, value, allow_none=True)
    check_number("learning_rate", learning_rate, allow_none=True)
    overrides = dict(overrides or {})
    model_kwargs = _check_model_kwargs(model_kwargs)
    entry = get_entry(model)
    preprocessing = None
    if weights is not None:  # a preset: checked now; its preprocessing feeds the data
        from kerasnets.weights import preprocessing_for

        preprocessing = preprocessing_for(entry.name, weights, **model_kwargs)
    resolved, epochs, global_batch = resolve_recipe(
        entry.name, dataset, recipe=recipe, overrides=overrides, epochs=epochs,
        batch_size=batch_size, learning_rate=learning_rate,
    )
    recipe_name = resolved.name

    hardware = setup_hardware(strategy, precision, xla, set_policy=False)
    _check_batch_and_size(hardware, global_batch, entry, image_size)

    request = dict(
        model=entry.name, dataset=str(dataset), image_size=image_size, batch_size=global_batch,
        recipe=recipe_name, overrides=overrides, learning_rate=learning_rate,
        model_kwargs=model_kwargs, train_split=train_split, augment=augment, seed=seed,
        **({"weights": weights} if weights is not None else {}),
    )
    request = _io.json_roundtrip(request)
    seed = _distribution.shared_seed(seed)  # several processes: one seed everywhere
    previous, complete = _check_output(output, request, overwrite, epochs)
    created = previous.get("created") or _now()
    if complete:  # nothing to train: skip the data and the model
        return TrainingRun(entry=entry, output=output, previous=previous, complete=True,
                           previous_policy=keras.mixed_precision.global_policy().name, created=created)

    # The data (the dataset name and splits are checked here), then the model.
    load = dict(image_size=image_size, batch_size=global_batch, model=entry.name,
                data_dir=data_dir, download=download, verify=verify, preprocessing=preprocessing,
                **_distribution.load_options())
    train_data, (val_name, val), (test_name, test) = _load_data(
        entry, dataset, load, train_split, validation_split, test_split, augment, seed)
    image_size = train_data.image_size
    previous_policy = keras.mixed_precision.global_policy().name
    built, builder_kwargs, resolved = _build_and_compile(
        entry, model_kwargs, weights, resolved, train_data, hardware, seed)
    # The model card records what the model is fed (its preset's normalisation, the crop the
    # data pipeline evaluates with): model.keras, the best checkpoint and the export carry it.
    set_model_card(built, model_card(built).replace(preprocessing=train_data.preprocessing))

    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    resume_epoch = _resume_epoch(output, previous)
    train_input, fit_options = _distribution.fit_input(train_data)
    return TrainingRun(
        entry=entry, model=built, dataset=str(dataset), train=train_data, val=val, test=test,
        train_data=train_input, fit_options=fit_options, splits={"train": train_split, "validation": val_name, "test": test_name},
        image_size=image_size, epochs=epochs, global_batch_size=global_batch, recipe=resolved,
        hardware=hardware, request=request, output=output, previous=previous, complete=complete,
        resume_epoch=min(resume_epoch, epochs), builder_kwargs=_io.json_roundtrip(builder_kwargs),
        export=export, extra_callbacks=list(callbacks), verbose=verbose,
        previous_policy=previous_policy, created=created,
    )


def train(model: str, dataset: str = "shapes", **options) -> RunResult:
    """Trains a zoo model on a dataset with its paper's recipe; resumable.

    Args:
        model: a registered model name (``"resnet20"``).
        dataset: ``"shapes"`` (built in), a tensorflow-datasets name or a folder
            (see `kerasnets.data.load`).
        epochs: default: the recipe's (the paper's), 10 on ``shapes``. The
            schedule is rescaled to it.
        batch_size: the *global* batch (split between replicas); default the
            recipe's, 32 on ``shapes``. The learning rate scales linearly with it.
        image_size: default: the model's default size (`kerasnets.get_model_info`).
        recipe: a recipe name or `Recipe`; default: the model family's.
        overrides: recipe fields to change (``{"weight_decay": 0}``), at the
            recipe's batch size.
        learning_rate: the initial learning rate at the global batch, as is.
        model_kwargs: builder arguments (``{"width_multiplier": 0.5}``).
        output: the run folder; default ``runs/<model>-<dataset>``.
        strategy, precision, xla: see `kerasnets.training.setup_hardware`.
        data_dir, download: where tfds data lives; allow downloading it.
        seed: makes initialisation and data order reproducible.
        augment: the training augmentation (`kerasnets.data.load`).
        train_split, validation_split, test_split: split names or tfds split
            expressions (``"train[:1000]"``); default: ``validation`` (else
            ``test``) and ``test`` (else ``validation``).
        overwrite: delete a previous run in ``output`` and start over.
        export: write the SavedModel export at the end.
        callbacks: extra Keras callbacks.
        verbose: ``"auto"`` (a progress bar on a terminal, a line per epoch
            otherwise), 0, 1 or 2.
        verify: for a folder of images, ``"full"`` (default) decodes every
            image once before training (verified files are remembered, so a
            rerun is fast), ``"header"`` checks only the first bytes, ``None``
            nothing (see `kerasnets.data.load`).
        weights: ``None`` (random initialisation), ``"imagenet"`` or a preset name:
            fine-tuning, the backbone from the preset and a new head; the data
            then gets the preset's preprocessing (`kerasnets.weights.preprocessing_for`).

    Returns:
        A `RunResult` (``.output``, ``.test``, ``.best``, ``.files``).

    Example:

    >>> result = kerasnets.training.train("resnet20", "shapes", epochs=5)  # doctest: +SKIP
    >>> result.test["accuracy"]  # doctest: +SKIP
    """
    return prepare(model, dataset, **options).run()


def evaluate_model(model, split, *, strategy=None, verbose="auto") -> dict:
    """Loss (cross-entropy), top-1 and top-5 accuracy of ``model`` on a `DataSplit`.

    A model with auxiliary classifiers is evaluated on its main head. The loss
    is the plain cross-entropy (no weight decay penalty, no label smoothing).

    Returns:
        ``{"loss", "accuracy", "top5_accuracy" (more than 5 classes), "examples"}``.
    """
    from kerasnets.models import inference_model, outputs_logits

    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 0
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        single = inference_model(model)
        # The model's own input and output structure (`.input`, not the list `.inputs`): under
        # JAX a list of one made Keras warn that the batches did not match it.
        evaluator = keras.Model(single.input, single.output, name=f"{model.name}_eval")
        classes = evaluator.outputs[0].shape[-1]
        from_logits = outputs_logits(evaluator)
        metrics = [
            keras.metrics.SparseCategoricalCrossentropy(name="crossentropy", from_logits=from_logits),
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        ]
        if classes > 5:
            metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
        # The reported loss is the crossentropy metric: Keras's "loss" would add the
        # weight decay penalty of the variables' regularizers.
        # Compiled (jit) under JAX, whose eager mode is several times slower; XLA stays off
        # under TensorFlow, as for training on CPUs.
        evaluator.compile(loss=SparseCrossentropy(from_logits=from_logits), metrics=metrics,
                          jit_compile=keras.backend.backend() == "jax")
    values = evaluator.evaluate(split.dataset, return_dict=True, verbose=verbose)
    result = {"loss": float(values["crossentropy"]), "accuracy": float(values["accuracy"])}
    if "top5_accuracy" in values:
        result["top5_accuracy"] = float(values["top5_accuracy"])
    result["examples"] = split.steps_per_epoch * split.batch_size if split.drop_remainder else split.num_examples
    return result
