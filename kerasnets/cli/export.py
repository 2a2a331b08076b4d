"""``kerasnets export CHECKPOINT --output PATH``: a SavedModel (or .keras, TFLite, ONNX) for serving.

The checkpoint is a ``.keras`` file (or a run directory holding ``model.keras``).
What the model is (registered name, builder arguments, weights, preprocessing) is
read from its model card (`kerasnets.model_card`), which every model a kerasnets
builder made carries; image size and class names from the ``run.json`` that
training writes next to the checkpoint (in its folder or the folder above).
``--model-name``, ``--image-size`` and ``--class-names`` override them or stand in
for them; a model without a card takes its name and preprocessing from ``run.json``.

Examples::

    kerasnets export runs/resnet20/model.keras --output exports/resnet20/1
    kerasnets export runs/resnet20 --output resnet20.tflite --format tflite
    kerasnets export runs/resnet20 --output resnet20.onnx --format onnx --static-size 480x640
    kerasnets export model.keras --output out --model-name resnet18 --class-names labels.txt
"""

from __future__ import annotations

import json
import os
import sys

import kerasnets.models  # noqa: F401  (registers the custom layers for load_model)
from kerasnets import export
from kerasnets._validate import check_path, fail
from kerasnets.card import model_card
from kerasnets.cli import UsageError, check_keras_file, positive_int, usage_errors
from kerasnets.export import FILE_SUFFIXES, check_destination, require_onnx
from kerasnets.files import lock_holder, read_json_object

RUN_FILE = "run.json"
CHECKPOINT_FILE = "model.keras"


def register(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a trained model for serving (SavedModel, .keras, TFLite, ONNX)",
        description=(
            "Export a .keras checkpoint for serving. The SavedModel takes uint8 images of "
            "any size (signature serving_default) or encoded JPEG/PNG bytes (serving_bytes), "
            "applies the model's preprocessing and returns probabilities and the top-k "
            "classes; the ONNX model takes and returns what serving_default does. Model "
            "name, image size and class names come from the run.json next to the checkpoint "
            "unless given here."
        ),
    )
    add = parser.add_argument
    add("checkpoint", metavar="CHECKPOINT", help="a .keras file, or a run directory holding model.keras")
    add("--output", "-o", required=True, metavar="PATH",
        help="the SavedModel directory (or .keras / .tflite / .onnx file) to write")
    add("--format", default="saved_model", choices=("saved_model", "keras", "tflite", "onnx"),
        help="what to write (default: saved_model)")
    add("--model-name", metavar="NAME",
        help="the registered model name (default: the model's model card, else run.json)")
    add("--image-size", type=positive_int, metavar="N",
        help="the model's input size (default: from the model or run.json)")
    add("--class-names", metavar="FILE",
        help="class names: a text file with one name per line, or a JSON list")
    add("--top-k", type=positive_int, default=5, metavar="K", help="classes in the top-k outputs (default: 5)")
    add("--fold-batch-norm", action="store_true",
        help="fold BatchNormalization into the convolutions (SavedModel; faster on CPU; "
        "ONNX always folds)")
    add("--compute-dtype", default="float32",
        choices=("float32", "mixed_bfloat16", "mixed_float16", "model"),
        help="what the SavedModel computes in (default: float32, whatever the training "
        "precision; 'model' keeps the checkpoint's policy)")
    add("--static-size", nargs="?", const="model", metavar="HxW",
        help="ONNX: a graph for images of one size only (HxW, N for NxN, or the model's input "
        "size without a value), every shape static but the batch; default: any size")
    add("--opset", type=positive_int, default=None, metavar="N",
        help="ONNX: the opset (13 to 18; default: 17)")
    add("--overwrite", action="store_true", help="replace an existing export at --output")
    parser.set_defaults(func=run)
    return parser


def find_checkpoint(path):
    """The .keras file of ``path`` (a file, or a run directory holding model.keras)."""
    if os.path.isdir(path):
        candidate = os.path.join(path, CHECKPOINT_FILE)
        if not os.path.isfile(candidate):
            raise ValueError(f"No {CHECKPOINT_FILE} in the directory {path}. Received: CHECKPOINT={path!r}")
        return candidate
    if not os.path.isfile(path):
        raise ValueError(f"The checkpoint does not exist. Received: CHECKPOINT={path!r}")
    if not path.endswith(".keras"):
        fail("CHECKPOINT", "a .keras file or a run folder holding model.keras", path)
    return path


def read_run_info(checkpoint) -> dict:
    """The ``run.json`` next to ``checkpoint`` (its folder, else the folder above), or ``{}``."""
    folder = os.path.dirname(os.path.abspath(checkpoint))
    for candidate in (folder, os.path.dirname(folder)):
        file = os.path.join(candidate, RUN_FILE)
        if os.path.isfile(file):
            info = read_json_object(file, received=f"CHECKPOINT={checkpoint!r}",
                                    remedy="give --model-name, --image-size and --class-names instead, "
                                           "or export a copy of the checkpoint from another folder")
            return dict(info, _path=file)
    return {}


def _check_run_folder(checkpoint, run_info):
    """A run's final model is not exported while a `kerasnets train` extends the run (it is
    the model of the previous training until the new one is saved); a warning when the run
    did not complete since."""
    if not run_info or os.path.basename(checkpoint) != CHECKPOINT_FILE:
        return
    folder = os.path.dirname(run_info["_path"])
    holder = lock_holder(folder)
    if holder is not None:
        fail("CHECKPOINT", f"a run that no kerasnets process is training (pid {holder if holder > 0 else '?'} "
             f"holds {folder}: its {CHECKPOINT_FILE} is the model of the previous training until the new "
             "one is saved; export when it finishes)", checkpoint)
    status = run_info.get("status")
    if status in ("running", "failed"):
        print(f"Warning: {run_info['_path']} says the run is {status!r}, not complete: {checkpoint} is the "
              "model of its last completed training, not of the epochs run since.", file=sys.stderr)


def read_class_names(file):
    """Class names from a text file (one per line) or a JSON list of strings."""
    if not os.path.isfile(file):
        raise ValueError(f"The class names file does not exist. Received: --class-names={file!r}")
    with open(file, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{file} is not valid JSON ({error}). Received: --class-names={file!r}") from None
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{file} holds no list of class names. Received: --class-names={file!r}")
    return names


def _first(info, *keys):
    for key in keys:
        if info.get(key) is not None:
            return info[key]
    return None


def _image_size(value):
    if isinstance(value, (list, tuple)) and value:
        return value[0] if len(set(value)) == 1 else tuple(value)
    return value


def _check_arguments(args):
    """``(checkpoint, run info, class names)``; every argument checked before any work."""
    with usage_errors():
        # The options that contradict --format first, then the paths, then the checkpoint.
        if args.fold_batch_norm and args.format not in ("saved_model", "onnx"):
            fail("--format", "saved_model or onnx for --fold-batch-norm (TFLite folds BatchNormalization "
                 "itself)", args.format, received=f"--format={args.format}")
        if args.compute_dtype != "float32" and args.format != "saved_model":
            fail("--format", "saved_model for --compute-dtype (.keras keeps the model's policy, TFLite "
                 "and ONNX compute in float32)", args.format, received=f"--format={args.format}")
        if args.format != "onnx" and (args.static_size is not None or args.opset is not None):
            option = "--static-size" if args.static_size is not None else "--opset"
            fail("--format", f"onnx for {option}", args.format, received=f"--format={args.format}")
        _check_output_path(args.output, args.format)
        checkpoint = find_checkpoint(args.checkpoint)
        check_keras_file(checkpoint, f"CHECKPOINT={args.checkpoint!r}")
        run_info = read_run_info(checkpoint)
        _check_run_folder(checkpoint, run_info)
        class_names = read_class_names(args.class_names) if args.class_names else _first(run_info, "class_names")
        if args.format == "onnx":
            args.static_size = _static_size(args.static_size)
            _check_onnx_output(args.output)
        check_destination(args.output, overwrite=args.overwrite, source=checkpoint,
                          kind="dir" if args.format == "saved_model" else "file")
    return checkpoint, run_info, class_names


def _check_output_path(output, format):
    """A file format's suffix (checked before the model is loaded); a folder for a SavedModel."""
    suffix = FILE_SUFFIXES.get(format)
    if suffix is not None and not output.endswith(suffix):
        fail("--output", f"a file path ending in {suffix} for --format {format}", output)
    taken = [(f, s) for f, s in FILE_SUFFIXES.items() if output.endswith(s)]
    if suffix is None and (taken or output.endswith(".h5")):
        hint = f" (for a {taken[0][1]} file, pass --format {taken[0][0]})" if taken else ""
        fail("--output", f"a folder path for --format {format}{hint}", output)


def _static_size(value):
    """``--static-size``: None, True (the model's size) or ``(height, width)``."""
    if value is None:
        return None
    if value == "model":
        return True
    height, _, width = value.lower().partition("x")
    if not height.isdigit() or not (width or height).isdigit() or int(height) < 1 or int(width or height) < 1:
        fail("--static-size", "HxW or N (positive integers), or no value for the model's input size",
             value, received=f"--static-size={value}")
    return int(height), int(width or height)


def _check_onnx_output(output):
    """The suffix and the optional packages, before the model is loaded."""
    check_path("--output", output, suffix=".onnx", expected="a file path ending in .onnx for --format onnx")
    try:
        require_onnx()
    except ImportError as error:
        raise UsageError(str(error)) from None


def _load_model(checkpoint):
    print(f"Loading {checkpoint} ...", file=sys.stderr)
    import keras

    try:
        return keras.models.load_model(checkpoint, compile=False)
    except (ValueError, OSError, TypeError) as error:
        raise UsageError(f"Cannot load {checkpoint}: {error}") from None


def _write_saved_model(args, model, common, class_names, run_info, checkpoint):
    print(f"Writing SavedModel to {args.output} ...", file=sys.stderr)
    record = export.saved_model(
        model, args.output, **common, class_names=class_names, top_k=args.top_k,
        builder_kwargs=None if model_card(model) is not None else _first(run_info, "builder_kwargs", "model_kwargs"),
        fold_batch_norm=args.fold_batch_norm, overwrite=args.overwrite,
        compute_dtype=None if args.compute_dtype == "model" else args.compute_dtype,
        source=os.path.abspath(checkpoint),
    )
    outputs = ", ".join(record["signatures"]["serving_default"]["outputs"])
    size = record["input_size"]
    weights = record["weights"] or {}
    print(
        f"Wrote {os.path.abspath(args.output)}\n"
        f"  model: {record['model_name']}, input {size[0]}x{size[1]}, "
        + (f"weights {weights['preset'] or weights['file']}, " if weights else "") +
        f"preprocessing {record['preprocessing']['name']}, computes in "
        f"{'/'.join(record['compute_dtype'])}\n"
        "  signatures: serving_default (images: uint8 [batch, height, width, 3]), "
        "serving_bytes (image_bytes: string [batch])\n"
        f"  outputs: {outputs}\n"
        f"  metadata: {os.path.join(os.path.abspath(args.output), export.METADATA_FILE)}"
    )


def _write_keras(args, model, common, class_names, run_info, checkpoint):
    print(f"Writing {args.output} ...", file=sys.stderr)
    path = export.keras_file(model, args.output, overwrite=args.overwrite)
    print(f"Wrote {path} (loads with keras.models.load_model after `import kerasnets`)")


def _write_tflite(args, model, common, class_names, run_info, checkpoint):
    print("Converting to TFLite and checking it against the Keras model ...", file=sys.stderr)
    report = export.tflite(model, args.output, overwrite=args.overwrite, **common)
    size = report["input_size"]
    print(
        f"Wrote {report['path']}: input uint8 [batch, {size[0]}, {size[1]}, 3], "
        f"max |TFLite - Keras| = {report['max_abs_diff']:.2g}"
    )


def _write_onnx(args, model, common, class_names, run_info, checkpoint):
    print("Converting to ONNX and checking it against the SavedModel signature ...", file=sys.stderr)
    kwargs = dict(static_size=args.static_size)
    if args.opset is not None:
        kwargs["opset"] = args.opset
    record = export.onnx(
        model, args.output, **common, class_names=class_names, top_k=args.top_k,
        builder_kwargs=_first(run_info, "builder_kwargs", "model_kwargs"), overwrite=args.overwrite,
        source=os.path.abspath(checkpoint), **kwargs,
    )
    graph = record["signatures"]["onnx"]
    print(
        f"Wrote {os.path.abspath(args.output)} (ONNX opset {record['opset']})\n"
        f"  model: {record['model_name']}, input {record['input_size'][0]}x{record['input_size'][1]}, "
        f"preprocessing {record['preprocessing']['name']}, BatchNorm folded, float32\n"
        f"  input: images: {graph['inputs']['images']}\n"
        f"  outputs: {', '.join(graph['outputs'])}\n"
        f"  max |ONNX Runtime - SavedModel| / max |SavedModel| = {record['check']['max_rel_diff']:.2g}\n"
        f"  metadata: the JSON of metadata_props['{export.METADATA_KEY}']"
    )


_WRITERS = {"saved_model": _write_saved_model, "keras": _write_keras, "tflite": _write_tflite, "onnx": _write_onnx}


def run(args):
    checkpoint, run_info, class_names = _check_arguments(args)
    model = _load_model(checkpoint)
    # The model card says what the model is and what it was fed; run.json stands in for
    # a model without one (saved before kerasnets recorded it).
    fallback = {} if model_card(model) is not None else run_info
    common = dict(
        model_name=args.model_name or _first(fallback, "model_name", "model", "name"),
        image_size=args.image_size or _image_size(_first(run_info, "image_size")),
        preprocessing=_first(fallback, "preprocessing"),
    )
    with usage_errors():  # the arguments against the model, before any work
        spec_args = dict(common, top_k=args.top_k)
        if args.format in ("saved_model", "onnx"):
            spec_args["class_names"] = class_names
        export.resolve_spec(export.exportable_model(model), **spec_args)
    _WRITERS[args.format](args, model, common, class_names, run_info, checkpoint)
    return 0
