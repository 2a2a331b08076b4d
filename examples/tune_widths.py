# %% [markdown]
# # Searching a network's widths with Keras Tuner
#
# The classic networks' widths were chosen by hand for ImageNet. On another dataset a
# narrower network is often as accurate for a fraction of the cost. `kerasnets.tuning`
# turns any kerasnets model into a Keras Tuner `HyperModel` whose hyperparameters are its
# widths (a global `width_multiplier` and one width per stage, block or module), trains
# each trial with the model's paper recipe, and reports every trial's accuracy against its
# multiply-adds (from the profiler) with the Pareto front marked: the trials that no other
# trial beats at the same or lower cost.
#
# * `python examples/tune_widths.py`: ResNet-20's three stage widths and its width
#   multiplier on CIFAR-10 (downloaded), Bayesian optimisation, 20 trials of 10 epochs; a
#   Colab GPU.
# * `--quick` (or `KERASNETS_QUICK=1` for the notebook): two trials of one epoch on a
#   slice of the built-in `shapes` dataset.

# %%
import argparse
import os
import sys

parser = argparse.ArgumentParser(description="A Keras Tuner width search and its accuracy-against-MACs plot.")
parser.add_argument("--quick", action="store_true", default=os.environ.get("KERASNETS_QUICK") == "1",
                    help="two one-epoch trials on a slice of `shapes` (no download): a CPU smoke run")
parser.add_argument("--model", default="resnet20", help="a registered model (default resnet20)")
parser.add_argument("--tuner", default="bayesian", choices=["random", "hyperband", "bayesian"])
parser.add_argument("--trials", type=int, default=None, help="default 20, or 2 with --quick")
parser.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 10, or 1 with --quick)")
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data_dir")
parser.add_argument("--output", default="outputs/tune_widths", help="the tuner's trials and the report")
# In a notebook the command line is the kernel's: the defaults above apply (edit them here).
IN_NOTEBOOK = "ipykernel" in sys.modules
args = parser.parse_args(args=[] if IN_NOTEBOOK else None)

QUICK = args.quick
TRIALS = args.trials or (2 if QUICK else 20)
EPOCHS = args.epochs or (1 if QUICK else 10)
BATCH_SIZE = 32 if QUICK and args.batch_size == 128 else args.batch_size
os.makedirs(args.output, exist_ok=True)

# %% [markdown]
# ## Data

# %%
import kerasnets
import kerasnets.data
import kerasnets.tuning as kt
from kerasnets import training

hardware = training.setup_hardware()
print(hardware.describe())
if QUICK:
    source, train_split, val_split = "shapes", "train[:128]", "validation[:64]"
else:
    source, train_split, val_split = "cifar10", "train[:90%]", "train[90%:]"  # the test split stays unseen
load = dict(batch_size=BATCH_SIZE, model=args.model, data_dir=args.data_dir, download=not QUICK)
train = kerasnets.data.load(source, train_split, seed=0, **load)
val = kerasnets.data.load(source, val_split, training=False, **load)
print(f"{source}: {train.num_examples} training / {val.num_examples} validation images at {train.image_size}×{train.image_size}")

# %% [markdown]
# ## The search space
#
# `describe()` prints it. Every entry can be overridden: a list is a choice, a number fixes
# it, a dict is a range. The quick run searches the width multiplier alone.

# %%
overrides = {"width_multiplier": [0.125, 0.25]} if QUICK else {"width_multiplier": [0.5, 0.75, 1.0]}
hypermodel = kt.WidthHyperModel(
    args.model, input_shape=(train.image_size, train.image_size, 3), classes=train.num_classes,
    per_block=not QUICK, overrides=overrides, batch_size=BATCH_SIZE,
    steps_per_epoch=train.steps_per_epoch, epochs=EPOCHS, jit_compile=hardware.jit_compile,
)
print(hypermodel.describe())

# %% [markdown]
# ## The search
#
# Each trial builds the model for its hyperparameters, compiles it with the paper's recipe
# (its schedule compressed to `EPOCHS`) and trains it; the objective is the best validation
# accuracy. The tuner keeps its trials in `OUTPUT/search`: running the search again resumes it.

# %%
tuner = kt.make_tuner(
    args.tuner, hypermodel, objective="val_accuracy", max_trials=TRIALS, max_epochs=EPOCHS,
    directory=args.output, project_name="search", overwrite=QUICK, seed=0,
    distribution_strategy=hardware.strategy if hardware.replicas > 1 else None,
)
tuner.search(train.dataset, validation_data=val.dataset, epochs=EPOCHS, verbose=2)

# %% [markdown]
# ## Accuracy against multiply-adds
#
# `write_report` writes `results.csv`, `pareto.png`, the best model (`best_model.keras`)
# and the builder arguments that rebuild it (`best_args.json`).

# %%
report = kt.write_report(tuner, args.output)
print(kt.format_table(report["results"], objective_name="val_accuracy"))
print(f"\nwrote {', '.join(sorted(os.path.basename(p) for p in report['paths'].values()))} in {args.output}")
if IN_NOTEBOOK:
    from IPython.display import Image, display

    display(Image(report["paths"]["plot"]))

# %% [markdown]
# ## The best trial, rebuilt
#
# `build_from_args` rebuilds the best architecture (untrained) from its builder arguments,
# e.g. to train it longer with `kerasnets train` or `training.compile_model`; the profiler shows
# where its multiply-adds go.

# %%
best = report["best"]
print(f"best trial {best.trial_id}: val_accuracy {best.objective:.4f}, {best.params:,} parameters, "
      f"{best.macs / 1e6:.1f}M multiply-adds; builder arguments {best.builder_args}")
model = kt.build_from_args(best.builder_args)
print(kerasnets.profile(model).to_text())
