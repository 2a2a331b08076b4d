"""``kerasnets evaluate``: loss, top-1 and top-5 accuracy of a checkpoint.

    kerasnets evaluate runs/resnet20-shapes        # the run's final model on its test split
    kerasnets evaluate runs/resnet20-shapes/checkpoints/best.keras --split validation
    kerasnets evaluate model.keras --dataset cifar10 --json
"""

from __future__ import annotations

import json
import os

from kerasnets.cli import VERIFY_CHOICES, check_keras_file, usage_errors


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
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--image-size", type=int, help="default: the checkpoint's input size")
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
            with open(candidate, encoding="utf-8") as f:
                return json.load(f)
        folder = os.path.dirname(folder)
    return None


def run_evaluate(args):
    from kerasnets import data, training

    with usage_errors():
        path = args.checkpoint
        if not os.path.exists(path):
            raise ValueError(f"No such checkpoint or run folder. Received: checkpoint={path!r}")
        run = _find_run_json(path)
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
            raise ValueError(
                f"checkpoint must be a .keras file or a run folder. Received: checkpoint={path!r}"
            )
        check_keras_file(model_file, f"checkpoint={path!r}")
        dataset = args.dataset or (run or {}).get("dataset")
        if not dataset:
            raise ValueError(
                "--dataset is needed: the checkpoint is not inside a run folder with a run.json. "
                f"Received: checkpoint={path!r}"
            )
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be positive. Received: batch_size={args.batch_size}")
        if args.split:
            splits = [args.split]
        elif run and dataset == run.get("dataset") and (run.get("splits") or {}).get("test"):
            splits = [run["splits"]["test"]]
        else:  # as train: test, else validation (a folder without split folders has no test)
            splits = ["test", "validation"]
        import keras

        import kerasnets.models  # noqa: F401  (registers the custom objects)
        from kerasnets.registry import get_entry

        try:
            model = keras.models.load_model(model_file, compile=False)
        except Exception as error:  # noqa: BLE001
            raise ValueError(f"Cannot load {model_file}: {error} Received: checkpoint={path!r}") from None
        size = args.image_size or model.inputs[0].shape[1] or (run or {}).get("image_size")
        preprocessing = ((run or {}).get("preprocessing") or {}).get("name")
        model_name = (run or {}).get("model")
        if model_name is None:
            try:
                get_entry(model.name)
                model_name = model.name
            except ValueError:
                model_name = None
        load = dict(image_size=size, batch_size=args.batch_size, training=False, model=model_name,
                    preprocessing=preprocessing, data_dir=args.data_dir, download=args.download,
                    verify=None if args.verify == "none" else args.verify)
        if len(splits) == 1:
            split, split_data = splits[0], data.load(dataset, splits[0], **load)
        else:
            split, split_data = training.first_split(dataset, splits, **load)
        classes = model.outputs[0].shape[-1] if not isinstance(model.output, dict) else None
        if classes is not None and split_data.num_classes != classes:
            raise ValueError(
                f"The model has {classes} classes and {dataset} has {split_data.num_classes}. "
                f"Received: dataset={dataset!r}"
            )
    results = training.evaluate_model(model, split_data)
    if args.json:
        print(json.dumps({"checkpoint": path, "dataset": dataset, "split": split, **results}, indent=2))
    else:
        print(f"{model_file} on {dataset} ({split}, {results['examples']} images):")
        print(f"  loss            {results['loss']:.4f}")
        print(f"  top-1 accuracy  {results['accuracy']:.4f}")
        if "top5_accuracy" in results:
            print(f"  top-5 accuracy  {results['top5_accuracy']:.4f}")
    return 0
