"""keras-tuner's tuners, with failed trials surfaced instead of swallowed.

keras-tuner catches the exception of a failed trial, stores its traceback in
``trial.message``, marks the trial ``FAILED`` and carries on; only
``max_consecutive_failed_trials`` failures in a row stop the search. A search
whose trials all die of the same bug can so "finish" with nothing to show. The
tuners here print each failure as it happens (trial, hyperparameters, error)
and, by default, raise `TrialsFailedError` at the end of the search with every
failed trial's error, after the trials that did complete are saved.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import warnings

import keras_tuner

from kerasnets._validate import check_choice, check_int, check_string
from kerasnets.profiling import profile

__all__ = [
    "TrialFailure",
    "TrialsFailedError",
    "failed_trials",
    "raise_for_failed_trials",
    "RandomSearch",
    "Hyperband",
    "BayesianOptimization",
    "TUNERS",
    "make_tuner",
]

_FAILED = keras_tuner.engine.trial.TrialStatus.FAILED
_INVALID = keras_tuner.engine.trial.TrialStatus.INVALID


@dataclasses.dataclass(frozen=True)
class TrialFailure:
    """A trial that did not complete.

    Attributes:
        trial_id: keras-tuner's id (``"03"``).
        hyperparameters: the trial's values.
        error: the last line of the traceback (``"ValueError: ..."``), or why a
            trial without an exception failed (a NaN objective).
        message: keras-tuner's full message (the traceback), or ``error``.
    """

    trial_id: str
    hyperparameters: dict
    error: str
    message: str

    def __str__(self):
        values = ", ".join(f"{k}={v}" for k, v in self.hyperparameters.items() if not k.startswith("tuner/"))
        return f"trial {self.trial_id} ({values}): {self.error}"


def _failure(trial) -> TrialFailure:
    message = (trial.message or "").strip()
    if message:
        error = message.splitlines()[-1].strip()
    else:
        score = getattr(trial, "score", None)
        error = (
            "the objective was NaN (the training diverged?)"
            if score is not None and isinstance(score, float) and math.isnan(score)
            else "the trial failed without an error message (NaN objective or metrics?)"
        )
        message = error
    return TrialFailure(trial.trial_id, dict(trial.hyperparameters.values), error, message)


def failed_trials(tuner, trial_ids=None) -> list[TrialFailure]:
    """The failed trials of a tuner (any keras-tuner tuner), in trial order."""
    trials = tuner.oracle.trials
    ids = sorted(trials) if trial_ids is None else [t for t in sorted(trials) if t in trial_ids]
    return [_failure(trials[t]) for t in ids if trials[t].status in (_FAILED, _INVALID)]


class TrialsFailedError(RuntimeError):
    """Trials of a search failed; ``failures`` holds each one's `TrialFailure`."""

    def __init__(self, failures, *, total, stopped=None):
        self.failures = list(failures)
        self.total = total
        self.stopped = stopped
        lines = [f"{len(self.failures)} of {total} trials failed:"]
        lines += [f"  {failure}" for failure in self.failures]
        if stopped:
            lines.append(f"The search stopped early: {stopped}")
        first = self.failures[0].message if self.failures else ""
        if first and first != self.failures[0].error:
            lines.append(f"Traceback of trial {self.failures[0].trial_id}:\n{first}")
        super().__init__("\n".join(lines))


def raise_for_failed_trials(tuner, trial_ids=None):
    """Raises `TrialsFailedError` if any trial of ``tuner`` failed (for plain keras-tuner tuners)."""
    failures = failed_trials(tuner, trial_ids)
    if failures:
        ids = tuner.oracle.trials if trial_ids is None else trial_ids
        raise TrialsFailedError(failures, total=len(ids))


class _SurfaceFailures:
    """Mixin: print failed trials as they end; raise `TrialsFailedError` after the search.

    Extra arguments of the tuners:
        on_failure: ``"raise"`` (default): `search` raises `TrialsFailedError` at the
            end if any of its trials failed; ``"warn"``: a warning lists them.
            Either way each failure is printed to stderr when its trial ends.
        trial_callback: ``callable(trial)`` called when each trial ends (with its
            final status), e.g. to print progress.

    A search resumes from the project's ``oracle.json`` whichever process wrote it:
    keras-tuner reloads only when it finds the file of its own tuner id
    (``tuner0.json`` for one process, ``chief.json`` for a distributed chief), so a
    search started on several workers and resumed on one (or the other way round)
    would otherwise start over beside its own trials. In a Keras Tuner worker
    (``KERASTUNER_ORACLE_IP`` set) the chief keeps the trials: failures are printed
    but not raised here, and a worker that the oracle tells to wait (Hyperband
    between brackets) asks again after a second instead of at once.
    """

    def __init__(self, *args, on_failure="raise", trial_callback=None, **kwargs):
        check_choice("on_failure", on_failure, ("raise", "warn"))
        self.on_failure = on_failure
        self.trial_callback = trial_callback
        self._waiting = False
        project = os.path.join(str(kwargs.get("directory") or "."), kwargs.get("project_name") or "untitled_project")
        own_file = os.path.join(project, f"{os.environ.get('KERASTUNER_TUNER_ID', 'tuner0')}.json")
        adopt = (not kwargs.get("overwrite") and os.path.exists(os.path.join(project, "oracle.json"))
                 and not os.path.exists(own_file))
        super().__init__(*args, **kwargs)
        if adopt and not self._is_worker():
            print(f"Reloading the search from {os.path.join(project, 'oracle.json')}")
            self.oracle.reload()

    def pre_create_trial(self):
        if self._waiting:  # the oracle answered IDLE: keras-tuner would ask again at once
            time.sleep(1.0)
        self._waiting = True
        super().pre_create_trial()

    def on_trial_begin(self, trial):
        self._waiting = False
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        try:
            super().on_trial_end(trial)
        finally:
            final = trial if self._is_worker() else self.oracle.trials.get(trial.trial_id, trial)
            if final.status in (_FAILED, _INVALID):
                print(f"Trial {trial.trial_id} FAILED: {_failure(final).error}", file=sys.stderr, flush=True)
            if self.trial_callback is not None:
                self.trial_callback(final)

    def search(self, *fit_args, **fit_kwargs):
        if self._is_worker():  # the chief holds the trials and reports them
            return super().search(*fit_args, **fit_kwargs)
        before = set(self.oracle.trials)
        stopped = None
        try:
            super().search(*fit_args, **fit_kwargs)
        except RuntimeError as error:
            if "consecutive failures" not in str(error):
                raise
            stopped = str(error).splitlines()[0]
        new = [t for t in self.oracle.trials if t not in before]
        failures = failed_trials(self, new)
        if not failures:
            return
        error = TrialsFailedError(failures, total=len(new), stopped=stopped)
        if self.on_failure == "raise":
            raise error
        warnings.warn(str(error), RuntimeWarning, stacklevel=2)


class RandomSearch(_SurfaceFailures, keras_tuner.RandomSearch):
    """`keras_tuner.RandomSearch` that surfaces failed trials (``on_failure``, ``trial_callback``)."""


class Hyperband(_SurfaceFailures, keras_tuner.Hyperband):
    """`keras_tuner.Hyperband` that surfaces failed trials (``on_failure``, ``trial_callback``)."""


class BayesianOptimization(_SurfaceFailures, keras_tuner.BayesianOptimization):
    """`keras_tuner.BayesianOptimization` that surfaces failed trials (``on_failure``, ``trial_callback``)."""


TUNERS = {"random": RandomSearch, "hyperband": Hyperband, "bayesian": BayesianOptimization}


def resolve_objective(hypermodel, objective: str):
    """``"val_accuracy"`` becomes ``Objective("val_main_accuracy", "max")`` for models with auxiliary heads."""
    check_string("objective", objective, expected="a metric name such as 'val_accuracy'")
    args = hypermodel.builder_args(hypermodel.values(keras_tuner.HyperParameters()))
    name = args.pop("name")
    if not profile(name, **args).aux:
        return objective
    prefix = "val_" if objective.startswith("val_") else ""
    base = objective[len(prefix):]
    if base in ("accuracy", "top5_accuracy"):
        return keras_tuner.Objective(f"{prefix}main_{base}", direction="max")
    return objective


def make_tuner(
    kind: str,
    hypermodel,
    *,
    objective: str = "val_accuracy",
    max_trials: int = 10,
    max_epochs: int = 10,
    directory=None,
    project_name: str = "tuner",
    overwrite: bool = False,
    distribution_strategy=None,
    seed: int | None = None,
    on_failure: str = "raise",
    trial_callback=None,
    **kwargs,
):
    """A tuner over ``hypermodel``: ``"random"``, ``"hyperband"`` or ``"bayesian"``.

    Args:
        kind: the search algorithm.
        hypermodel: a `WidthHyperModel` (or any keras-tuner HyperModel).
        objective: the metric to maximise (``*loss``: minimise); ``"val_accuracy"``
            reads the main head's for models with auxiliary classifiers.
        max_trials: the number of trials (model configurations); for Hyperband,
            each round of successive halving counts, and brackets repeat until
            this many have run (unless ``hyperband_iterations`` is given).
        max_epochs: Hyperband's most epochs per model (ignored by the others,
            whose epochs are ``search(epochs=...)``).
        directory, project_name, overwrite: where keras-tuner keeps its trials
            (``directory/project_name``); an existing project is resumed unless
            ``overwrite``.
        distribution_strategy: a `tf.distribute.Strategy` (``MirroredStrategy()``
            on GPUs) under which every trial builds, compiles and trains.
        seed: the search's random seed.
        on_failure, trial_callback: see `RandomSearch`.
        **kwargs: further arguments of the keras-tuner tuner and oracle
            (``max_consecutive_failed_trials``, ``executions_per_trial``, ...).

    Returns:
        The tuner; call ``tuner.search(train, validation_data=val, epochs=...)``.
    """
    check_choice("kind", kind, TUNERS)
    check_int("max_trials", max_trials)
    check_int("max_epochs", max_epochs)
    if hasattr(hypermodel, "builder_args"):
        objective = resolve_objective(hypermodel, objective)
    common = dict(
        objective=objective, directory=directory, project_name=project_name, overwrite=overwrite,
        distribution_strategy=distribution_strategy, seed=seed, on_failure=on_failure,
        trial_callback=trial_callback, **kwargs,
    )
    if kind == "hyperband":
        # Brackets repeat until max_trials trials have run (keras-tuner's Hyperband
        # has no max_trials of its own; with a small max_epochs one iteration is a
        # single trial).
        common.setdefault("hyperband_iterations", None)
        tuner = Hyperband(hypermodel, max_epochs=max_epochs, **common)
        tuner.oracle.max_trials = max_trials
    else:
        tuner = TUNERS[kind](hypermodel, max_trials=max_trials, **common)
    return tuner
