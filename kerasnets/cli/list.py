"""``kerasnets list [PATTERN]``: every registered model with parameters, MACs, input size,
ImageNet weights and paper; ``--weights``: the weight presets.

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


def register(subparsers):
    parser = subparsers.add_parser(
        "list",
        help="list the registered models with parameters, MACs, input size and paper",
        description=(
            "List every registered model (or those matching PATTERN) with its learnable "
            "parameters, multiply-adds at the default input size, depth, default input size "
            "and paper. Each model is built (without initialising weights) to count them."
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
    from kerasnets.profiling._catalog import format_models, summarize_models
    from kerasnets.registry import list_models

    names = list_models(args.pattern)
    if not names:
        raise UsageError(
            f"No model matches the pattern. See `kerasnets list` for all {len(list_models())} "
            f"models. Received: PATTERN={args.pattern!r}"
        )
    if args.names:
        emit("\n".join(names) + "\n")
        return 0
    if args.weights:
        return _list_presets(names, args)
    rows = summarize_models(names, progress=_progress)
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
    if args.json:
        emit(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
    else:
        emit(format_models(rows, "markdown" if args.markdown else "text", exact=args.exact))
    failed = [r for r in rows if r.error]
    for r in failed:
        print(f"kerasnets list: {r.name} failed to build: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def _list_presets(names, args):
    from kerasnets.weights import presets_of

    presets = [p for name in names for p in presets_of(name)]
    rows = [dict(
        model=p.model, preset=p.name, source=p.source, top1=p.top1, top5=p.top5, input_size=p.input_size,
        preprocessing=p.preprocessing.name, crop_fraction=round(p.preprocessing.crop_fraction, 4),
        builder_kwargs=p.builder_kwargs, url=p.file.url, file_hash=p.file.file_hash, license=p.license,
    ) for p in presets]
    if args.json:
        emit(json.dumps(rows, indent=2) + "\n")
        return 0
    header = ["model", "preset", "source", "top-1", "input", "preprocessing", "needs"]
    body = [[r["model"], r["preset"], r["source"], f"{r['top1']:.1f}", f"{r['input_size']}",
             r["preprocessing"] + (f" (crop {r['crop_fraction']:.3f})" if r["crop_fraction"] != 0.875 else ""),
             ", ".join(f"{k}={v!r}" for k, v in r["builder_kwargs"].items()) or "-"] for r in rows]
    if args.markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
    else:
        widths = [max([len(header[i])] + [len(c[i]) for c in body]) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() for cells in [header] + body]
    without = [n for n in names if not presets_of(n)]
    note = f"\nNo exact public ImageNet weights: {', '.join(without)}.\n" if without else ""
    emit("\n".join(lines) + "\n" + note)
    return 0
