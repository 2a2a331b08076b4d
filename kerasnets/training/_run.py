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
    .kerasnets-manifest.json what makes the folder a kerasnets run, and every
                             file the run wrote (kerasnets.files.Manifest)

Running the same command again resumes an interrupted run from its last
completed epoch; a finished run is left alone (``epochs`` larger than before
continues it, ``overwrite=True`` starts over). A folder is a run only with its
manifest: a ``run.json`` of another tool is refused, even with ``overwrite``,
and ``overwrite`` deletes only the files the manifest lists (what a user put in
the folder stays, and is named). A new run that fails before its first epoch is
committed removes what it wrote; a run whose loss becomes NaN or infinite stops
at that step (`kerasnets.training.callbacks.StopOnNonFinite`) and its
``run.json`` says ``"status": "failed"``. Every JSON file is strict JSON: a
non-finite number is written ``null``.

``run.json`` (``format`` 1), written atomically when training starts and again
when the run completes::

    format, status          1; "running", "complete" or "failed" (diverged)
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
    exported                "saved_model" or null (then no saved_model/ of
                            an earlier model is left either)
  when failed:
    failure                 why (the loss, the epoch and step it diverged at)
    completed_epochs        the epochs committed before it
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import inspect
import os
import sys
from typing import Any

import keras

from kerasnets._validate import fail, is_int
from kerasnets._version import versions as _versions
from kerasnets.card import model_card, set_model_card
from kerasnets.export import saved_model
from kerasnets.files import (
    LOCK_FILE,
    Manifest,
    ManifestError,
    RunLock,
    check_writable,
    is_leftover,
    read_json_object,
)
from kerasnets.models import inference_model, outputs_logits
from kerasnets.profiling import profile_model
from kerasnets.registry import ModelEntry, get_entry
from kerasnets.training import _io
from kerasnets.training import distribution as _distribution
from kerasnets.training._compile import SparseCrossentropy, compile_model, output_names
from kerasnets.training._config import TrainingConfig, check_overrides, default_output
from kerasnets.training.callbacks import (
    STATE_FILE,
    BackupAndRestore,
    BestCheckpoint,
    CSVLog,
    LearningRateLogger,
    StopOnNonFinite,
    SyncReplicaStatistics,
    TensorBoard,
    TrainingDiverged,
)
from kerasnets.training.plotting import plot_history
from kerasnets.training.recipes import Recipe, get_recipe, recipe_for
from kerasnets.training.strategy import Hardware, setup_hardware
from kerasnets.weights import fetch, fine_tuning_model, get_preset

__all__ = [
    "train", "prepare", "resolve_recipe", "TrainingConfig", "TrainingRun", "evaluate_model",
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
    overrides = check_overrides(overrides, learning_rate)
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




def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _is_shapes(dataset):
    return str(dataset).split("/")[0] == "shapes"


def _load_split(dataset, split, **kwargs):
    # kerasnets.data imports tensorflow-datasets (heavy): not at `import kerasnets.training`,
    # which every `kerasnets` command does to list its choices.
    from kerasnets import data

    return data.load(dataset, split, **kwargs)


def first_split(dataset, names, **kwargs):
    """Loads the first split of ``names`` the dataset has; ``(name, DataSplit)``."""
    from kerasnets.data import DataError  # heavy, as in _load_split

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


@dataclasses.dataclass(kw_only=True, eq=False)
class TrainingRun:
    """A validated, ready run (see `prepare`); `run` trains it.

    ``config`` is the `TrainingConfig` as this process runs it (``output`` absolute).
    A run whose folder already holds the complete run (``complete``) has no data, model
    or callbacks (``None``): `run` reports it and trains nothing.
    """

    config: TrainingConfig
    entry: ModelEntry
    # The run folder: its lock (held from `prepare` to the end of `run`), the folders and
    # lock file this run created (removed again by a new run that commits no epoch).
    lock: RunLock
    new_folders: list[str] = dataclasses.field(default_factory=list)
    new_lock_file: bool = False
    # The folder's previous run: its run.json, whether it is complete, its manifest.
    previous: dict = dataclasses.field(default_factory=dict)
    complete: bool = False
    manifest: Manifest | None = None
    created: str = ""
    previous_policy: str = "float32"  # the dtype policy `run` restores at its end
    # What a run to train has (None when ``complete``).
    model: keras.Model | None = None
    train: Any = None  # the kerasnets.data.DataSplit of the training split
    val: Any = None
    test: Any = None
    train_data: Any = None  # what fit reads (`distribution.fit_input`)
    fit_options: dict = dataclasses.field(default_factory=dict)
    splits: dict = dataclasses.field(default_factory=dict)  # {"train", "validation", "test"}
    image_size: int | None = None
    epochs: int | None = None
    global_batch_size: int | None = None
    recipe: Recipe | None = None  # as applied (`compile_model`)
    hardware: Hardware | None = None
    request: dict = dataclasses.field(default_factory=dict)  # run.json's, compared on resume
    resume_epoch: int = 0
    builder_kwargs: dict = dataclasses.field(default_factory=dict)
    verbose: int = 2
    # The run's callbacks that it reads back (built with the run, from its model and recipe).
    schedule: list = dataclasses.field(init=False, default_factory=list)
    best_checkpoint: BestCheckpoint | None = dataclasses.field(init=False, default=None)
    backup: BackupAndRestore | None = dataclasses.field(init=False, default=None)

    def __post_init__(self):
        if self.model is None:
            return
        heads = output_names(self.model)
        monitor = f"val_{heads[0]}_accuracy" if heads else "val_accuracy"
        self.schedule = self.recipe.callbacks()
        self.best_checkpoint = BestCheckpoint(self.path("best_checkpoint"), monitor=monitor)
        self.backup = BackupAndRestore(self.path("backup"), tracked=self.schedule)

    @property
    def output(self) -> str:
        return self.config.output

    @property
    def dataset(self) -> str:
        return self.config.dataset

    # -- paths ---------------------------------------------------------------------

    def path(self, key):
        return os.path.join(self.output, LAYOUT[key])

    # -- the banner ----------------------------------------------------------------

    def _macs(self):
        try:
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
        """The callbacks of `run`'s fit: the schedule, the logs, the best checkpoint and
        the backup that commits each epoch (after the caller's ``callbacks``)."""
        sync = [SyncReplicaStatistics()] if self.hardware.replicas > 1 else []
        return [
            *sync,
            LearningRateLogger(),
            *self.schedule,
            StopOnNonFinite(),  # before anything below writes the epoch
            CSVLog(self.path("log")),
            self.best_checkpoint,
            # Drops the events of epochs a killed process ran but never committed.
            TensorBoard(self.path("tensorboard"), backup_dir=self.path("backup"), write_graph=False),
            *self.config.callbacks,
            _RecordWritten(self.manifest, self.path("tensorboard")),
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
        self._start_manifest()
        print(self.banner(), flush=True)
        _io.write_json(self.path("run"), self.record())

        try:
            self.model.fit(
                self.train_data,
                validation_data=self.val.dataset,
                epochs=self.epochs,
                callbacks=self.callbacks(),
                verbose=self.verbose,
                shuffle=False,  # kerasnets.data shuffles; Keras cannot shuffle a tf.data dataset
                **self.fit_options,  # several processes: steps_per_epoch of a repeated input
            )
        except TrainingDiverged as error:
            state = self.backup.read_state() or {}
            _io.write_json(self.path("run"), self.record(
                status="failed", failure=str(error), completed_epochs=state.get("epoch", 0)))
            raise
        except Exception as error:
            self._failed(error)
            raise

        _io.save_model(self.model, self.path("model"))
        try:
            test = evaluate_model(self.model, self.test, strategy=self.hardware.strategy, verbose=0)
        except Exception as error:
            self._failed(error)
            raise
        test["split"] = self.splits["test"]
        _io.write_json(self.path("evaluation"), test)
        plot_history(self.path("log"), self.path("curves"),
                     title=f"{self.entry.name} on {self.dataset}")
        exported = _distribution.safe_export(self._export, self.path("model")) if self.config.export else None
        if not exported:  # an export of an earlier model would no longer match model.keras
            self._remove_stale_export()
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

    # -- what the run wrote --------------------------------------------------------

    def _start_manifest(self):
        """Removes the previous run (``overwrite``: what its manifest lists, nothing else),
        then records the files this run writes, before it writes them."""
        previous = self.manifest
        if previous is not None and self.config.overwrite:
            kept = previous.remove_written()
            print(f"--overwrite: removed the previous run in {self.output}"
                  + (f"; kept what kerasnets did not write there: {_shown(kept)}" if kept else "") + ".",
                  file=sys.stderr, flush=True)
            previous = None
        self.manifest = previous or Manifest(self.output, "run")
        folders = ("tensorboard/train/", "tensorboard/validation/", "saved_model/", "backup/")
        self.manifest.record(*(LAYOUT[key] for key in LAYOUT if key not in ("tensorboard", "saved_model", "backup")),
                             *folders, f"{LAYOUT['backup']}/{STATE_FILE}",
                             LAYOUT["best_checkpoint"][: -len(".keras")] + ".json")

    def _failed(self, error):
        """After an error in training or testing: a new run that committed no epoch removes
        what it wrote (nothing that looks like a run is left), and an image that does not
        decode is named (a `kerasnets.data.DataError` instead of TensorFlow's error)."""
        import tensorflow as tf

        committed = os.path.exists(os.path.join(self.path("backup"), STATE_FILE))
        if not self.previous and not committed:
            self.manifest.remove_written()
            with contextlib.suppress(OSError):
                if self.new_lock_file:
                    os.remove(self.lock.path)
                for folder in self.new_folders:
                    os.rmdir(folder)  # only empty ones
        if isinstance(error, tf.errors.OpError):
            from kerasnets.data import check_decodable  # heavy, as in _load_split

            check_decodable(self.train, self.val, self.test)  # raises DataError naming the files

    def _remove_stale_export(self):
        folder = self.path("saved_model")
        if not os.path.isdir(folder):
            return
        try:
            export = Manifest.read(folder)
        except ManifestError:
            export = None
        if export is None or export.kind != "export":
            if not os.path.exists(os.path.join(folder, "saved_model.pb")):
                return  # no export there, only what a user put in the folder
            print(f"Warning: {folder} is not an export kerasnets can tell it wrote; it does not hold "
                  f"the model now in {self.path('model')}.", file=sys.stderr, flush=True)
            return
        kept = export.remove_written()
        with contextlib.suppress(OSError):
            os.rmdir(folder)
        print(f"Removed {folder}: it exported the model before this training"
              + (f" (kept what kerasnets did not write there: {_shown(kept)})" if kept else "") + ".",
              file=sys.stderr, flush=True)

    def _export(self):
        # What the model is and what it was fed: its model card.
        saved_model(self.model, self.path("saved_model"), image_size=self.image_size,
                    class_names=list(self.train.class_names), overwrite=True, source=self.path("model"))
        return LAYOUT["saved_model"]

    def _result(self, record):
        return RunResult(
            output=self.output, epochs=record.get("completed_epochs", record.get("epochs")),
            test=record.get("test") or {}, best=record.get("best"),
            files={k: os.path.join(self.output, v) for k, v in LAYOUT.items()},
        )


def _shown(names, limit=5):
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


class _RecordWritten(keras.callbacks.Callback):
    """Records in the run's manifest the files whose names are known only as training goes:
    TensorBoard's event files (once created) and the next backup file (before it is written).
    Put it after `TensorBoard` and before `BackupAndRestore`."""

    def __init__(self, manifest, log_dir):
        super().__init__()
        self.manifest, self.log_dir = manifest, log_dir

    def _events(self):
        names = []
        for sub in ("train", "validation"):
            with contextlib.suppress(OSError):
                names += [f"{LAYOUT['tensorboard']}/{sub}/{name}"
                          for name in os.listdir(os.path.join(self.log_dir, sub))
                          if name.startswith("events.out.tfevents.")]
        return names

    def on_train_begin(self, logs=None):
        self.manifest.record(*self._events())

    def on_epoch_end(self, epoch, logs=None):
        self.manifest.record(*self._events(), f"{LAYOUT['backup']}/epoch-{epoch + 1:04d}.weights.h5")


def _xla_text(jit_compile):
    return {True: "on", False: "off"}.get(jit_compile, "auto")


def _check_output(output, request, overwrite, epochs):
    """The folder's previous run: ``(its record, complete, its manifest)``.

    A folder is a kerasnets run only with its manifest (`kerasnets.files.Manifest`);
    a non-empty folder without one is refused, ``overwrite`` or not, since nothing
    tells which of its files kerasnets wrote. With ``overwrite`` nothing is deleted
    here: `TrainingRun.run` removes what the manifest lists once every check passed.
    """
    if not os.path.exists(output):
        return {}, False, None
    if not os.path.isdir(output):
        raise ValueError(f"The output path exists and is not a folder. Received: output={output!r}")
    received = f"output={output!r}"
    try:
        manifest = Manifest.read(output)
    except ManifestError as error:
        raise ValueError(f"{error} So kerasnets cannot tell which files it wrote in {output}: it neither "
                         f"resumes nor overwrites it; choose another --output. Received: {received}") from None
    run_file = os.path.join(output, RUN_FILE)
    if manifest is None:
        if [name for name in os.listdir(output) if name != LOCK_FILE and not is_leftover(name)]:
            what = ("holds a run.json that kerasnets did not write (no kerasnets manifest)"
                    if os.path.exists(run_file) else "holds no kerasnets run")
            raise ValueError(
                f"The output folder {output} is not empty and {what}: a run goes into an empty folder "
                "or resumes its own, and --overwrite deletes only what kerasnets wrote, so choose "
                f"another --output. Received: {received}"
            )
        return {}, False, None
    if manifest.kind != "run":
        raise ValueError(f"{output} is a kerasnets {manifest.kind} folder, not a training run: choose "
                         f"another --output. Received: {received}")
    if overwrite:
        return {}, False, manifest
    if not os.path.exists(run_file):
        written = [e for e in manifest.entries if not e.endswith("/") and os.path.exists(os.path.join(output, e))]
        if written:  # a run.json was removed by hand: what the rest belongs to is unknown
            raise ValueError(f"{output} holds a kerasnets run without its {RUN_FILE}: pass --overwrite to "
                             f"start over, or choose another --output. Received: {received}")
        return {}, False, manifest  # killed before it wrote run.json: it starts afresh
    previous = read_json_object(run_file, received=received,
                                remedy="pass --overwrite to start over, or choose another --output")
    before = previous.get("request")
    before = before if isinstance(before, dict) else {}
    changed = [k for k in _RESUME_KEYS if before.get(k) != request.get(k)]
    if changed:
        diffs = ", ".join(f"{k}: {before.get(k)!r} -> {request.get(k)!r}" for k in changed)
        raise ValueError(
            f"{output} holds another run ({diffs}). Resume it with the same arguments, pass "
            f"--overwrite to start over, or choose another --output. Received: {received}"
        )
    done = previous.get("epochs")
    complete = previous.get("status") == "complete" and is_int(done) and done >= epochs
    return previous, complete, manifest


def prepare(model: str | TrainingConfig, dataset: str = "shapes", **options) -> TrainingRun:
    """Validates a run and builds everything it needs; raises ValueError on bad input.

    Nothing is trained: `TrainingRun.run` does that. The run folder is checked
    to be writable, then locked (`kerasnets.files.RunLock`) before anything in
    it is read or deleted, so that a second process on the same folder fails at
    once, naming the holder's process id; the lock is held until `run` ends (or
    `TrainingRun.close`). A folder this call created is removed again when it
    fails. The arguments are those of `train`: a `TrainingConfig`, or its fields.
    """
    config = _as_config(model, dataset, options)
    # Several processes: only process 0 writes (and locks) the run folder; the others
    # work in a private scratch copy of it (`distribution.process_folder`).
    output, overwrite, export = _distribution.process_folder(
        default_output(config), config.overwrite, config.export)
    config = dataclasses.replace(config, output=output, overwrite=overwrite, export=export)
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
        return _prepare(config, lock=lock, new_folders=created, new_lock_file=new_lock_file)
    except BaseException:  # leave the folder as it was: no lock file, no new folder
        with contextlib.suppress(OSError):
            if new_lock_file:
                os.remove(lock.path)
            for folder in created:
                os.rmdir(folder)  # only empty ones
        lock.release()
        raise


def _as_config(model, dataset, options) -> TrainingConfig:
    """The `TrainingConfig` of `train`'s arguments: the one given, or one of the options."""
    if not isinstance(model, TrainingConfig):
        return TrainingConfig(model=model, dataset=dataset, **options)
    if options or dataset != "shapes":
        given = {**({"dataset": dataset} if dataset != "shapes" else {}), **options}
        fail("options", "empty with a TrainingConfig (the config holds them all: change it with "
             "dataclasses.replace(config, ...))", given, received=f"options={sorted(given)}")
    return model


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
                built, builder_kwargs = fine_tuning_model(entry.name, weights, **builder_kwargs)
            # The recipe as applied (its plateau monitor named for the model's heads).
            recipe = compile_model(built, recipe, steps_per_epoch=train_data.steps_per_epoch,
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
        state = read_json_object(state_path, received=f"output={output!r}",
                                 remedy="the resume state is damaged; pass --overwrite to start over")
        resume_epoch = state.get("epoch", 0)
        if not is_int(resume_epoch) or resume_epoch < 0:
            raise ValueError(f"{state_path} holds no epoch count (epoch={resume_epoch!r}): the resume "
                             f"state is damaged; pass --overwrite to start over. Received: output={output!r}")
    _distribution.check_resume_epoch(resume_epoch)
    return resume_epoch


def _prepare(config: TrainingConfig, *, lock, new_folders, new_lock_file) -> TrainingRun:
    entry = get_entry(config.model)
    preprocessing = None
    if config.weights is not None:  # a preset: checked now; its preprocessing feeds the data
        preset = get_preset(entry.name, config.weights, **config.model_kwargs)
        preprocessing = preset.preprocessing
        # Fine-tuning reads the file without the classifier: downloaded now (or an OSError
        # saying why it cannot be), before the data and the model.
        fetch(preset.notop_file or preset.file)
    resolved, epochs, global_batch = resolve_recipe(
        entry.name, config.dataset, recipe=config.recipe, overrides=config.overrides,
        epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
    )

    hardware = setup_hardware(config.strategy, config.precision, config.xla, set_policy=False)
    _check_batch_and_size(hardware, global_batch, entry, config.image_size)

    # The request with the batch and the recipe as resolved: the command that spells out
    # its defaults resumes the run of the one that did not.
    request = {**config.to_json(), "batch_size": global_batch, "recipe": resolved.name}
    seed = _distribution.shared_seed(config.seed)  # several processes: one seed everywhere
    previous, complete, manifest = _check_output(config.output, request, config.overwrite, epochs)
    folder = dict(config=config, entry=entry, lock=lock, new_folders=new_folders,
                  new_lock_file=new_lock_file, previous=previous, manifest=manifest,
                  created=previous.get("created") or _now(), request=request)
    if complete:  # nothing to train: skip the data and the model
        return TrainingRun(**folder, complete=True,
                           previous_policy=keras.mixed_precision.global_policy().name)

    # The data (the dataset name and splits are checked here), then the model.
    load = dict(image_size=config.image_size, batch_size=global_batch, model=entry.name,
                data_dir=config.data_dir, download=config.download, verify=config.verify,
                preprocessing=preprocessing, **_distribution.load_options())
    train_data, (val_name, val), (test_name, test) = _load_data(
        entry, config.dataset, load, config.train_split, config.validation_split, config.test_split,
        config.augment, seed)
    if global_batch > train_data.num_examples:  # not one full step: the rate is scaled for a batch never seen
        fail("batch_size", f"at most the {train_data.num_examples} examples of the training split "
             f"{config.train_split!r} (a smaller batch, or a larger split)", global_batch)
    previous_policy = keras.mixed_precision.global_policy().name
    built, builder_kwargs, resolved = _build_and_compile(
        entry, config.model_kwargs, config.weights, resolved, train_data, hardware, seed)
    # The model card records what the model is fed (its preset's normalisation, the crop the
    # data pipeline evaluates with): model.keras, the best checkpoint and the export carry it.
    set_model_card(built, model_card(built).replace(preprocessing=train_data.preprocessing))

    verbose = config.verbose
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    train_input, fit_options = _distribution.fit_input(train_data)
    return TrainingRun(
        **folder, previous_policy=previous_policy, model=built, train=train_data, val=val, test=test,
        train_data=train_input, fit_options=fit_options,
        splits={"train": config.train_split, "validation": val_name, "test": test_name},
        image_size=train_data.image_size, epochs=epochs, global_batch_size=global_batch,
        recipe=resolved, hardware=hardware,
        resume_epoch=min(_resume_epoch(config.output, previous), epochs),
        builder_kwargs=_io.json_roundtrip(builder_kwargs), verbose=verbose,
    )


def train(model: str | TrainingConfig, dataset: str = "shapes", **options) -> RunResult:
    """Trains a zoo model on a dataset with its paper's recipe; resumable.

    The arguments make a `TrainingConfig` (frozen, validated before any work: a bad
    value raises ValueError), which ``run.json`` records as ``request``; pass one
    instead, alone (``train(config)``), to run what it holds. ``kerasnets train``
    builds the same config from its options.

    Args:
        model: a registered model name (``"resnet20"``), or a `TrainingConfig`
            (then no other argument).
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
    >>> config = kerasnets.training.TrainingConfig(model="resnet20", epochs=5)
    >>> kerasnets.training.train(config)  # doctest: +SKIP
    """
    return prepare(model, dataset, **options).run()


def evaluate_model(model, split, *, strategy=None, verbose="auto") -> dict:
    """Loss (cross-entropy), top-1 and top-5 accuracy of ``model`` on a `DataSplit`.

    A model with auxiliary classifiers is evaluated on its main head. The loss
    is the plain cross-entropy (no weight decay penalty, no label smoothing).

    Returns:
        ``{"loss", "accuracy", "top5_accuracy" (more than 5 classes), "examples"}``.
    """
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
