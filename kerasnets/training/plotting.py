"""Training curves: loss and accuracy per epoch, training and validation, per head.

>>> from kerasnets.training.plotting import plot_history
>>> plot_history("runs/resnet20-shapes/log.csv", "curves.png")  # doctest: +SKIP

Works from a ``log.csv`` written by `kerasnets.training.callbacks.CSVLog`, a
``keras.callbacks.History`` or its ``history`` dict. Matplotlib's Agg canvas is
used directly, so no display and no global pyplot state are involved.
"""

from __future__ import annotations

import os

from kerasnets._validate import check_instance, fail
from kerasnets.training import _io
from kerasnets.training.callbacks import CSVLog

__all__ = ["plot_history", "curve_groups"]


def _as_columns(history):
    """``{key: [values per epoch]}`` and the epochs, from any accepted input."""
    if isinstance(history, (str, os.PathLike)):
        rows = CSVLog.read(os.fspath(history))
        keys = sorted({k for r in rows for k in r} - {"epoch"})
        return [r["epoch"] for r in rows], {k: [r.get(k) for r in rows] for k in keys}
    history = getattr(history, "history", history)
    check_instance("history", history, dict, "a log.csv path, a keras History or its history dict")
    length = max((len(v) for v in history.values()), default=0)
    return list(range(1, length + 1)), {k: list(v) for k, v in history.items()}


def curve_groups(keys) -> dict:
    """Groups log keys into panels: ``{"loss": [...], "accuracy": [...], "top-5 accuracy": [...]}``.

    Each entry is a training key (``loss``, ``main_loss``, ``aux1_loss``); its
    validation twin is ``"val_" + key``.
    """
    groups = {"loss": [], "accuracy": [], "top-5 accuracy": []}
    for key in sorted(keys):
        if key.startswith("val_"):
            continue
        if key.endswith("top5_accuracy"):
            groups["top-5 accuracy"].append(key)
        elif key.endswith("accuracy"):
            groups["accuracy"].append(key)
        elif key.endswith("loss"):
            groups["loss"].append(key)
    # The total loss and the main head first.
    for name in groups:
        groups[name].sort(key=lambda k: (k not in ("loss", "accuracy", "top5_accuracy"), not k.startswith("main"), k))
    return {k: v for k, v in groups.items() if v}


def plot_history(history, path, *, title=None):
    """Writes a PNG of the training curves to ``path`` (atomically); returns ``path``.

    One panel for the loss, one for the accuracy (and one for top-5 accuracy when
    logged); solid lines for training, dashed for validation; one colour per
    head for models with auxiliary classifiers (``main``, ``aux1``, ``aux2``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs, columns = _as_columns(history)
    groups = curve_groups(columns)
    if not epochs or not groups:
        fail("history", "a history with a loss or an accuracy to plot", history,
             received=f"history with the keys {sorted(columns)}")
    fig = Figure(figsize=(5.2 * len(groups), 4.0), dpi=100)
    FigureCanvasAgg(fig)
    colours = {}
    palette = ["C0", "C1", "C2", "C3", "C4", "C5", "C6"]
    for i, (panel, keys) in enumerate(groups.items()):
        ax = fig.add_subplot(1, len(groups), i + 1)
        for key in keys:
            head = "total" if key in ("loss", "accuracy", "top5_accuracy") else key.split("_")[0]
            colour = colours.setdefault(head, palette[len(colours) % len(palette)])
            label = key
            ax.plot(epochs, _floats(columns[key]), "-", color=colour, marker="o", markersize=3,
                    label=f"train {label}")
            val = columns.get("val_" + key)
            if val is not None:
                ax.plot(epochs, _floats(val), "--", color=colour, marker="o", markersize=3,
                        label=f"val {label}")
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if len(epochs) < 15:
            ax.set_xticks(epochs)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with _io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _floats(values):
    return [float("nan") if v is None else float(v) for v in values]
