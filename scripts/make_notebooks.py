"""Writes the Colab notebooks of examples/ from the example scripts (one source of truth).

Every ``examples/<name>.py`` is divided into cells by ``# %%`` lines (the
"percent" format that VS Code, Spyder and jupytext read): ``# %% [markdown]``
starts a Markdown cell whose lines are comments (``# `` is stripped), ``# %%``
a code cell. ``examples/<name>.ipynb`` is written from it with three cells
added after the first (title) cell:

* an "Open in Colab" badge (in the title cell);
* an install cell, which installs kerasnets where it is missing (Colab);
* a GPU check cell.

The rest of the notebook is the script, cell for cell, so the tests that run
each script's ``--quick`` mode and execute each notebook check the same code.
Outputs are not stored; cell ids are deterministic, so regenerating an
unchanged script gives the same file.

Usage::

    python scripts/make_notebooks.py            # (re)write every notebook
    python scripts/make_notebooks.py --check    # exit 1 if a notebook is out of date
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
# The GitHub repository the Colab badges open the notebooks from.
REPOSITORY = "kerasnets/kerasnets"
BRANCH = "main"

INSTALL_CELL = """\
# Install kerasnets where it is missing (on Colab). From a checkout of the repository,
# `pip install -e .` in its root installs it instead; from GitHub:
# `pip install git+https://github.com/{repository}`.
import importlib.util

if importlib.util.find_spec("kerasnets") is None:
    %pip install -q kerasnets"""

GPU_CELL = """\
# The accelerators TensorFlow sees. On Colab choose Runtime > Change runtime type > GPU;
# the quick mode (QUICK / --quick / KERASNETS_QUICK=1) runs on a CPU in a few minutes.
import tensorflow as tf

gpus = tf.config.list_physical_devices("GPU")
print(f"TensorFlow {tf.__version__}; GPUs: {[g.name for g in gpus] or 'none, running on the CPU'}")"""

BADGE = (
    "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
    "(https://colab.research.google.com/github/{repository}/blob/{branch}/examples/{name}.ipynb)"
)


def example_scripts(folder=EXAMPLES):
    """The example scripts: ``examples/*.py`` that are not private (``_*.py``)."""
    return sorted(
        os.path.join(folder, f) for f in os.listdir(folder)
        if f.endswith(".py") and not f.startswith("_")
    )


def split_cells(source: str, path: str = "<script>") -> list[tuple[str, str]]:
    """``[(cell_type, text)]`` of a percent-format script."""
    cells, kind, lines = [], None, []

    def flush():
        text = "\n".join(lines).strip("\n")
        if kind is not None and text.strip():
            cells.append((kind, text))

    for number, line in enumerate(source.splitlines(), start=1):
        if line.startswith("# %%"):
            flush()
            marker = line[4:].strip()
            kind = "markdown" if marker.startswith("[markdown]") else "code"
            lines = []
            continue
        if kind is None:
            if line.strip():
                raise ValueError(
                    f"{path}:{number}: everything must be inside a '# %%' cell (start the file "
                    f"with '# %% [markdown]'). Received: {line!r}"
                )
            continue
        if kind == "markdown":
            if line.strip() and not line.startswith("#"):
                raise ValueError(
                    f"{path}:{number}: a Markdown cell holds comment lines only. Received: {line!r}"
                )
            line = line[2:] if line.startswith("# ") else line[1:]
        lines.append(line)
    flush()
    if not cells or cells[0][0] != "markdown":
        raise ValueError(f"{path}: the first cell must be a Markdown title ('# %% [markdown]').")
    return cells


def _cell(kind, text, index):
    cell = {"cell_type": kind, "id": f"cell-{index:02d}", "metadata": {}, "source": text.splitlines(keepends=True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def notebook_for(script_path: str, repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """The notebook of ``script_path``, as the text of the ``.ipynb`` file."""
    name = os.path.splitext(os.path.basename(script_path))[0]
    with open(script_path, encoding="utf-8") as f:
        cells = split_cells(f.read(), script_path)
    title = cells[0][1] + "\n\n" + BADGE.format(repository=repository, branch=branch, name=name)
    texts = [("markdown", title),
             ("code", INSTALL_CELL.format(repository=repository)),
             ("code", GPU_CELL)] + cells[1:]
    notebook = {
        "cells": [_cell(kind, text, i) for i, (kind, text) in enumerate(texts)],
        "metadata": {
            "accelerator": "GPU",
            "colab": {"provenance": [], "gpuType": "T4", "name": f"{name}.ipynb"},
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def notebook_path(script_path):
    return os.path.splitext(script_path)[0] + ".ipynb"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that every notebook is up to date")
    parser.add_argument("--repository", default=REPOSITORY, help="GitHub owner/name for the Colab badges")
    args = parser.parse_args(argv)
    stale = []
    for script in example_scripts():
        text = notebook_for(script, repository=args.repository)
        path = notebook_path(script)
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if current == text:
            continue
        stale.append(os.path.relpath(path, ROOT))
        if not args.check:
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
            print(f"wrote {os.path.relpath(path, ROOT)}")
    if args.check and stale:
        print("Out of date (run python scripts/make_notebooks.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    if not stale:
        print("Every notebook is up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
