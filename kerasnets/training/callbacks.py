"""Callbacks for runs that survive being killed: every file is written atomically.

* `BackupAndRestore`: resume from the last completed epoch after a crash or a
  SIGKILL; the weights and the optimizer state (its step, hence the schedule)
  are restored, and so is the state of `ReduceLROnPlateau` / `EarlyStopping`.
* `CSVLog`: one row per epoch; after a resume it keeps the earlier epochs'
  rows and never duplicates the row of an epoch that is run again.
* `BestCheckpoint`: the best model so far as a ``.keras`` file, and its score.
* `LearningRateLogger`: adds ``learning_rate`` to the epoch logs.
* `WarmupUntilAccuracy`: ends a recipe's warm-up once the training accuracy
  is reached (``Recipe.warmup_until_accuracy``).
* `SyncReplicaStatistics`: under `tf.distribute.MirroredStrategy`, averages the
  replicas' BatchNorm moving statistics, which Keras lets drift apart.
* `TensorBoard`: Keras's, except that a resumed run drops the events of the
  epochs a killed process ran but never committed, so each epoch shows once.
* `StopOnNonFinite`: stops training at the first step whose loss is NaN or
  infinite, by raising `TrainingDiverged`, before any callback saves the
  epoch (Keras's ``TerminateOnNaN`` lets the epoch end, and its checkpoints
  and backup with it).

Use them together, `BackupAndRestore` last (it commits the epoch once the others
have written their files)::

    callbacks = [LearningRateLogger(), CSVLog("run/log.csv"),
                 BestCheckpoint("run/checkpoints/best.keras"),
                 BackupAndRestore("run/backup")]
    model.fit(train, validation_data=val, epochs=30, callbacks=callbacks)

`keras.callbacks.BackupAndRestore` writes its weights file in place, so a kill
during the write leaves a corrupt file that the next run cannot load; and
`keras.callbacks.CSVLogger` in append mode repeats the rows of the epochs that
are run again.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import math
import os
import time

import keras

from kerasnets._keras_compat import set_initial_epoch
from kerasnets._validate import check_choice, check_instance, check_path, fail
from kerasnets.training import _io

__all__ = [
    "BackupAndRestore",
    "CSVLog",
    "BestCheckpoint",
    "LearningRateLogger",
    "SyncReplicaStatistics",
    "TensorBoard",
    "WarmupUntilAccuracy",
    "StopOnNonFinite",
    "TrainingDiverged",
    "STATE_FILE",
]

STATE_FILE = "state.json"

# The attributes that make up the state of Keras callbacks that BackupAndRestore
# saves and restores when they are passed as `tracked`.
_TRACKED_ATTRIBUTES = {
    keras.callbacks.ReduceLROnPlateau: ("best", "wait", "cooldown_counter"),
    keras.callbacks.EarlyStopping: ("best", "wait", "best_epoch"),
}


class WarmupUntilAccuracy(keras.callbacks.Callback):
    """Ends the warm-up of an adaptive `EpochSchedule` when the training accuracy is reached.

    He et al. (2016, section 4.2) train ResNet-110 at 0.01 "until the training
    error is below 80%", then at 0.1. This callback watches the training
    accuracy of the last ``window`` steps (Keras logs the epoch's running mean;
    the per-step values are recovered from it) and, once it reaches
    ``threshold``, sets the schedule's ``warmup_end_step`` to the next step. The
    schedule is the optimizer's (``Recipe.warmup_until_accuracy`` builds it).
    `BackupAndRestore` saves and restores ``ended_at_step``.

    Args:
        threshold: the training accuracy that ends the warm-up (0.2: error 80%).
        monitor: the logged metric (``"main_accuracy"`` with auxiliary heads).
        window: the number of steps averaged.
    """

    def __init__(self, threshold, monitor="accuracy", window=50):
        super().__init__()
        self.threshold = float(threshold)
        self.monitor = monitor
        self.window = int(window)
        self._schedule = None
        self._ended_at = None
        self._recent = []
        self._previous = 0.0
        self._seen = 0

    @property
    def ended_at_step(self):
        """The step at which the warm-up ended, or ``None`` while it lasts."""
        return self._ended_at

    @ended_at_step.setter
    def ended_at_step(self, step):  # BackupAndRestore restores it
        self._ended_at = None if step is None else int(step)
        if self._ended_at is not None and self._schedule is not None:
            self._schedule.end_warmup(self._ended_at)

    def on_train_begin(self, logs=None):
        # Keras 3 keeps the schedule object as the optimizer's _learning_rate.
        schedule = getattr(self.model.optimizer, "_learning_rate", None)
        if getattr(schedule, "warmup_end_step", None) is None:
            fail("learning_rate", "an EpochSchedule with adaptive_warmup=True for WarmupUntilAccuracy "
                 "(Recipe.warmup_until_accuracy)", schedule)
        self._schedule = schedule
        self._ended_at = schedule.warmup_ended_at

    def on_epoch_begin(self, epoch, logs=None):
        self._previous, self._seen = 0.0, 0

    def on_train_batch_end(self, batch, logs=None):
        if self._ended_at is not None or not logs or self.monitor not in logs:
            return
        mean = float(logs[self.monitor])
        self._seen += 1
        # The epoch's running mean after k equal batches: this batch's value.
        self._recent.append(self._seen * mean - (self._seen - 1) * self._previous)
        self._previous = mean
        del self._recent[:-self.window]
        if len(self._recent) == self.window and sum(self._recent) / self.window >= self.threshold:
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            self.ended_at_step = step
            print(f"\nWarm-up ended at step {step}: training accuracy "
                  f"{sum(self._recent) / self.window:.3f} over the last {self.window} steps "
                  f"(>= {self.threshold:g}).", flush=True)


_TRACKED_ATTRIBUTES[WarmupUntilAccuracy] = ("ended_at_step",)


def _number(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _json_number(value):
    # Infinity (Keras's initial "best") is no JSON number.
    value = float(value)
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: training stopped (`StopOnNonFinite`).

    Attributes:
        epoch: the epoch (1-based) of the step.
        step: the step within the epoch (1-based), or where else it was seen.
        loss: the value logged (``nan``, ``inf``).
    """

    def __init__(self, epoch, step, loss):
        self.epoch, self.step, self.loss = epoch, step, loss
        where = f"step {step}" if isinstance(step, int) else step
        super().__init__(
            f"Training diverged: the loss is {loss} at epoch {epoch}, {where}, so training stopped "
            "there and nothing of that epoch was saved. A learning rate too high for the batch is the "
            "usual cause (lower --lr or --set learning_rate, or add a warm-up)."
        )


class StopOnNonFinite(keras.callbacks.Callback):
    """Raises `TrainingDiverged` at the first step whose loss is NaN or infinite, or at the
    end of an epoch whose training or validation loss is (the weights its last step
    left).

    Raising (rather than ``model.stop_training``, as ``keras.callbacks.TerminateOnNaN``
    does) ends ``fit`` at once: the diverged epoch reaches none of the callbacks after
    this one, so put it before those that write the epoch (the log, the checkpoints, the
    backup): the last committed epoch stays the one to resume from.
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(self._epoch + 1, batch + 1, float(loss))

    def on_epoch_end(self, epoch, logs=None):
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                raise TrainingDiverged(epoch + 1, "the end of the epoch" + (" (validation)" if key != "loss" else ""),
                                       float(value))


class BackupAndRestore(keras.callbacks.Callback):
    """Saves the training state after every epoch; a new ``fit`` resumes from it.

    The state is ``backup_dir/epoch-NNNN.weights.h5`` (the model's and the
    optimizer's variables) and ``backup_dir/state.json`` (the number of completed
    epochs, the file name, the tracked callbacks' state, the epoch's logs, the
    commit ``time`` and ``train_seconds``, the training time of all the
    processes so far, which `train_seconds` reads back),
    each written atomically, ``state.json`` last: it is the commit. A process
    killed at any point resumes from the last committed epoch and ends with the
    same number of epochs. The backup is kept after training, so a later ``fit``
    with more ``epochs`` continues.

    Args:
        backup_dir: a folder of its own.
        tracked: callbacks whose state to save too (`ReduceLROnPlateau`,
            `EarlyStopping`, `WarmupUntilAccuracy`): put this callback after them.
    """

    def __init__(self, backup_dir, tracked=()):
        super().__init__()
        self.backup_dir = check_path("backup_dir", backup_dir, expected="a folder path")
        self.tracked = list(tracked)
        for callback in self.tracked:
            check_instance("tracked", callback, tuple(_TRACKED_ATTRIBUTES),
                           "a ReduceLROnPlateau, EarlyStopping or WarmupUntilAccuracy callback")
        self.restored_epoch = 0
        self._seconds_before = 0.0
        self._started = None
        self.train_seconds = 0.0

    @property
    def state_path(self):
        return os.path.join(self.backup_dir, STATE_FILE)

    def read_state(self):
        """The committed state (a dict), or ``None`` when there is none."""
        if not os.path.exists(self.state_path):
            return None
        return _io.read_json(self.state_path)

    def on_train_begin(self, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        _io.remove_temporaries(self.backup_dir)
        state = self.read_state()
        self._started = time.time()
        self._seconds_before = float((state or {}).get("train_seconds", 0) or 0)
        self.train_seconds = self._seconds_before
        if state is None:
            self.restored_epoch = 0
            return
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, state["weights"]))
        for callback, saved in zip(self.tracked, state.get("callbacks", [])):
            for name, value in saved.items():
                setattr(callback, name, float(value) if isinstance(value, str) else value)
        self.restored_epoch = int(state["epoch"])
        # As keras.callbacks.BackupAndRestore does: fit() starts at this epoch.
        set_initial_epoch(self.model, self.restored_epoch)

    def on_epoch_end(self, epoch, logs=None):
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        _io.save_weights(self.model, os.path.join(self.backup_dir, name))
        callbacks = [
            {
                attr: _json_number(getattr(cb, attr)) if attr == "best" else getattr(cb, attr)
                for attr in _TRACKED_ATTRIBUTES[type(cb)]
                if getattr(cb, attr, None) is not None
            }
            for cb in self.tracked
        ]
        self.train_seconds = round(self._seconds_before + time.time() - self._started, 1)
        state = {
            "epoch": epoch + 1,
            "weights": name,
            "callbacks": callbacks,
            "logs": {k: _number(v) for k, v in (logs or {}).items()},
            "time": time.time(),
            "train_seconds": self.train_seconds,
        }
        _io.write_json(self.state_path, state)  # the commit
        for old in glob.glob(os.path.join(glob.escape(self.backup_dir), "epoch-*.weights.h5")):
            if os.path.basename(old) != name:
                with contextlib.suppress(OSError):
                    os.remove(old)

    def on_train_end(self, logs=None):
        # Keras never resets it: a later fit() of the same model would skip epochs.
        set_initial_epoch(self.model, None)


class CSVLog(keras.callbacks.Callback):
    """Writes the epoch logs to a CSV file, rewritten atomically after each epoch.

    Columns: ``epoch`` (1-based, as the progress bar counts), then the logs'
    keys in sorted order (``learning_rate``, ``loss``, ``accuracy``,
    ``val_loss``, ...). When ``fit`` starts at epoch ``k`` (a resumed run), the
    rows of epochs ``1..k`` already in the file are kept and any later rows (from
    an epoch that did not commit) are dropped before the epoch is written again.
    """

    def __init__(self, path):
        super().__init__()
        self.path = os.fspath(path)
        self.rows = []
        self._started = False

    @staticmethod
    def read(path) -> list[dict]:
        """The rows of a log as dicts of floats (``epoch`` as int)."""
        if not os.path.exists(path):
            return []
        with open(path, newline="", encoding="utf-8") as f:
            rows = []
            for row in csv.DictReader(f):
                parsed = {k: _number(v) for k, v in row.items() if k}
                parsed["epoch"] = int(parsed["epoch"])
                rows.append(parsed)
            return rows

    def on_train_begin(self, logs=None):
        self._started = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._started:
            self._started = True
            self.rows = [r for r in self.read(self.path) if r["epoch"] <= epoch]

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: _number(v) for k, v in (logs or {}).items()}}
        self.rows = [r for r in self.rows if r["epoch"] < epoch + 1] + [row]
        keys = ["epoch"] + sorted({k for r in self.rows for k in r} - {"epoch"})
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=keys, restval="", lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in keys})
        _io.write_text(self.path, out.getvalue())


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model to ``path`` (``.keras``) whenever ``monitor`` improves.

    The score and the epoch are written next to it (``path`` with ``.json``),
    after the model: a resumed run reads them back, so the file always holds the
    best model of all the epochs run so far, whichever process ran them.

    Args:
        path: the ``.keras`` file.
        monitor: a key of the epoch logs (``"val_accuracy"``).
        mode: ``"max"``, ``"min"`` or ``"auto"`` (``min`` for losses).
    """

    def __init__(self, path, monitor="val_accuracy", mode="auto"):
        super().__init__()
        self.path = check_path("path", path, suffix=".keras")
        check_choice("mode", mode, ("auto", "min", "max"))
        self.monitor = monitor
        self.mode = ("min" if "loss" in monitor else "max") if mode == "auto" else mode
        self.best = None
        self.best_epoch = None

    @property
    def score_path(self):
        return self.path[: -len(".keras")] + ".json"

    def on_train_begin(self, logs=None):
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        _io.remove_temporaries(folder)
        self.best = self.best_epoch = None
        if os.path.exists(self.score_path) and os.path.exists(self.path):
            saved = _io.read_json(self.score_path)
            if saved.get("monitor") == self.monitor:
                self.best, self.best_epoch = saved["best"], saved["epoch"]

    def _improved(self, value):
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        value = _number((logs or {}).get(self.monitor))
        if value is None:
            return
        if self._improved(value):
            self.best, self.best_epoch = value, epoch + 1
            _io.save_model(self.model, self.path)
            _io.write_json(
                self.score_path, {"monitor": self.monitor, "best": value, "epoch": epoch + 1}
            )


class LearningRateLogger(keras.callbacks.Callback):
    """Adds ``learning_rate`` to the epoch logs: the rate at the epoch's first step.

    Put it first among the callbacks, so that the others (and the CSV log) see it.
    """

    def __init__(self):
        super().__init__()
        self._rate = None

    def _current(self):
        optimizer = self.model.optimizer
        if optimizer is None:
            return None
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))

    def on_epoch_begin(self, epoch, logs=None):
        self._rate = self._current()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._rate is not None:
            logs["learning_rate"] = self._rate


class SyncReplicaStatistics(keras.callbacks.Callback):
    """Averages the replicas' copies of BatchNorm moving statistics (MirroredStrategy).

    Keras 3 creates BatchNorm's moving mean and variance with aggregation
    ``"none"``: under `tf.distribute.MirroredStrategy` each replica updates its own
    copy from its own part of the batch, so the copies drift apart; a saved model
    holds the first replica's, while an evaluation under the strategy uses each
    replica's own. This callback sets every copy to their mean before each
    validation, at the end of each epoch (before checkpoints, put it first) and
    at the end of training, so that the saved model, the validation and the
    checkpoints all see statistics of the whole data. Without a strategy (one copy)
    it does nothing.
    """

    def _sync(self):
        if keras.backend.backend() != "tensorflow":
            return  # JAX's DataParallel keeps one copy; torch trains on one device
        import tensorflow as tf

        for variable in self.model.non_trainable_variables:
            copies = getattr(getattr(variable, "value", variable), "values", None)
            if not copies or len(copies) < 2 or not copies[0].dtype.is_floating:
                continue
            mean = tf.add_n([tf.convert_to_tensor(c) for c in copies]) / len(copies)
            for copy in copies:
                copy.assign(tf.identity(mean))

    def on_test_begin(self, logs=None):
        self._sync()

    def on_epoch_end(self, epoch, logs=None):
        self._sync()

    def on_train_end(self, logs=None):
        self._sync()


def _event_files(log_dir):
    for folder, _, files in os.walk(log_dir):
        for name in sorted(files):
            if "tfevents" in name and not name.startswith("."):
                yield os.path.join(folder, name)


def drop_events_after(log_dir, wall_time):
    """Rewrites the TensorBoard event files under ``log_dir`` without the summaries
    written after ``wall_time`` (seconds since the epoch; ``None``: all of them).

    Each file is rewritten atomically and only when it loses an event; the
    other records (file version, graphs) are kept. Returns how many events were
    dropped.
    """
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    dropped = 0
    for path in _event_files(log_dir):
        kept, lost = [], 0
        try:
            for record in tf.data.TFRecordDataset(path):
                raw = record.numpy()
                event = event_pb2.Event.FromString(raw)
                if event.HasField("summary") and (wall_time is None or event.wall_time > wall_time):
                    lost += 1
                else:
                    kept.append(raw)
        except tf.errors.DataLossError:  # a record cut by the kill: drop it too
            lost += 1
        if not lost:
            continue
        with _io.atomic_path(path) as tmp:
            with tf.io.TFRecordWriter(tmp) as writer:
                for raw in kept:
                    writer.write(raw)
        dropped += lost
    return dropped


class TensorBoard(keras.callbacks.TensorBoard):
    """`keras.callbacks.TensorBoard` for runs that resume: each epoch is logged once.

    A process killed after its last committed epoch has written (some of) the
    next epoch's events; the resumed run writes that epoch again, so TensorBoard
    would show it twice. With ``backup_dir`` (the `BackupAndRestore` folder),
    `on_train_begin` first drops every summary written after the backup's last
    commit (all of them when nothing was committed). Other arguments are Keras's.
    """

    def __init__(self, log_dir="logs", *, backup_dir=None, **kwargs):
        super().__init__(log_dir, **kwargs)
        self.backup_dir = None if backup_dir is None else os.fspath(backup_dir)

    def on_train_begin(self, logs=None):
        if self.backup_dir is not None and os.path.isdir(self.log_dir):
            state_path = os.path.join(self.backup_dir, STATE_FILE)
            committed = None
            if os.path.exists(state_path):
                committed = _io.read_json(state_path).get("time") or os.path.getmtime(state_path)
            drop_events_after(self.log_dir, committed)
        super().on_train_begin(logs)
