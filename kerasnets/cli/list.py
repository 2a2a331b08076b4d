"""``kerasnets list [PATTERN]``: every registered model with parameters, MACs, input size,
ImageNet weights and paper, then each model's weight presets (name, source, top-1 as
published, input size, preprocessing); ``--weights``: the presets only.

Examples::

    kerasnets list
    kerasnets list 'resnet*' --markdown
    kerasnets list --names
    kerasnets list --weights          # presets: name, source, top-1, input size, preprocessing
"""

from __future__ import annotations

import json
import sys

from kerasnets.cli import UsageError
from kerasnets.cli._output import emit
from kerasnets.profiling import format_models, format_presets, preset_rows, summarize_models
from kerasnets.registry import list_models


def register(subparsers):
    parser = subparsers.add_parser(
        "list",
        help="list the registered models with parameters, MACs, input size and paper",
        description=(
            "List every registered model (or those matching PATTERN) with its learnable "
            "parameters, multiply-adds at the default input size, depth, default input size "
            "and paper, then its ImageNet weight presets (name, source, top-1 as published, "
            "input size, preprocessing). Each model is built (without initialising weights) "
            "to count them."
        ),
    )
    parser.add_argument("pattern", nargs="?", metavar="PATTERN",
                        help="shell-style filter on the names, e.g. 'resnet*' (quote it)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--markdown", action="store_true", help="print a Markdown table")
    output.add_argument("--json", action="store_true", help="print JSON (one object per model)")
    output.add_argument("--names", action="store_true", help="print only the names, one a line (fast: builds nothing)")
    parser.add_argument("--weights", action="store_true",
                        help="list the ImageNet weight presets instead (name, source, top-1, input size, "
                             "preprocessing, builder arguments, file; fast: builds nothing)")
    parser.add_argument("--exact", action="store_true", help="full integers instead of 25.6M / 4.09G")
    parser.set_defaults(func=run)
    return parser


def _progress(i, n, name):
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\033[Kprofiling {name} ({i + 1}/{n})")
        sys.stderr.flush()


def run(args):
    names = list_models(args.pattern)
    if not names:
        raise UsageError(
            f"No model matches the pattern. See `kerasnets list` for all {len(list_models())} "
            f"models. Received: PATTERN={args.pattern!r}"
        )
    if args.names:
        emit("\n".join(names) + "\n")
        return 0
    fmt = "markdown" if args.markdown else "text"
    presets = preset_rows(names)
    without = [n for n in names if not any(p["model"] == n for p in presets)]
    if args.weights:
        emit(json.dumps(presets, indent=2) + "\n" if args.json else format_presets(presets, fmt, without))
        return 0
    rows = summarize_models(names, progress=_progress)
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
    if args.json:
        emit(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
    else:
        heading = "\nImageNet weight presets (weights=\"imagenet\" is each model's first):\n\n"
        emit(format_models(rows, fmt, exact=args.exact)
             + (heading if presets else "\n") + format_presets(presets, fmt, without))
    failed = [r for r in rows if r.error]
    for r in failed:
        print(f"kerasnets list: {r.name} failed to build: {r.error}", file=sys.stderr)
    return 1 if failed else 0
