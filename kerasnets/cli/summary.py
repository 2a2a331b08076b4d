"""``kerasnets summary MODEL``: the paper-style table of parameters and multiply-adds.

One row per paper-level block (GoogLeNet's Table 1 rows, VGG blocks, ResNet
stages and blocks) with type, patch size/stride, output size, depth, the
Inception width columns, params and MACs; auxiliary heads apart.

Examples::

    kerasnets summary googlenet
    kerasnets summary resnet50 --input-size 448 --width-multiplier 0.5
    kerasnets summary vgg16 --per-layer --markdown
    kerasnets summary resnet50 -O downsample_on=3x3 --json
"""

from __future__ import annotations

import json

from kerasnets.cli import add_model_arguments, model_kwargs, usage_errors
from kerasnets.cli._output import emit
from kerasnets.profiling import profile
from kerasnets.registry import get_entry


def register(subparsers):
    parser = subparsers.add_parser(
        "summary",
        help="the paper-style table of a model: params and multiply-adds per block",
        description=(
            "Print the table of a model as its paper does (GoogLeNet's Table 1): one row per "
            "block with type, patch size/stride, output size, depth, Inception widths, "
            "learnable parameters and multiply-adds (MACs), computed from the layers of the "
            "model built with the options given. Auxiliary heads are listed apart."
        ),
    )
    add_model_arguments(parser, classes=True)
    view = parser.add_argument_group("output")
    view.add_argument("--per-layer", action="store_true", help="one row per layer instead of per block")
    fmt = view.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
    fmt.add_argument("--json", action="store_true", help="print the profile as JSON (totals, rows and layers)")
    view.add_argument("--exact", action="store_true", help="full integers instead of 163.7K / 128.0M")
    parser.set_defaults(func=run)
    return parser


def run(args):
    with usage_errors():
        kwargs = model_kwargs(args)
        p = profile(args.model, **kwargs)
    if args.json:
        emit(json.dumps(p.to_dict(), indent=2) + "\n")
        return 0
    paper = get_entry(args.model).info.paper
    if args.markdown:
        emit(f"{paper}\n\n" + p.to_markdown(per_layer=args.per_layer, exact=args.exact))
    else:
        emit(f"{paper}\n" + p.to_text(per_layer=args.per_layer, exact=args.exact))
    return 0
