"""The ``kerasnets`` command line (also ``python -m kerasnets``).

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to the
function that runs it. Adding a command is one module plus one line in
``COMMANDS``.

A `UsageError` is printed as ``kerasnets <command>: error: ...`` with exit
code 2 and no traceback; a `CommandFailed` (the command could not do its work
for a reason it names: no network for the weights, a run that diverged) the
same way with exit code 1; argparse's own errors are one line too, with a hint
to ``--help`` instead of the whole usage. TensorFlow's start-up messages (the
CUDA ``cuInit`` error on a machine without a GPU, the CPU-instructions notice)
are kept out of the output (`kerasnets._startup`); later warnings are not. Commands wrap the
validation of user input (``get_model`` with an unknown name, a bad size) in
``with usage_errors():`` so that its ValueErrors become usage errors, while a
ValueError from deep inside a run still shows its traceback.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import sys

from kerasnets._startup import quiet_tensorflow_startup
from kerasnets._validate import check_int, check_number, fail, is_int, is_number
from kerasnets._version import __version__
from kerasnets.files import describe_keras_file
from kerasnets.layers import image_shape
from kerasnets.registry import get_entry

__all__ = [
    "main", "UsageError", "CommandFailed", "usage_errors", "COMMANDS", "check_keras_file",
    "add_model_arguments", "model_kwargs", "positive_int", "positive_float",
    "key_value", "key_values", "typed_value", "KEY_VALUE_HELP", "quiet_tensorflow_startup",
    "VERIFY_CHOICES",
]

# The rule of every KEY=VALUE flag (`key_value`), as --help states it.
KEY_VALUE_HELP = ("VALUE is a Python literal (0.5, (8, 16), 'text'), else true, false or none "
                  "in any case, else the word as written")

# --verify: what the folder check of kerasnets.data.load does before any work.
VERIFY_CHOICES = ("full", "header", "none")

# Module names under kerasnets.cli, in the order `--help` lists them.
COMMANDS = ["list", "summary", "train", "evaluate", "export", "tune"]


class UsageError(Exception):
    """A user error: printed without traceback, exit code 2."""


class CommandFailed(Exception):
    """The command could not do its work, for a reason its message names (no network, a
    diverged run): printed without traceback, exit code 1."""


@contextlib.contextmanager
def usage_errors():
    """Turns ValueErrors raised while validating user input into `UsageError`."""
    try:
        yield
    except ValueError as error:
        raise UsageError(str(error)) from None


def check_keras_file(path, received):
    """Raises ValueError naming what is wrong with a ``.keras`` file that cannot load
    (empty, truncated, not a zip archive), instead of Keras's "File not found"."""
    problem = describe_keras_file(path)
    if problem:
        raise ValueError(f"{path} {problem}. Received: {received}")


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its errors on one line and a hint to ``--help``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}. See '{self.prog} --help'.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="kerasnets",
        description="The classic ImageNet CNNs for Keras 3: list, inspect, train, export, tune.",
    )
    parser.add_argument("--version", action="version", version=f"kerasnets {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        importlib.import_module(f"kerasnets.cli.{module}").register(subparsers)
    return parser


def main(argv=None) -> int:
    quiet_tensorflow_startup()  # done already when `import kerasnets` started the CLI
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except (UsageError, CommandFailed) as error:
        prog = f"kerasnets {args.command}"
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    return int(result or 0)


# ---------------------------------------------------------------------------
# The arguments every command that builds a model shares (summary, train,
# evaluate, bench, ...): MODEL, --input-size, --width-multiplier, --classes and
# --option KEY=VALUE for any other builder argument.
# ---------------------------------------------------------------------------


def _parsed(text, convert, check, expected):
    """``convert(text)`` checked by ``check`` (of `kerasnets._validate`); argparse names the
    option in front of the message."""
    try:
        return check("value", convert(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {expected}. Received: {text!r}") from None


def positive_int(text):
    """argparse type: an integer > 0."""
    return _parsed(text, int, check_int, "a positive integer")


def positive_float(text):
    """argparse type: a finite number > 0."""
    return _parsed(text, float, check_number, "a positive number")


def add_model_arguments(parser, *, model=True, classes=True):
    """Adds ``MODEL`` and the builder options to a subcommand's parser.

    Read them back with `model_kwargs(args)`. ``model=False`` leaves out the
    positional ``MODEL`` (for a command that reads the name elsewhere);
    ``classes=False`` leaves out ``--classes``.
    """
    if model:
        parser.add_argument("model", metavar="MODEL", help="a registered model name (see `kerasnets list`)")
    group = parser.add_argument_group("model options")
    group.add_argument("--input-size", type=positive_int, metavar="N",
                       help="square input size in pixels (default: the model's, e.g. 224)")
    group.add_argument("--width-multiplier", type=positive_float, metavar="X",
                       help="scale every layer's number of filters by X (e.g. 0.5)")
    if classes:
        group.add_argument("--classes", type=positive_int, metavar="N",
                           help="number of classes of the classifier (default: the model's)")
    group.add_argument("--option", "-O", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                       help="any other builder argument (repeatable): -O downsample_on=3x3 "
                            "-O aux_classifiers=false; " + KEY_VALUE_HELP)


# The words of KEY=VALUE values, in any case (``none``, ``None``, ``NONE``): one rule for every flag.
_WORDS = {"true": True, "false": False, "none": None}


def key_value(text):
    """argparse type of every flag that takes a Python value, ``KEY=VALUE`` (``-O``, ``--set``).

    The key's dashes become underscores (``zero-init-residual`` is ``zero_init_residual``).
    The value is read by one rule: a Python literal when it is one (``0.5``, ``(8, 16)``,
    ``{"4a": {"b5": 64}}``, ``'text'``, ``True``); else the words ``true``, ``false`` and
    ``none`` in any case are True, False and None; else the text itself, a bare word such
    as ``3x3`` or ``avg``. Where the argument takes a string, `typed_value` turns the three
    words back into the word (``--set lr_scaling=none`` is the string ``"none"``).

    Returns:
        ``(key, value)``.
    """
    key, sep, value = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE, KEY a Python name. Received: {text!r}")
    value = value.strip()
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return key, _WORDS.get(value.lower(), value)


def key_values(pairs, flag) -> dict:
    """The ``(key, value)`` pairs of a repeated `key_value` flag as a dict; a key given twice
    raises ValueError."""
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        fail(flag, "given once per key", twice, received=f"{flag} {', '.join(twice)} twice")
    return dict(pairs)


def typed_value(name, value, expected, flag):
    """``value`` checked against ``expected`` and returned: a type, or a default value
    whose type is expected (a ``bool`` default takes only True/False, an ``int``
    default an integer, a ``float`` default a number, a ``str`` default a string, and
    the words ``true``/``false``/``none`` as the string; ``None`` or any other default
    takes anything). ``flag`` names the option (``"-O"``, ``"--set"``) in the message.

    Raises:
        ValueError: the value does not suit ``expected``.
    """
    kind = expected if isinstance(expected, type) else type(expected)
    if kind is str and value in (None, True, False):  # the word, as written (lowercase)
        value = {None: "none", True: "true", False: "false"}[value]
    checks = {  # (whether value is one, how to say it)
        bool: (lambda v: isinstance(v, bool), "True or False"),
        int: (is_int, "an integer"),
        float: (is_number, "a number"),
        str: (lambda v: isinstance(v, str), "a string"),
    }
    if kind not in checks:  # None, a tuple, ...: the builder or the recipe checks it
        return value
    test, what = checks[kind]
    if not test(value):
        fail(name, what, value, received=f"{flag} {name}={value!r}")
    return value


def model_kwargs(args, name=None) -> dict:
    """The builder keyword arguments given by `add_model_arguments`' options.

    Validates the model name (unknown names raise ValueError with the
    registry's suggestions) and that the builder takes every option; call it
    inside ``with usage_errors():``. ``--input-size N`` becomes
    ``input_shape=(N, N, 3)`` (in the layout of ``keras.config.image_data_format()``).
    """
    import inspect

    name = name or args.model
    entry = get_entry(name)
    kwargs = key_values(getattr(args, "option", None) or [], "-O")
    if getattr(args, "width_multiplier", None) is not None:
        kwargs["width_multiplier"] = args.width_multiplier
    if getattr(args, "classes", None) is not None:
        kwargs["classes"] = args.classes
    if getattr(args, "input_size", None) is not None:
        kwargs["input_shape"] = image_shape(args.input_size)
    parameters = inspect.signature(entry.builder).parameters
    for key, value in kwargs.items():
        if key in parameters and key not in ("input_shape", "classes", "width_multiplier"):
            kwargs[key] = typed_value(key, value, parameters[key].default, "-O")
    accepted = set(parameters)
    takes_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = [] if takes_any else sorted(set(kwargs) - accepted)
    if unknown:
        flag = {"width_multiplier": "--width-multiplier", "input_shape": "--input-size", "classes": "--classes"}
        shown = ", ".join(flag.get(k, k) for k in unknown)
        raise ValueError(
            f"{entry.name} does not take {shown}. Its options: {', '.join(sorted(accepted))}. "
            f"Received: {', '.join(f'{k}={kwargs[k]!r}' for k in unknown)}"
        )
    return kwargs
