"""``kerasnets tune``: a Keras Tuner search over a model's widths on a dataset."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

from kerasnets._validate import fail, message
from kerasnets.cli import KEY_VALUE_HELP, UsageError, key_value, positive_int, usage_errors

_EPILOG = """\
The search space (print it with --show-space) is the model family's widths:
width_multiplier; conv2_width.. (ResNet stages), block1_width.. (VGG blocks),
inception_3a_scale.. / mixed5b_scale.. (GoogLeNet / Inception modules); with
--search-depth the depth, with --search-learning-rate the learning rate.
Override an entry with --hp NAME=VALUES:
  --hp width_multiplier=0.5,1.0      a choice
  --hp conv2_width=16                fixed
  --hp conv3_width=8..32:8           a range with a step
  --hp learning_rate=0.001..0.1:log  a range sampled on a log scale

Output (--output, default runs/tune-<model>-<dataset>):
  results.csv       trial, status, widths, params, MACs, objective, Pareto, hyperparameters,
                    builder arguments, error
  pareto.png        the objective against MACs, the Pareto front marked
  best_model.keras  the best trial's trained model
  best_args.json    the builder arguments that rebuild it:
                    kerasnets.tuning.build_from_args(json.load(f)["builder_args"])
  tuner/            keras-tuner's project; running the command again resumes it
                    (--overwrite starts over)
A trial that fails is reported when it ends; the command then exits with status 1
after writing the report of the trials that completed.

Example:
  kerasnets tune resnet20 --dataset shapes --max-trials 20 --tuner bayesian --epochs 3
"""


# kerasnets.tuning.TUNERS' keys; spelled here so that building the parser (for any
# command) does not import keras-tuner.
TUNER_KINDS = ("random", "hyperband", "bayesian")


def register(subparsers):
    from kerasnets.training.strategy import PRECISIONS, STRATEGIES

    p = subparsers.add_parser(
        "tune",
        help="search a model's widths with Keras Tuner (results table, Pareto plot, best model)",
        description="Search the widths (optionally depth and learning rate) of a model on a "
                    "dataset with Keras Tuner, then write a results table, a plot of the "
                    "objective against multiply-adds with the Pareto front, the best model "
                    "and the builder arguments that rebuild it.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="a registered model name (see `kerasnets list`)")
    p.add_argument("--dataset", default="shapes",
                   help="'shapes' (built in, default), a tensorflow-datasets name or a folder of images")
    p.add_argument("--max-trials", type=positive_int, default=10, metavar="N",
                   help="number of trials (models) to try (default 10)")
    p.add_argument("--tuner", choices=TUNER_KINDS, default="random", help="the search algorithm (default random)")
    p.add_argument("--objective", default="val_accuracy",
                   help="the metric to maximise (a *loss is minimised); default val_accuracy")
    p.add_argument("--output", help="output folder (default runs/tune-<model>-<dataset>)")
    p.add_argument("--epochs", type=positive_int, default=3, metavar="N",
                   help="epochs per trial; Hyperband's most epochs per model (default 3)")
    p.add_argument("--batch-size", type=positive_int, default=64, metavar="N", help="global batch size (default 64)")
    p.add_argument("--image-size", type=positive_int, metavar="N",
                   help="square input size (default: the dataset's for small images, else the model's)")
    p.add_argument("--steps-per-epoch", type=positive_int, metavar="N",
                   help="train on the first N batches of each epoch (quick searches)")
    p.add_argument("--validation-steps", type=positive_int, metavar="N",
                   help="validate on the first N batches")
    space = p.add_argument_group("search space")
    space.add_argument("--hp", action="append", default=[], metavar="NAME=VALUES",
                       help="override a hyperparameter (repeatable; see below)")
    space.add_argument("--search-depth", action="store_true",
                       help="search the depth too (ResNet 18/34, 50/101/152, CIFAR 20..110; VGG 11..19)")
    space.add_argument("--search-learning-rate", action="store_true",
                       help="search the learning rate too (the recipe's /30 .. x3, log scale)")
    space.add_argument("--global-only", action="store_true",
                       help="search only width_multiplier (no per-stage / per-module widths)")
    space.add_argument("--option", "-O", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                       help="a builder argument for every trial: -O residual=false; " + KEY_VALUE_HELP)
    space.add_argument("--show-space", action="store_true", help="print the search space and exit")
    run = p.add_argument_group("run")
    run.add_argument("--strategy", choices=STRATEGIES, default="auto",
                     help="auto: MirroredStrategy over all GPUs when there are some")
    run.add_argument("--precision", choices=PRECISIONS, default="auto",
                     help="dtype policy of the trials (auto, as `kerasnets train`: mixed precision "
                          "where the hardware computes it natively)")
    run.add_argument("--train-split", default="train")
    run.add_argument("--val-split", dest="validation_split", help="default: validation, else test")
    run.add_argument("--data-dir", help="tensorflow-datasets data folder")
    run.add_argument("--download", action="store_true", help="let tensorflow-datasets download the dataset")
    run.add_argument("--seed", type=int, help="the search's seed (and the data order's)")
    run.add_argument("--overwrite", action="store_true", help="start over instead of resuming --output's search")
    run.add_argument("--verbose", type=int, choices=(0, 1, 2),
                     help="Keras's fit verbosity (default: 1 on a terminal, else 2)")
    p.set_defaults(func=run_tune)


# ---------------------------------------------------------------------------
# --hp NAME=VALUES
# ---------------------------------------------------------------------------


def _number(text):
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise UsageError(message("--hp values", "numbers", text, received=repr(text))) from None


def parse_hp(item: str):
    """``NAME=VALUES`` -> ``(name, override)`` (see the epilog)."""
    name, sep, value = item.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise UsageError(message("--hp", "NAME=VALUES, e.g. --hp width_multiplier=0.5,1.0", item,
                                 received=f"--hp {item!r}"))
    if ".." in value:
        lo, _, rest = value.partition("..")
        hi, _, extra = rest.partition(":")
        override = {"min_value": _number(lo), "max_value": _number(hi)}
        if extra.strip() == "log":
            override["sampling"] = "log"
        elif extra.strip():
            override["step"] = _number(extra)
        if not all(isinstance(override[k], int) for k in ("min_value", "max_value")):
            override["min_value"] = float(override["min_value"])
            override["max_value"] = float(override["max_value"])
        return name, override
    values = [_number(v) for v in value.split(",") if v.strip()]
    return name, values if len(values) > 1 else values[0]


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def _slug(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text).strip("/")).strip("_") or "data"


def _check_request(path, request, overwrite):
    """Resuming a search needs the same model, data and space; say so otherwise."""
    if overwrite or not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        previous = json.load(f)
    changed = sorted(k for k in set(previous) | set(request) if previous.get(k) != request.get(k))
    if changed:
        raise ValueError(
            f"{os.path.dirname(path)} holds a search with other settings ({', '.join(changed)}); "
            "pass --overwrite to start over or another --output. "
            f"Received: {', '.join(f'{k}={request.get(k)!r}' for k in changed)}"
        )


def _progress(tuner, objective_name, max_trials, started):
    def report(trial):
        hypermodel = tuner.hypermodel
        values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        line = f"[tune] trial {trial.trial_id} ({len(tuner.oracle.trials)}/{max_trials}) {trial.status}"
        if trial.status == "COMPLETED":
            line += f" {objective_name}={trial.score:.4f}"
        try:
            widths, params, macs = hypermodel.model_stats(values)
            from kerasnets.tuning import count_text, widths_text

            line += f" widths={widths_text(widths) or '-'} params={count_text(params)} MACs={count_text(macs)}"
        except (KeyError, ValueError):
            pass
        best = tuner.oracle.get_best_trials(1)
        if best:
            line += f" | best: trial {best[0].trial_id} {best[0].score:.4f}"
        line += f" | {time.time() - started:.0f}s"
        print(line, flush=True)

    return report


def _overrides(items) -> dict:
    """``{name: override}`` of the ``--hp`` options; a name given twice is an error."""
    overrides = {}
    for item in items:
        name, override = parse_hp(item)
        if name in overrides:
            raise UsageError(message("--hp", "given once per name", name, received=f"--hp {name} twice"))
        overrides[name] = override
    return overrides


def _load_data(args, entry):
    """The training split and the first validation split the dataset has."""
    from kerasnets import data, training

    load = dict(image_size=args.image_size, batch_size=args.batch_size, model=entry.name,
                data_dir=args.data_dir, download=args.download)
    train = data.load(args.dataset, args.train_split, training=True, seed=args.seed, **load)
    load["image_size"] = train.image_size
    _, val = training.first_split(
        args.dataset, [args.validation_split] if args.validation_split else ["validation", "test"],
        training=False, **load,
    )
    return train, val


def _print_report(report, objective_name):
    from kerasnets import tuning

    print()
    print(tuning.format_table(report["results"], objective_name))
    print("(* on the Pareto front: no other trial is better with at most as many MACs; "
          "params exclude BatchNorm statistics and auxiliary heads)")
    best = report["best"]
    if best is not None:
        print(f"Best: trial {best.trial_id}, {objective_name}={best.objective:.4f}, "
              f"builder arguments {json.dumps(best.builder_args)}")
    for key, path in report["paths"].items():
        print(f"  {key:8s} {path}")


def _setup(args):
    """``(entry, builder kwargs, hardware, hypermodel arguments)``, every argument checked."""
    from kerasnets import training
    from kerasnets.cli import model_kwargs
    from kerasnets.registry import get_entry

    overrides = _overrides(args.hp)
    entry = get_entry(args.model)
    builder_kwargs = model_kwargs(args, entry.name)
    hardware = training.setup_hardware(args.strategy, args.precision, "auto", set_policy=False)
    if args.batch_size % hardware.replicas:
        fail("--batch-size", f"a multiple of the {hardware.replicas} replicas", args.batch_size,
             received=f"batch_size={args.batch_size}")
    hypermodel_args = dict(
        per_block=not args.global_only, depth=args.search_depth,
        learning_rate=args.search_learning_rate, overrides=overrides,
        batch_size=args.batch_size, epochs=args.epochs, model_kwargs=builder_kwargs,
        jit_compile=hardware.jit_compile,
    )
    return entry, builder_kwargs, hardware, hypermodel_args


def _show_space(args, entry, hypermodel_args):
    from kerasnets import tuning

    size = args.image_size or entry.info.default_size
    hypermodel = tuning.WidthHyperModel(
        entry.name, input_shape=(size, size, 3), classes=entry.info.default_classes, **hypermodel_args
    )
    print(hypermodel.describe())
    return 0


def _prepare_search(args, entry, builder_kwargs, hardware, hypermodel_args, output):
    """Loads the data and builds the tuner; ``(tuner, search request, train batches, validation batches)``."""
    import keras

    from kerasnets import tuning

    train, val = _load_data(args, entry)
    steps = min(args.steps_per_epoch or train.steps_per_epoch, train.steps_per_epoch)
    channels_last = keras.config.image_data_format() == "channels_last"
    n = train.image_size
    hypermodel = tuning.WidthHyperModel(
        entry.name, input_shape=(n, n, 3) if channels_last else (3, n, n),
        classes=train.num_classes, steps_per_epoch=steps, **hypermodel_args,
    )
    request = {
        "model": entry.name, "dataset": str(args.dataset), "image_size": n,
        "tuner": args.tuner, "objective": args.objective, "batch_size": args.batch_size,
        "space": hypermodel.describe(), "options": {k: repr(v) for k, v in builder_kwargs.items()},
    }
    _check_request(os.path.join(output, "search.json"), request, args.overwrite)
    keras.mixed_precision.set_global_policy(hardware.precision)
    tuner = tuning.make_tuner(
        args.tuner, hypermodel, objective=args.objective, max_trials=args.max_trials,
        max_epochs=args.epochs, directory=output, project_name="tuner", overwrite=args.overwrite,
        distribution_strategy=hardware.strategy if hardware.strategy_name != "default" else None,
        seed=args.seed, on_failure="raise",
    )
    print(f"Searching {entry.name} on {args.dataset} ({n}x{n}, {train.num_classes} classes): "
          f"{args.tuner}, {args.max_trials} trials, {args.epochs} epoch(s) each, {hardware.describe()}")
    print(hypermodel.describe(), flush=True)
    train_ds = train.dataset.take(steps) if steps < train.steps_per_epoch else train.dataset
    val_ds = val.dataset.take(args.validation_steps) if args.validation_steps else val.dataset
    return tuner, request, train_ds, val_ds


def _search(args, tuner, train_ds, val_ds, output):
    """Runs the search, then writes and prints the report; the exit status."""
    from kerasnets import tuning

    objective_name = tuner.oracle.objective.name
    tuner.trial_callback = _progress(tuner, objective_name, args.max_trials, time.time())
    verbose = args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)
    failure = None
    try:
        tuner.search(train_ds, validation_data=val_ds, epochs=args.epochs, verbose=verbose)
    except tuning.TrialsFailedError as error:
        failure = error
    _print_report(tuning.write_report(tuner, output), objective_name)
    if failure is not None:
        print(f"kerasnets tune: {failure}", file=sys.stderr)
        return 1
    return 0


def run_tune(args):
    with usage_errors():
        entry, builder_kwargs, hardware, hypermodel_args = _setup(args)
        if args.show_space:
            return _show_space(args, entry, hypermodel_args)
        output = os.path.abspath(args.output or os.path.join("runs", f"tune-{entry.name}-{_slug(args.dataset)}"))
        tuner, request, train_ds, val_ds = _prepare_search(args, entry, builder_kwargs, hardware,
                                                           hypermodel_args, output)
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, "search.json"), "w", encoding="utf-8") as f:
        json.dump(request, f, indent=2)
    return _search(args, tuner, train_ds, val_ds, output)
