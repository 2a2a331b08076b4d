"""What a search found: the results table, the Pareto front, the best model.

`write_report(tuner, output)` writes the layout the ``kerasnets tune`` command
documents::

    <output>/results.csv       one row per trial (see `TrialResult`)
    <output>/pareto.png        objective against MACs; the Pareto front marked
    <output>/best_model.keras  the best trial's trained model
    <output>/best_args.json    the builder arguments that rebuild it
    <output>/tuner/            keras-tuner's project (trials, checkpoints)

Every file is written atomically: an interrupted report leaves the previous
file or none, never half of one.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os

from kerasnets.files import atomic_path, remove_stale_partials, write_json, write_text
from kerasnets.tuning._distributed import read_workers
from kerasnets.tuning._hypermodel import _jsonable
from kerasnets.tuning._tuners import _failure

__all__ = ["TrialResult", "trial_results", "pareto_front", "format_table", "plot_pareto", "write_report"]


@dataclasses.dataclass
class TrialResult:
    """One trial of a search.

    Attributes:
        trial_id: keras-tuner's id.
        status: ``"COMPLETED"``, ``"FAILED"``, ...
        hyperparameters: the searched values (keras-tuner's ``tuner/*`` entries
            left out; ``epochs`` holds Hyperband's).
        builder_args: ``{"name", **kwargs}``: `build_from_args` rebuilds the model.
        widths: the model's widths, one per searched group (stage filters or an
            Inception module's output channels).
        params: learnable parameters of the inference model (BatchNorm statistics
            and auxiliary heads not counted; `kerasnets.profile`'s ``params``).
        macs: multiply-adds for one image at the search's input size.
        objective: the trial's best objective value (``None`` if it failed).
        epochs: epochs trained (Hyperband's rounds differ), if known.
        error: why the trial failed, or ``""``.
        pareto: whether no other trial is at least as good with at most as many MACs.
        worker: the Keras Tuner worker that ran the trial in a search on several
            workers (the last one, when a worker died and another took the trial
            over; ``tuner/workers.json`` holds every one), or ``""``.
    """

    trial_id: str
    status: str
    hyperparameters: dict
    builder_args: dict
    widths: list | None
    params: int | None
    macs: int | None
    objective: float | None
    epochs: int | None = None
    error: str = ""
    pareto: bool = False
    worker: str = ""


def trial_results(tuner) -> list[TrialResult]:
    """A `TrialResult` per trial of a tuner over a `WidthHyperModel`, in trial order.

    Each distinct model is rebuilt from its ``builder_args`` (not trained) to count
    its parameters and MACs, which checks that the arguments reproduce it.
    """
    workers = read_workers(tuner.project_dir)
    hypermodel = tuner.hypermodel
    direction = tuner.oracle.objective.direction
    results = []
    for trial_id in sorted(tuner.oracle.trials):
        trial = tuner.oracle.trials[trial_id]
        values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        searched = {hp.name: values[hp.name] for hp in hypermodel.space if hp.name in values}
        try:
            args = hypermodel.builder_args(searched)
        except (KeyError, ValueError):  # a trial that never got its values
            continue
        completed = trial.status == "COMPLETED"
        score = trial.score if completed else None
        if score is not None and not math.isfinite(score):
            score = None
        widths = params = macs = None
        try:
            widths, params, macs = hypermodel.model_stats(searched)
        except ValueError:  # the model cannot be built: the trial failed for that reason
            pass
        results.append(
            TrialResult(
                trial_id=trial_id,
                status=trial.status,
                hyperparameters=searched,
                builder_args=args,
                widths=widths,
                params=params,
                macs=macs,
                objective=score,
                epochs=trial.hyperparameters.values.get("tuner/epochs"),
                error="" if completed else _failure(trial).error,
                worker=(workers.get(trial_id) or [""])[-1],
            )
        )
    for index in pareto_front(results, direction):
        results[index].pareto = True
    return results


def pareto_front(results, direction="max") -> list[int]:
    """Indices of the completed results no other beats on both MACs and objective.

    A result is on the front when no other has at most its MACs and a strictly
    better objective, or strictly fewer MACs and an objective at least as good.
    Results without MACs or objective are left out.
    """
    sign = 1 if direction == "max" else -1
    points = [
        (i, r.macs, sign * r.objective)
        for i, r in enumerate(results)
        if r.macs is not None and r.objective is not None
    ]
    front = []
    for i, macs, score in points:
        dominated = any(
            (m <= macs and s > score) or (m < macs and s >= score) for j, m, s in points if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: results[i].macs)


def widths_text(widths):
    """``64/128/256``: a trial's widths as the reports and the progress lines print them."""
    return "" if not widths else "/".join(str(w) for w in widths)


def count_text(n):
    """A count with a unit (``1.2M``), ``-`` for none."""
    if n is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def format_table(results, objective_name="objective") -> str:
    """The results as an aligned text table (``*`` marks the Pareto front)."""
    head = ("trial", "status", "widths", "params", "MACs", objective_name, "")
    rows = [
        (
            r.trial_id, r.status, widths_text(r.widths), count_text(r.params), count_text(r.macs),
            "-" if r.objective is None else f"{r.objective:.4f}", "*" if r.pareto else "",
        )
        for r in results
    ]
    if any(r.epochs for r in results):
        head = head[:2] + ("epochs",) + head[2:]
        rows = [row[:2] + (str(r.epochs or ""),) + row[2:] for row, r in zip(rows, results)]
    if any(r.worker for r in results):
        head = head[:2] + ("worker",) + head[2:]
        rows = [row[:2] + (r.worker,) + row[2:] for row, r in zip(rows, results)]
    sizes = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(s) for c, s in zip(row, sizes)).rstrip() for row in [head] + rows]
    return "\n".join(lines)


def _csv_text(results, objective_name):
    names = []
    for r in results:
        names += [k for k in r.hyperparameters if k not in names]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["trial", "status", "epochs", "widths", "params", "macs", objective_name, "pareto", *names,
         "builder_args", "error", "worker"]
    )
    for r in results:
        writer.writerow(
            [r.trial_id, r.status, r.epochs or "", widths_text(r.widths),
             "" if r.params is None else r.params, "" if r.macs is None else r.macs,
             "" if r.objective is None else r.objective, int(r.pareto),
             *[r.hyperparameters.get(n, "") for n in names],
             json.dumps(r.builder_args, default=str), r.error, r.worker]
        )
    return buffer.getvalue()


def plot_pareto(results, path, *, objective_name="objective", title=None):
    """Writes a PNG of the objective against MACs; the Pareto front joined and labelled."""
    from matplotlib.figure import Figure  # drawn with Agg, whatever pyplot's backend
    from matplotlib.ticker import EngFormatter

    points = [r for r in results if r.macs is not None and r.objective is not None]
    front = sorted((r for r in points if r.pareto), key=lambda r: r.macs)
    figure = Figure(figsize=(7, 4.5), dpi=120)
    axes = figure.subplots()
    others = [r for r in points if not r.pareto]
    if others:
        axes.scatter([r.macs for r in others], [r.objective for r in others],
                     color="tab:gray", alpha=0.7, label="trial")
    if front:
        axes.step([r.macs for r in front], [r.objective for r in front], where="post",
                  color="tab:red", alpha=0.5)
        axes.scatter([r.macs for r in front], [r.objective for r in front],
                     color="tab:red", zorder=3, label="Pareto front")
        for r in front:
            axes.annotate(f"{r.trial_id}: {widths_text(r.widths) or r.builder_args.get('name')}",
                          (r.macs, r.objective), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if points and max(r.macs for r in points) > 10 * min(r.macs for r in points):
        axes.set_xscale("log")
    axes.xaxis.set_major_formatter(EngFormatter())
    axes.set_xlabel("multiply-adds per image (MACs)")
    axes.set_ylabel(objective_name)
    axes.set_title(title or "Objective against cost")
    axes.grid(True, alpha=0.3)
    if points:
        axes.legend(loc="lower right")
    else:
        axes.text(0.5, 0.5, "no completed trial", ha="center", va="center", transform=axes.transAxes)
    figure.tight_layout()
    figure.savefig(path, format="png")


def _best_model(tuner):
    """The best trial's trained model, its optimizer built (fresh) so that it saves whole."""
    import contextlib
    import warnings

    with warnings.catch_warnings():
        # keras-tuner's checkpoints hold the optimizer's variables, which a freshly
        # compiled model cannot take: only the weights matter here.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model = tuner.get_best_models(1)[0]
    strategy = getattr(tuner, "distribution_strategy", None)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    return model


def write_report(tuner, output, *, results=None) -> dict:
    """Writes results.csv, pareto.png, best_model.keras and best_args.json to ``output``.

    Returns ``{"results": [TrialResult], "best": TrialResult or None, "paths": {...}}``.
    With no completed trial only the table and the plot are written.
    """
    results = trial_results(tuner) if results is None else results
    objective_name = tuner.oracle.objective.name
    os.makedirs(output, exist_ok=True)
    paths = {"results": os.path.join(output, "results.csv"), "plot": os.path.join(output, "pareto.png")}

    remove_stale_partials(output)  # what killed writes of an earlier report left
    write_text(paths["results"], _csv_text(results, objective_name))
    with atomic_path(paths["plot"]) as tmp:
        plot_pareto(results, tmp, objective_name=objective_name,
                    title=f"{tuner.hypermodel.model}: {objective_name} against MACs")

    best = None
    completed = [r for r in results if r.status == "COMPLETED" and r.objective is not None]
    if completed:
        best_trial = tuner.oracle.get_best_trials(1)[0]
        best = next(r for r in results if r.trial_id == best_trial.trial_id)
        model = _best_model(tuner)
        paths["model"] = os.path.join(output, "best_model.keras")
        paths["args"] = os.path.join(output, "best_args.json")
        with atomic_path(paths["model"]) as tmp:
            model.save(tmp)
        document = {
            "model": best.builder_args["name"],
            "builder_args": best.builder_args,
            "learning_rate": tuner.hypermodel.learning_rate(best.hyperparameters),
            "hyperparameters": best.hyperparameters,
            "trial_id": best.trial_id,
            "objective": {"name": objective_name, "value": best.objective,
                          "direction": tuner.oracle.objective.direction},
            "widths": best.widths,
            "params": best.params,
            "macs": best.macs,
            "rebuild": "kerasnets.tuning.build_from_args(json.load(open('best_args.json'))['builder_args'])",
        }
        write_json(paths["args"], _jsonable(document))
    return {"results": results, "best": best, "paths": paths}
