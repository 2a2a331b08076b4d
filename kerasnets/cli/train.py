"""``kerasnets train``: a zoo model, its paper's recipe, whatever hardware is there.

    kerasnets train resnet20                       # shapes, 10 epochs at batch 32, a few CPU minutes
    kerasnets train resnet50 --dataset imagenette/320px --download --epochs 30
    kerasnets train googlenet --dataset ./flowers --image-size 224 --batch-size 64

The work is `kerasnets.training.prepare` / `TrainingRun.run`; this module parses
the options into the `kerasnets.training.TrainingConfig` the Python API builds from
the same options (`training_config`), and turns invalid input into usage errors
(exit code 2).
"""

from __future__ import annotations

import argparse
import types
import typing

from kerasnets.cli import _processes
from kerasnets.cli import (
    KEY_VALUE_HELP,
    VERIFY_CHOICES,
    CommandFailed,
    UsageError,
    add_model_arguments,
    key_value,
    key_values,
    model_kwargs,
    positive_float,
    positive_int,
    typed_value,
    usage_errors,
)
from kerasnets.files import RunLockedError
from kerasnets.training import TrainingConfig, TrainingDiverged, list_recipes, prepare, resolve_recipe
from kerasnets.training.recipes import Recipe
from kerasnets.training.strategy import PRECISIONS, STRATEGIES, XLA_CHOICES, setup_hardware, split_cpu

_TRAIN_EPILOG = """\
Hardware: --strategy auto uses a TPU if there is one, MirroredStrategy over all GPUs
when there is at least one, the default (one device) strategy otherwise. --batch-size
is the global batch, split between replicas; the recipe's learning rate scales
linearly with it. --precision auto: mixed_float16 on GPUs with tensor cores,
mixed_bfloat16 on TPUs and on CPUs with native bfloat16 (AVX-512 BF16/AMX), float32
otherwise. --xla auto: off on CPU (slower there) and under MirroredStrategy.

The run folder (--output, default runs/<model>-<dataset>) holds run.json, log.csv,
curves.png, tensorboard/, checkpoints/best.keras, model.keras, evaluation.json,
saved_model/ and backup/. Running the same command again after an interruption
(even kill -9) resumes from the last completed epoch.

examples:
  kerasnets train resnet20
  kerasnets train resnet56 --epochs 30 --batch-size 256
  kerasnets train vgg11_bn --dataset cifar10 --download --image-size 32 --set weight_decay=1e-4
  kerasnets train googlenet --width-multiplier 0.5 --image-size 96 -O aux_loss_weight=0.3
  kerasnets train resnet50 --weights imagenet --dataset ./flowers --epochs 5
"""


def register(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train a model with its paper's recipe (resumable)",
        description="Train a model from the zoo on a dataset with its paper's recipe, on "
                    "whatever hardware is there, and write logs, curves, checkpoints, the "
                    "final model and an export.",
        epilog=_TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p, classes=False)  # MODEL, --input-size, --width-multiplier, -O KEY=VALUE
    p.add_argument("--image-size", dest="input_size", type=positive_int, metavar="N",
                   help="the same as --input-size (default: the model's default input size)")
    p.add_argument("--dataset", default="shapes",
                   help="'shapes' (built in, default), a tensorflow-datasets name or a folder of images")
    p.add_argument("--weights", metavar="PRESET",
                   help="fine-tune from ImageNet weights: 'imagenet' (the model's default preset) or a "
                        "preset name (see `kerasnets list --weights`); a new head for the dataset's classes, "
                        "the data fed with the preset's preprocessing (default: random initialisation)")
    p.add_argument("--epochs", type=positive_int, help="default: the paper's; 10 on shapes")
    p.add_argument("--batch-size", type=positive_int,
                   help="global batch size, split between replicas (default: the recipe's; 32 on shapes)")
    p.add_argument("--recipe", help=f"one of {', '.join(list_recipes())} (default: the model family's)")
    p.add_argument("--lr", "--learning-rate", dest="learning_rate", type=positive_float,
                   help="the initial learning rate, as is (default: the recipe's, scaled to the batch)")
    p.add_argument("--set", dest="overrides", action="append", type=key_value, default=[],
                   metavar="FIELD=VALUE",
                   help="override a recipe field, e.g. --set weight_decay=0 --set label_smoothing=0.1 "
                        "(see --show-recipe); " + KEY_VALUE_HELP)
    p.add_argument("--output", help="run folder (default: runs/<model>-<dataset>)")
    p.add_argument("--strategy", choices=STRATEGIES, default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    p.add_argument("--xla", choices=XLA_CHOICES, default="auto")
    p.add_argument("--cpu-devices", type=positive_int, metavar="N",
                   help="split the CPU into N logical devices (try --strategy mirrored without GPUs)")
    _processes.add_arguments(p)  # --num-processes, --process-id, --coordinator
    p.add_argument("--data-dir", help="tensorflow-datasets data folder")
    p.add_argument("--download", action="store_true", help="let tensorflow-datasets download the dataset")
    p.add_argument("--augment", default="auto",
                   help="auto, inception, scale, pad_crop or none (see kerasnets.data.load)")
    p.add_argument("--verify", choices=VERIFY_CHOICES, default="full",
                   help="for a folder of images: decode every image once before training (full, "
                        "the default; verified files are remembered), check only each file's first "
                        "bytes (header) or nothing (none)")
    p.add_argument("--train-split", default="train", help="e.g. 'train[:20%%]'")
    p.add_argument("--val-split", dest="validation_split",
                   help="default: validation, else test")
    p.add_argument("--test-split", help="default: test, else validation")
    p.add_argument("--seed", type=int, help="reproducible initialisation and data order")
    p.add_argument("--overwrite", action="store_true", help="delete a previous run in --output and start over")
    p.add_argument("--no-export", dest="export", action="store_false", help="skip the SavedModel export")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2),
                   help="1: progress bar, 2: one line per epoch (default: 1 on a terminal, else 2)")
    p.add_argument("--show-recipe", action="store_true", help="print the resolved recipe and exit")
    p.set_defaults(func=run_train)



def check_overrides(overrides):
    """Each ``--set`` value against the type of its `Recipe` field (``nesterov=maybe`` is refused)."""
    hints = typing.get_type_hints(Recipe)
    for name, value in overrides.items():
        hint = hints.get(name)  # an unknown field: Recipe.replace names the close ones
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            if value is None:
                continue
            kinds = [k for k in typing.get_args(hint) if k is not type(None)]
            hint = kinds[0] if len(kinds) == 1 else None
        overrides[name] = typed_value(name, value, hint if isinstance(hint, type) else None, "--set")


def training_config(args) -> TrainingConfig:
    """The `TrainingConfig` of the parsed options: what `kerasnets.training.train` gets from
    the same options as keyword arguments. Raises ValueError on bad input (call it inside
    ``with usage_errors():``)."""
    overrides = key_values(args.overrides, "--set")
    check_overrides(overrides)
    builder_kwargs = model_kwargs(args)  # validates MODEL and the builder options
    builder_kwargs.pop("input_shape", None)  # --input-size is the image size
    return TrainingConfig(
        model=args.model, dataset=args.dataset,
        weights=None if args.weights in (None, "none") else args.weights,
        epochs=args.epochs, batch_size=args.batch_size, image_size=args.input_size,
        recipe=args.recipe, overrides=overrides, learning_rate=args.learning_rate,
        model_kwargs=builder_kwargs, output=args.output, strategy=args.strategy,
        precision=args.precision, xla=args.xla, data_dir=args.data_dir, download=args.download,
        seed=args.seed, augment=None if str(args.augment).lower() == "none" else args.augment,
        train_split=args.train_split, validation_split=args.validation_split,
        test_split=args.test_split, verify=None if args.verify == "none" else args.verify,
        overwrite=args.overwrite, export=args.export,
        verbose="auto" if args.verbose is None else args.verbose,
    )


def run_train(args):
    from kerasnets.data import DataError  # imports tensorflow-datasets: not for every command's parser

    with usage_errors():
        config = training_config(args)
        # several JAX processes: joined before any JAX work (this splits the CPU too)
        if not _processes.initialize(args) and args.cpu_devices is not None:
            split_cpu(args.cpu_devices)
        if args.show_recipe:
            resolved, _, _ = resolve_recipe(
                config.model, config.dataset, recipe=config.recipe, overrides=config.overrides,
                epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
            )
            print(resolved.describe())
            hw = setup_hardware(config.strategy, config.precision, config.xla, set_policy=False)
            print(f"hardware: {hw.describe()}")
            return 0
        run = _prepare(config)
    try:
        run.run()
    except RunLockedError as error:
        raise UsageError(str(error)) from None
    except DataError as error:  # an image the pipeline stopped on, named
        raise UsageError(str(error)) from None
    except TrainingDiverged as error:
        raise CommandFailed(f"{error} The run is marked failed in {run.path('run')}.") from None
    return 0


def _prepare(config):
    """`kerasnets.training.prepare` of the config; an OSError (a weight file that cannot be
    downloaded, a file that cannot be read) is its message alone."""
    try:
        return prepare(config)
    except OSError as error:
        raise CommandFailed(str(error).strip() or type(error).__name__) from None
