"""``kerasnets evaluate``: loss, top-1 and top-5 accuracy of a checkpoint.

    kerasnets evaluate runs/resnet20-shapes        # the run's final model on its test split
    kerasnets evaluate runs/resnet20-shapes/checkpoints/best.keras --split validation
    kerasnets evaluate model.keras --dataset cifar10 --json
"""

from __future__ import annotations

import json
import os

import kerasnets.models  # noqa: F401  (registers the custom objects load_model reads)
from kerasnets import training
from kerasnets._validate import fail
from kerasnets.card import model_card
from kerasnets.cli import VERIFY_CHOICES, check_keras_file, positive_int, usage_errors
from kerasnets.files import read_json_object, strict_json

# kerasnets.data (tensorflow-datasets) is imported inside the functions that use it: not at
# `kerasnets --help`.


def register(subparsers):
    e = subparsers.add_parser(
        "evaluate",
        help="loss, top-1 and top-5 accuracy of a checkpoint",
        description="Evaluate a .keras checkpoint (or a run folder's final model) on a dataset split.",
    )
    e.add_argument("checkpoint", help="a .keras file, or a run folder (uses its model.keras)")
    e.add_argument("--dataset", help="default: the run's dataset (from run.json)")
    e.add_argument("--split", help="default: the run's test split, else 'test', else 'validation' "
                                   "(as train chooses)")
    e.add_argument("--batch-size", type=positive_int, default=64)
    e.add_argument("--image-size", type=positive_int, help="default: the checkpoint's input size")
    e.add_argument("--data-dir", help="tensorflow-datasets data folder")
    e.add_argument("--download", action="store_true")
    e.add_argument("--verify", choices=VERIFY_CHOICES, default="full",
                   help="for a folder of images: decode every image first (full, the default), "
                        "check only each file's first bytes (header) or nothing (none)")
    e.add_argument("--json", action="store_true", help="print the results as JSON")
    e.set_defaults(func=run_evaluate)


def _find_run_json(path):
    """The run.json of the run folder holding ``path`` (a run folder or a file inside it)."""
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    for _ in range(3):
        candidate = os.path.join(folder, "run.json")
        if os.path.exists(candidate):
            return read_json_object(candidate, received=f"checkpoint={path!r}",
                                    remedy="give --dataset (and --split) instead, or evaluate a copy of "
                                           "the checkpoint from another folder")
        folder = os.path.dirname(folder)
    return None


def _model_file(path):
    """The ``.keras`` file that ``path`` (a checkpoint or a run folder) names."""
    if not os.path.exists(path):
        raise ValueError(f"No such checkpoint or run folder. Received: checkpoint={path!r}")
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            raise ValueError(
                "This is a SavedModel, which keras.models.load_model cannot read: evaluate "
                f"the run's model.keras or a checkpoint. Received: checkpoint={path!r}"
            )
        model_file = os.path.join(path, "model.keras")
        if not os.path.exists(model_file):
            raise ValueError(
                f"The folder holds no model.keras (is the run finished?). Received: checkpoint={path!r}"
            )
    elif path.endswith(".keras"):
        model_file = path
    else:
        fail("checkpoint", "a .keras file or a run folder", path)
    check_keras_file(model_file, f"checkpoint={path!r}")
    return model_file


def _splits(args, run, dataset):
    """The splits to try, in order: --split, else the run's test split, else test or validation."""
    if args.split:
        return [args.split]
    if run and dataset == run.get("dataset") and (run.get("splits") or {}).get("test"):
        return [run["splits"]["test"]]
    return ["test", "validation"]  # as train (a folder without split folders has no test)


def _load_model(model_file, path):
    import keras

    try:
        return keras.models.load_model(model_file, compile=False)
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"Cannot load {model_file}: {error} Received: checkpoint={path!r}") from None


def _model_and_preprocessing(run, model):
    """What `kerasnets.data.load` normalises the images by: the model itself when it carries a
    model card (the preprocessing it was fed), else the run.json's model and preprocessing,
    else `kerasnets.data.load`'s default."""
    if model_card(model) is not None:
        return dict(model=model, preprocessing=None)
    run = run or {}
    return dict(model=run.get("model"), preprocessing=(run.get("preprocessing") or {}).get("name"))


def _load_split(args, run, dataset, model):
    """``(split name, DataSplit)``, checked to have the model's number of classes."""
    from kerasnets import data

    splits = _splits(args, run, dataset)
    fixed = model.inputs[0].shape[1]
    if args.image_size and fixed and args.image_size != fixed:
        fail("--image-size", f"{fixed}, the input size of {getattr(model, 'name', 'the model')} (or left out: "
             "a model of a fixed input size is evaluated at it)", args.image_size,
             received=f"--image-size {args.image_size}")
    size = args.image_size or fixed or (run or {}).get("image_size")
    load = dict(image_size=size, batch_size=args.batch_size, training=False,
                **_model_and_preprocessing(run, model), data_dir=args.data_dir, download=args.download,
                verify=None if args.verify == "none" else args.verify)
    if len(splits) == 1:
        split, split_data = splits[0], data.load(dataset, splits[0], **load)
    else:
        split, split_data = training.first_split(dataset, splits, **load)
    classes = model.outputs[0].shape[-1] if not isinstance(model.output, dict) else None
    if classes is not None and split_data.num_classes != classes:
        fail("dataset", f"a dataset of the model's {classes} classes ({dataset} has "
             f"{split_data.num_classes})", dataset)
    return split, split_data


def _print_results(args, results, model_file, dataset, split):
    if args.json:
        record = {"checkpoint": args.checkpoint, "dataset": dataset, "split": split, **results}
        print(json.dumps(strict_json(record), indent=2, allow_nan=False))
        return
    print(f"{model_file} on {dataset} ({split}, {results['examples']} images):")
    print(f"  loss            {results['loss']:.4f}")
    print(f"  top-1 accuracy  {results['accuracy']:.4f}")
    if "top5_accuracy" in results:
        print(f"  top-5 accuracy  {results['top5_accuracy']:.4f}")


def run_evaluate(args):
    with usage_errors():
        path = args.checkpoint
        model_file = _model_file(path)
        run = _find_run_json(path)
        dataset = args.dataset or (run or {}).get("dataset")
        if not dataset:
            fail("--dataset", "given: the checkpoint is not inside a run folder with a run.json", dataset,
                 received=f"checkpoint={path!r}")
        model = _load_model(model_file, path)
        split, split_data = _load_split(args, run, dataset, model)
    import tensorflow as tf

    from kerasnets.data import check_decodable

    try:
        results = training.evaluate_model(model, split_data)
    except tf.errors.OpError:
        with usage_errors():
            check_decodable(split_data)  # names an image the pipeline stopped on
        raise
    _print_results(args, results, model_file, dataset, split)
    return 0
