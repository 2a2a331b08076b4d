"""The table of every registered model: parameters, MACs, input size, paper, and its presets.

Used by ``kerasnets list`` and by ``scripts/model_table.py`` (the README's table). What
a model is comes from its spec (`kerasnets.registry.get_entry`), its presets' facts from
`kerasnets.weights.presets_of`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

from kerasnets.profiling._render import human
from kerasnets.registry import get_entry
from kerasnets.weights import presets_of

__all__ = [
    "ModelSummary", "summarize_models", "format_models", "short_paper", "preset_rows", "format_presets",
]


@dataclasses.dataclass
class ModelSummary:
    """One line of the model table."""

    name: str
    builder: str
    params: int  # learnable, main path
    aux_params: int  # learnable, auxiliary heads (0 when none)
    keras_params: int  # model.count_params()
    macs: int  # main path, default input size
    depth: int
    input_size: int
    family: str
    paper: str
    weights: str = ""  # the ImageNet presets, with their published top-1
    presets: list = dataclasses.field(default_factory=list)  # `preset_rows` of the model
    error: str = ""

    def to_dict(self):
        return dataclasses.asdict(self)


def short_paper(paper: str) -> str:
    """``"He et al., Deep Residual ..., CVPR 2016 (arXiv:1512.03385)"`` -> ``"He et al., CVPR 2016"``."""
    parts = [p.strip() for p in paper.split(",")]
    if len(parts) < 2:
        return paper
    authors = parts[0]
    if "&" in parts[1]:  # "Krizhevsky, Sutskever & Hinton, ..."
        authors += " et al."
    venue = re.sub(r"\s*\(.*\)\s*$", "", parts[-1])
    return f"{authors}, {venue}"


def arxiv_url(paper: str) -> str | None:
    match = re.search(r"arXiv:(\d{4}\.\d{4,5})", paper)
    return f"https://arxiv.org/abs/{match.group(1)}" if match else None


def natural_key(name: str):
    """``resnet18`` before ``resnet101``: digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def weights_summary(name: str) -> str:
    """``"keras.applications 74.9, torchvision V1 76.1, V2 80.9"`` (top-1 %), or ``""``."""
    parts, last_source = [], None
    for p in presets_of(name):
        source, _, version = p.name.partition("_")
        label = {"keras": "keras.applications", "torchvision": "torchvision", "bvlc": "BVLC Caffe"}.get(source, p.name)
        version = version.upper() if source == "torchvision" else ""
        text = (f"{version} " if label == last_source else f"{label} {version} ".replace("  ", " "))
        needs = ", ".join(f"{k}={v!r}" for k, v in p.builder_kwargs.items())
        parts.append(f"{text.strip()} {p.top1:.1f}" + (f" ({needs})" if needs and label != last_source else ""))
        last_source = label
    return ", ".join(parts)


def summarize_models(names, progress: Callable | None = None) -> list:
    """Profiles each registered model at its default size; a failure becomes the row's ``error``.

    ``progress(i, n, name)`` is called before each model.
    """
    import gc

    from kerasnets.profiling import profile  # a cycle: kerasnets.profiling imports this module

    rows = []
    for i, name in enumerate(names):
        if progress:
            progress(i, len(names), name)
        entry = get_entry(name)
        info = entry.info
        base = dict(
            name=name, builder=entry.builder.__name__, input_size=info.default_size,
            family=info.family, paper=info.paper, weights=weights_summary(name),
            presets=preset_rows([name]),
        )
        try:
            p = profile(name)
        except Exception as error:  # noqa: BLE001 - one broken model must not hide the others
            rows.append(ModelSummary(**base, params=0, aux_params=0, keras_params=0, macs=0, depth=0,
                                     error=f"{type(error).__name__}: {error}"))
            continue
        rows.append(ModelSummary(
            **base, params=p.params, aux_params=p.total_params - p.params,
            keras_params=p.total_keras_params, macs=p.macs, depth=p.depth,
        ))
        del p
        gc.collect()
    return sorted(rows, key=lambda r: (r.family, natural_key(r.name)))


def format_models(rows, fmt: str = "text", exact: bool = False, links: bool = False) -> str:
    """The model table as aligned text or Markdown, with the counting conventions underneath."""
    header = ["model", "builder", "params", "MACs", "depth", "input", "ImageNet weights (top-1 %)", "paper"]
    numeric = {2, 3, 4, 5}
    body = []
    for r in rows:
        paper = short_paper(r.paper)
        url = arxiv_url(r.paper)
        if links and url:
            paper = f"[{paper}]({url})"
        if r.error:
            body.append([r.name, r.builder, "error", "", "", f"{r.input_size}", r.weights or "-", paper])
            continue
        params = human(r.params, exact)
        if r.aux_params:
            params += f" (+{human(r.aux_params, exact)} aux)"
        body.append([r.name, r.builder, params, human(r.macs, exact), str(r.depth),
                     f"{r.input_size}×{r.input_size}", r.weights or "-", paper])
    note = (
        "params: learnable weights of the inference path (BatchNorm moving statistics excluded; "
        "auxiliary classifiers, used in training only, in brackets). MACs: multiply-adds of "
        "convolutions and dense layers for one image at the default input size (1 MAC = 2 FLOPs). "
        "depth: layers with weights on the longest path. ImageNet weights: the presets "
        "(`weights=\"imagenet\"` is the first; `kerasnets list --weights`), with the top-1 accuracy "
        "their source publishes."
    )
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---:" if i in numeric else "---" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(f"`{c}`" if j == 0 else c for j, c in enumerate(cells)) + " |" for cells in body]
        return "\n".join(lines) + f"\n\n{note}\n"
    widths = [max(len(header[i]), *(len(c[i]) for c in body)) if body else len(header[i]) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    import textwrap

    out = [line(header), "-" * len(line(["-" * w for w in widths]))] + [line(c) for c in body]
    return "\n".join(out + [""] + textwrap.wrap(note, 100)) + "\n"


def preset_rows(names) -> list[dict]:
    """One dict per preset of the models ``names``, in their specs' order: the preset's name,
    source, top-1/top-5 as published, input size, preprocessing, the builder arguments it
    needs, its file and license."""
    return [dict(
        model=p.model, preset=p.name, source=p.source, top1=p.top1, top5=p.top5, input_size=p.input_size,
        preprocessing=p.preprocessing.name, crop_fraction=round(p.preprocessing.crop_fraction, 4),
        builder_kwargs=dict(p.builder_kwargs), url=p.file.url, file_hash=p.file.file_hash, license=p.license,
    ) for name in names for p in presets_of(name)]


def format_presets(rows, fmt: str = "text", without=()) -> str:
    """The `preset_rows` as aligned text or Markdown; ``without`` names the models with none."""
    header = ["model", "preset", "source", "top-1", "input", "preprocessing", "needs"]
    body = [[r["model"], r["preset"], r["source"], f"{r['top1']:.1f}", f"{r['input_size']}",
             r["preprocessing"] + (f" (crop {r['crop_fraction']:.3f})" if r["crop_fraction"] != 0.875 else ""),
             ", ".join(f"{k}={v!r}" for k, v in r["builder_kwargs"].items()) or "-"] for r in rows]
    if not body:
        lines = []
    elif fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
    else:
        widths = [max([len(header[i])] + [len(c[i]) for c in body]) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() for cells in [header] + body]
    note = f"No exact public ImageNet weights: {', '.join(without)}.\n" if without else ""
    return "\n".join(lines) + ("\n" if lines else "") + ("\n" if lines and note else "") + note
