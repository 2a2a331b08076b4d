"""Renders a `Profile` as an aligned text table or a Markdown table."""

from __future__ import annotations

import textwrap

from kerasnets.profiling._blocks import WIDTH_ORDER
from kerasnets.layers import channels_last

__all__ = ["render", "human"]


def human(n: int, exact: bool = False) -> str:
    """``163328`` -> ``"163.3K"`` (decimal prefixes); ``exact`` gives ``"163,328"``."""
    if exact or abs(n) < 1000:
        return f"{n:,}"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            digits = 2 if suffix == "G" else 1
            return f"{n / scale:.{digits}f}{suffix}"
    return str(n)  # pragma: no cover


def shape_text(shape) -> str:
    """An image shape as ``224×224×3``, height and width first whatever the data format."""
    dims = list(shape)
    if len(dims) == 3 and not channels_last():
        dims = dims[1:] + dims[:1]
    return "×".join("?" if d is None else str(d) for d in dims)


def _count(n, exact):
    return "" if n == 0 else human(n, exact)


def _block_table(profile, exact, markdown):
    rows = profile.rows + profile.aux_rows
    seen = {key for row in rows for key in row.widths}
    width_cols = [c for c in WIDTH_ORDER if c in seen] + sorted(seen - set(WIDTH_ORDER))
    header = ["name", "type", "patch size/stride", "output size", "depth", *width_cols, "params", "MACs"]

    def cells(row):
        indent = ("↳ " if markdown else "  ") * row.level
        return [
            indent + row.name, row.type, row.patch, shape_text(row.output_shape), str(row.depth),
            *[str(row.widths.get(c, "")) for c in width_cols],
            _count(row.params, exact), _count(row.macs, exact),
        ]

    body = [cells(r) for r in profile.rows]
    body.append(None)  # separator
    body.append(["total", "", "", shape_text(profile.input_shape) + " input", str(profile.depth),
                 *[""] * len(width_cols), human(profile.params, exact), human(profile.macs, exact)])
    if profile.aux_rows:
        body.append(None)
        body.append(["aux heads", "(training only)", *[""] * (len(header) - 2)])
        body.extend(cells(r) for r in profile.aux_rows)
        body.append(None)
        body.append(["total", "with aux heads", *[""] * (len(header) - 4),
                     human(profile.total_params, exact), human(profile.total_macs, exact)])
    numeric = {header.index(c) for c in ["depth", *width_cols, "params", "MACs"]}
    return header, body, numeric


def _layer_table(profile, exact, markdown):
    header = ["name", "type", "patch size/stride", "output size", "block", "params", "MACs"]
    body, previous_head = [], "main"
    for row in profile.layers:
        if row.head != previous_head:
            body.append(None)
            previous_head = row.head
        body.append([row.name, row.type, row.patch, shape_text(row.output_shape),
                     row.block,
                     _count(row.params, exact), _count(row.macs, exact)])
    body.append(None)
    body.append(["total", "", "", "", "", human(profile.total_params, exact), human(profile.total_macs, exact)])
    return header, body, {5, 6}


def render(profile, fmt="text", per_layer=False, exact=False, unicode=True) -> str:
    markdown = fmt == "markdown"
    table = _layer_table if per_layer else _block_table
    header, body, numeric = table(profile, exact, markdown)
    title = f"{profile.title}: input {shape_text(profile.input_shape)}"
    if markdown:
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---:" if i in numeric else "---" for i in range(len(header))) + "|",
        ]
        for cells in body:
            if cells is None:
                continue
            if cells[0] in ("total", "aux heads"):
                cells = [f"**{c}**" if c else c for c in cells]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out = f"**{title}**\n\n" + "\n".join(lines) + f"\n\n_{profile.conventions}_\n"
    else:
        widths = [max(len(header[i]), *(len(r[i]) for r in body if r is not None)) for i in range(len(header))]

        def line(cells):
            return "  ".join(
                c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
            ).rstrip()

        rule = "-" * len(line(["-" * w for w in widths]))
        lines = [title, rule, line(header), rule]
        lines += [rule if cells is None else line(cells) for cells in body]
        lines.append(rule)
        lines += textwrap.wrap(profile.conventions, width=max(80, min(len(rule), 120)))
        out = "\n".join(lines) + "\n"
    if not unicode:
        out = out.replace("×", "x").replace("↳", "->")
    return out
