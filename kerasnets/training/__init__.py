"""Training the models the way their papers did, on whatever hardware is there.

* `Recipe`, `get_recipe`, `recipe_for`, `list_recipes`: the papers' recipes as data.
* `compile_model`: a model gets its recipe (optimizer, schedule, loss, metrics, weight
  decay) in one line, for your own ``model.fit``. `compile` is the same function under its
  former name, kept as an alias (``compile_model`` does not shadow the builtin).
* `setup_hardware`, `choose_strategy`, `choose_precision`, `choose_jit_compile`:
  TPU / MirroredStrategy / default, the dtype policy and XLA.
* `train`, `evaluate`: the whole run behind ``kerasnets train`` and
  ``kerasnets evaluate`` (resumable, with logs, curves, checkpoints, export);
  `TrainingConfig`: what a run is asked for, typed and validated once (``train(config)``).

Example, your own loop:

>>> import kerasnets
>>> from kerasnets import training
>>> hw = training.setup_hardware()
>>> with hw.strategy.scope():
...     model = kerasnets.ResNet20(weights=None)
...     recipe = training.compile_model(model, steps_per_epoch=313, global_batch_size=32,
...                                     epochs=10, jit_compile=hw.jit_compile)
>>> model.fit(train_ds, validation_data=val_ds, epochs=recipe.epochs,
...           callbacks=recipe.callbacks())  # doctest: +SKIP
"""

from kerasnets.training._compile import SparseCrossentropy, WeightDecay, apply_weight_decay, compile, compile_model
from kerasnets.training.callbacks import TrainingDiverged
from kerasnets.training.distribution import initialize_processes
from kerasnets.training._config import TrainingConfig
from kerasnets.training._run import (
    LAYOUT,
    RunResult,
    TrainingRun,
    evaluate_model,
    first_split,
    prepare,
    resolve_recipe,
    train,
)
from kerasnets.training.recipes import (
    RECIPES,
    EpochSchedule,
    Recipe,
    get_recipe,
    list_recipes,
    recipe_for,
)
from kerasnets.training.strategy import (
    Hardware,
    choose_jit_compile,
    choose_precision,
    choose_strategy,
    setup_hardware,
)

__all__ = [
    "train",
    "prepare",
    "TrainingConfig",
    "TrainingDiverged",
    "TrainingRun",
    "RunResult",
    "evaluate_model",
    "first_split",
    "resolve_recipe",
    "LAYOUT",
    "Recipe",
    "RECIPES",
    "EpochSchedule",
    "get_recipe",
    "list_recipes",
    "recipe_for",
    "compile_model",
    "compile",  # the alias of compile_model
    "SparseCrossentropy",
    "WeightDecay",
    "apply_weight_decay",
    "Hardware",
    "setup_hardware",
    "choose_strategy",
    "choose_precision",
    "choose_jit_compile",
    "initialize_processes",
]
