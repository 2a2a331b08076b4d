"""Keras Tuner searches over the widths of the classic networks.

Find smaller, cheaper variants of a network for your own data: search its
global ``width_multiplier`` and its per-stage / per-block / per-module widths
(optionally its depth and learning rate) with keras-tuner's ``RandomSearch``,
``Hyperband`` or ``BayesianOptimization``, then read the results as a table and
a plot of accuracy against multiply-adds with the Pareto front marked.

* `WidthHyperModel`: the keras-tuner ``HyperModel`` of any registered model; its
  search space (`search_space`, ``hypermodel.describe()``) is declared in each
  model's spec (``ModelSpec.widths``, a `WidthSpace`; `family_space`), readable and
  overridable. Hyperparameter names:
  ``width_multiplier``; ``conv2_width`` .. ``conv5_width`` (ResNet stages),
  ``block1_width`` .. ``block5_width`` (VGG blocks), ``inception_3a_scale`` ..
  (GoogLeNet modules), ``mixed5b_scale`` .. (Inception v2/v3 modules);
  ``depth``; ``learning_rate``. See `WidthHyperModel` for their ranges.
* `RandomSearch`, `Hyperband`, `BayesianOptimization`, `make_tuner`: keras-tuner's
  tuners that print each failed trial and raise `TrialsFailedError` at the end
  of a search with failures, instead of passing over them silently.
  ``distribution_strategy=tf.distribute.MirroredStrategy()`` trains every trial
  on all GPUs.
* `trial_results`, `write_report`, `pareto_front`, `build_from_args`: the table
  (trial, widths, parameters, MACs, objective), the PNG, the best model and the
  builder arguments that rebuild it.
* `OracleServer`, `fetch_space`, `worker_environment`: a search on several
  processes or machines with Keras Tuner's own engine (a chief serves the
  oracle over gRPC, workers run the trials; see ``docs/distributed.md``).

The ``kerasnets tune`` command runs all of it on a dataset.

Example:

>>> import kerasnets, kerasnets.tuning as kt
>>> train = kerasnets.data.load("shapes", "train", image_size=32, batch_size=64)
>>> val = kerasnets.data.load("shapes", "validation", image_size=32, batch_size=64)
>>> hypermodel = kt.WidthHyperModel(
...     "resnet20", input_shape=(32, 32, 3), classes=train.num_classes,
...     batch_size=64, steps_per_epoch=train.steps_per_epoch, epochs=3,
...     overrides={"width_multiplier": [0.5, 1.0]})
>>> print(hypermodel.describe())                         # the search space
>>> tuner = kt.make_tuner("bayesian", hypermodel, max_trials=20, directory="runs/tune")
>>> tuner.search(train.dataset, validation_data=val.dataset, epochs=3)
>>> report = kt.write_report(tuner, "runs/tune")         # csv, png, best model, args
>>> model = kt.build_from_args(report["best"].builder_args)  # untrained, same architecture
"""

from kerasnets.tuning._distributed import (
    WORKERS_FILE,
    OracleServer,
    chief_environment,
    fetch_space,
    parse_address,
    read_workers,
    space_differences,
    split_devices,
    worker_environment,
)
from kerasnets.tuning._hypermodel import WidthHyperModel, build_from_args
from kerasnets.tuning._report import (
    TrialResult,
    count_text,
    format_table,
    pareto_front,
    plot_pareto,
    trial_results,
    widths_text,
    write_report,
)
from kerasnets.tuning._space import (
    FamilySpace,
    WidthSpace,
    Hyperparameter,
    builder_kwargs,
    depth_choices,
    effective_widths,
    search_space,
)
from kerasnets.tuning._tuners import (
    TUNERS,
    BayesianOptimization,
    Hyperband,
    RandomSearch,
    TrialFailure,
    TrialsFailedError,
    failed_trials,
    make_tuner,
    raise_for_failed_trials,
)

__all__ = [
    "WidthHyperModel",
    "build_from_args",
    "search_space",
    "Hyperparameter",
    "WidthSpace",
    "FamilySpace",
    "builder_kwargs",
    "depth_choices",
    "effective_widths",
    "make_tuner",
    "RandomSearch",
    "Hyperband",
    "BayesianOptimization",
    "TUNERS",
    "TrialFailure",
    "TrialsFailedError",
    "failed_trials",
    "raise_for_failed_trials",
    "TrialResult",
    "trial_results",
    "pareto_front",
    "format_table",
    "plot_pareto",
    "write_report",
    "widths_text",
    "count_text",
    "OracleServer",
    "fetch_space",
    "space_differences",
    "worker_environment",
    "chief_environment",
    "parse_address",
    "split_devices",
    "read_workers",
    "WORKERS_FILE",
]
