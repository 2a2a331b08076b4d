"""The ``kerasnets`` command line (also ``python -m kerasnets``).

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to the
function that runs it. Adding a command is one module plus one line in
``COMMANDS``.

A `UsageError` is printed as ``kerasnets <command>: error: ...`` with exit
code 2 and no traceback, as argparse does for its own errors. Commands wrap the
validation of user input (``get_model`` with an unknown name, a bad size) in
``with usage_errors():`` so that its ValueErrors become usage errors, while a
ValueError from deep inside a run still shows its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

__all__ = ["main", "UsageError", "usage_errors", "COMMANDS"]

# Module names under kerasnets.cli, in the order `--help` lists them.
COMMANDS = []


class UsageError(Exception):
    """A user error: printed without traceback, exit code 2."""


@contextlib.contextmanager
def usage_errors():
    """Turns ValueErrors raised while validating user input into `UsageError`."""
    try:
        yield
    except ValueError as error:
        raise UsageError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    from kerasnets import __version__

    parser = argparse.ArgumentParser(
        prog="kerasnets",
        description="The classic ImageNet CNNs for Keras 3: list, inspect, train, export, tune.",
    )
    parser.add_argument("--version", action="version", version=f"kerasnets {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        importlib.import_module(f"kerasnets.cli.{module}").register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except UsageError as error:
        prog = f"kerasnets {args.command}"
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    return int(result or 0)
