"""``kerasnets tune``: a Keras Tuner search over a model's widths on a dataset."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import socket
import sys
import time

from kerasnets import training
from kerasnets._validate import fail, message
from kerasnets.cli import KEY_VALUE_HELP, UsageError, key_value, model_kwargs, positive_int, usage_errors
from kerasnets.cli._tune_workers import LocalWorkers, WorkersGone
from kerasnets.files import LOCK_FILE, Manifest, ManifestError, RunLock, check_writable, is_leftover, write_json
from kerasnets.layers import image_shape
from kerasnets.registry import get_entry
from kerasnets.training.strategy import PRECISIONS, STRATEGIES

# kerasnets.tuning (keras_tuner) and kerasnets.data (tensorflow-datasets) are imported inside
# the functions that use them: `kerasnets --help` and the other commands stay fast.

_EPILOG = """\
The search space (print it with --show-space) is the model family's widths:
width_multiplier; conv2_width.. (ResNet stages), block1_width.. (VGG blocks),
inception_3a_scale.. / mixed5b_scale.. (GoogLeNet / Inception modules); with
--search-depth the depth, with --search-learning-rate the learning rate.
Override an entry with --hp NAME=VALUES:
  --hp width_multiplier=0.5,1.0      a choice
  --hp conv2_width=16                fixed
  --hp conv3_width=8..32:8           a range with a step
  --hp learning_rate=0.001..0.1:log  a range sampled on a log scale

Output (--output, default runs/tune-<model>-<dataset>):
  results.csv       trial, status, widths, params, MACs, objective, Pareto, hyperparameters,
                    builder arguments, error
  pareto.png        the objective against MACs, the Pareto front marked
  best_model.keras  the best trial's trained model
  best_args.json    the builder arguments that rebuild it:
                    kerasnets.tuning.build_from_args(json.load(f)["builder_args"])
  search.json       what was searched (model, data, space, training)
  tuner/            keras-tuner's project; running the command again resumes it
                    (--overwrite starts over), on any number of workers
  logs/             with --workers: each worker's output
--output must be a new or empty folder, or a folder a search wrote (its
.kerasnets-manifest.json lists what it wrote): a folder with other files, a run or
export folder, or one a running command holds is refused. --overwrite removes only
what the manifest lists.
A trial that fails is reported when it ends; the command then exits with status 1
after writing the report of the trials that completed.

Several workers (Keras Tuner's distributed mode; docs/distributed.md):
  --workers N       this process serves the oracle on 127.0.0.1 and starts N worker
                    processes, each with its share of the GPUs (CUDA_VISIBLE_DEVICES),
                    or of the CPU cores; one line per finished trial, naming its worker.
                    A worker that dies gives its trial back to the oracle's queue and
                    the others go on.
  --role chief --oracle HOST:PORT [--workers N]
  --role worker --oracle HOST:PORT [--worker-id NAME]
                    a search over several machines that share --output; the chief
                    listens on HOST:PORT only. The port has no authentication: use an
                    address of a trusted network.

Example:
  kerasnets tune resnet20 --dataset shapes --max-trials 20 --tuner bayesian --epochs 3
  kerasnets tune resnet20 --max-trials 12 --workers 2
"""


# kerasnets.tuning.TUNERS' keys; spelled here so that building the parser (for any
# command) does not import keras-tuner.
TUNER_KINDS = ("random", "hyperband", "bayesian")
ROLES = ("chief", "worker")

SEARCH_FILE = "search.json"
# What a search writes into --output (a folder ends with "/"), listed in the folder's
# kerasnets.files.Manifest (kind "search") before it is written; keras-tuner's files
# in tuner/ are listed as they appear. --overwrite removes what is listed, nothing else.
LAYOUT = (SEARCH_FILE, "results.csv", "pareto.png", "best_model.keras", "best_args.json", "tuner/", "logs/",
          "tuner/oracle.json")
MANIFEST_KIND = "search"


def register(subparsers):
    p = subparsers.add_parser(
        "tune",
        help="search a model's widths with Keras Tuner (results table, Pareto plot, best model)",
        description="Search the widths (optionally depth and learning rate) of a model on a "
                    "dataset with Keras Tuner, then write a results table, a plot of the "
                    "objective against multiply-adds with the Pareto front, the best model "
                    "and the builder arguments that rebuild it.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="a registered model name (see `kerasnets list`)")
    p.add_argument("--dataset", default="shapes",
                   help="'shapes' (built in, default), a tensorflow-datasets name or a folder of images")
    p.add_argument("--max-trials", type=positive_int, default=10, metavar="N",
                   help="number of trials (models) to try (default 10)")
    p.add_argument("--tuner", choices=TUNER_KINDS, default="random", help="the search algorithm (default random)")
    p.add_argument("--objective", default="val_accuracy",
                   help="the metric to maximise (a *loss is minimised); default val_accuracy")
    p.add_argument("--output", help="output folder (default runs/tune-<model>-<dataset>)")
    p.add_argument("--epochs", type=positive_int, default=3, metavar="N",
                   help="epochs per trial; Hyperband's most epochs per model (default 3)")
    p.add_argument("--batch-size", type=positive_int, default=64, metavar="N", help="global batch size (default 64)")
    p.add_argument("--image-size", type=positive_int, metavar="N",
                   help="square input size (default: the dataset's for small images, else the model's)")
    p.add_argument("--steps-per-epoch", type=positive_int, metavar="N",
                   help="train on the first N batches of each epoch (quick searches)")
    p.add_argument("--validation-steps", type=positive_int, metavar="N",
                   help="validate on the first N batches")
    space = p.add_argument_group("search space")
    space.add_argument("--hp", action="append", default=[], metavar="NAME=VALUES",
                       help="override a hyperparameter (repeatable; see below)")
    space.add_argument("--search-depth", action="store_true",
                       help="search the depth too (ResNet 18/34, 50/101/152, CIFAR 20..110; VGG 11..19)")
    space.add_argument("--search-learning-rate", action="store_true",
                       help="search the learning rate too (the recipe's /30 .. x3, log scale)")
    space.add_argument("--global-only", action="store_true",
                       help="search only width_multiplier (no per-stage / per-module widths)")
    space.add_argument("--option", "-O", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                       help="a builder argument for every trial: -O residual=false; " + KEY_VALUE_HELP)
    space.add_argument("--show-space", action="store_true", help="print the search space and exit")
    run = p.add_argument_group("run")
    run.add_argument("--strategy", choices=STRATEGIES, default="auto",
                     help="auto: MirroredStrategy over all GPUs when there are some")
    run.add_argument("--precision", choices=PRECISIONS, default="auto",
                     help="dtype policy of the trials (auto, as `kerasnets train`: mixed precision "
                          "where the hardware computes it natively)")
    run.add_argument("--train-split", default="train")
    run.add_argument("--val-split", dest="validation_split", help="default: validation, else test")
    run.add_argument("--data-dir", help="tensorflow-datasets data folder")
    run.add_argument("--download", action="store_true", help="let tensorflow-datasets download the dataset")
    run.add_argument("--seed", type=int, help="the search's seed (and the data order's)")
    run.add_argument("--overwrite", action="store_true", help="start over instead of resuming --output's search")
    run.add_argument("--verbose", type=int, choices=(0, 1, 2),
                     help="Keras's fit verbosity (default: 1 on a terminal, else 2)")
    dist = p.add_argument_group("several workers (Keras Tuner's distributed mode; see docs/distributed.md)")
    dist.add_argument("--workers", type=positive_int, metavar="N",
                      help="run the trials on N worker processes of this machine, the GPUs (else the CPU "
                           "cores) split among them; this process serves the oracle")
    dist.add_argument("--role", choices=ROLES,
                      help="a search over several machines sharing --output: one chief serves the oracle "
                           "at --oracle, the workers run the trials")
    dist.add_argument("--oracle", metavar="HOST:PORT",
                      help="with --role: the chief's address; the chief listens there only (no "
                           "authentication: an address of a trusted network)")
    dist.add_argument("--worker-id", metavar="NAME",
                      help="with --role worker: this worker's name (default <host>-<pid>); a worker "
                           "started again under its name gets back the trial it was running")
    dist.add_argument("--oracle-timeout", type=positive_int, default=120, metavar="SECONDS",
                      help="how long a worker waits for the chief, at start and at each call (default 120)")
    p.set_defaults(func=run_tune)


# ---------------------------------------------------------------------------
# --hp NAME=VALUES
# ---------------------------------------------------------------------------


def _number(text):
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise UsageError(message("--hp values", "numbers", text, received=repr(text))) from None


def parse_hp(item: str):
    """``NAME=VALUES`` -> ``(name, override)`` (see the epilog)."""
    name, sep, value = item.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise UsageError(message("--hp", "NAME=VALUES, e.g. --hp width_multiplier=0.5,1.0", item,
                                 received=f"--hp {item!r}"))
    if ".." in value:
        lo, _, rest = value.partition("..")
        hi, _, extra = rest.partition(":")
        override = {"min_value": _number(lo), "max_value": _number(hi)}
        if extra.strip() == "log":
            override["sampling"] = "log"
        elif extra.strip():
            override["step"] = _number(extra)
        if not all(isinstance(override[k], int) for k in ("min_value", "max_value")):
            override["min_value"] = float(override["min_value"])
            override["max_value"] = float(override["max_value"])
        return name, override
    values = [_number(v) for v in value.split(",") if v.strip()]
    return name, values if len(values) > 1 else values[0]


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def _slug(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text).strip("/")).strip("_") or "data"


def _changed(previous, request):
    """The keys whose values differ; a key an older search.json lacks is not compared."""
    return sorted(k for k in set(previous) | set(request)
                  if k in previous and previous.get(k) != request.get(k))


def _check_request(previous, request, output):
    """Resuming a search needs the same model, data, space and training; say so otherwise."""
    changed = _changed(previous or {}, request)
    if changed:
        raise ValueError(
            f"{output} holds a search with other settings ({', '.join(changed)}); "
            "pass --overwrite to start over or another --output. "
            f"Received: {', '.join(f'{k}={request.get(k)!r}' for k in changed)}"
        )


def _progress(tuner, objective_name, max_trials, started):
    """``report(trial, worker="")`` prints one line for a trial that ended."""

    def report(trial, worker=""):
        hypermodel = tuner.hypermodel
        values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        done = sum(t.status != "RUNNING" for t in tuner.oracle.trials.values())
        line = f"[tune] trial {trial.trial_id} ({done}/{max_trials}) {trial.status}"
        if worker:
            line += f" on {worker}"
        if trial.status == "COMPLETED" and trial.score is not None:
            line += f" {objective_name}={trial.score:.4f}"
        try:
            widths, params, macs = hypermodel.model_stats(values)
            from kerasnets.tuning import count_text, widths_text

            line += f" widths={widths_text(widths) or '-'} params={count_text(params)} MACs={count_text(macs)}"
        except (KeyError, ValueError):
            pass
        best = tuner.oracle.get_best_trials(1)
        if best and best[0].score is not None:
            line += f" | best: trial {best[0].trial_id} {best[0].score:.4f}"
        line += f" | {time.time() - started:.0f}s"
        print(line, flush=True)

    return report


def _overrides(items) -> dict:
    """``{name: override}`` of the ``--hp`` options; a name given twice is an error."""
    overrides = {}
    for item in items:
        name, override = parse_hp(item)
        if name in overrides:
            raise UsageError(message("--hp", "given once per name", name, received=f"--hp {name} twice"))
        overrides[name] = override
    return overrides


def _load_data(args, entry):
    """The training split and the first validation split the dataset has."""
    from kerasnets import data

    load = dict(image_size=args.image_size, batch_size=args.batch_size, model=entry.name,
                data_dir=args.data_dir, download=args.download)
    train = data.load(args.dataset, args.train_split, training=True, seed=args.seed, **load)
    load["image_size"] = train.image_size
    _, val = training.first_split(
        args.dataset, [args.validation_split] if args.validation_split else ["validation", "test"],
        training=False, **load,
    )
    return train, val


def _print_report(report, objective_name):
    from kerasnets import tuning

    print()
    print(tuning.format_table(report["results"], objective_name))
    print("(* on the Pareto front: no other trial is better with at most as many MACs; "
          "params exclude BatchNorm statistics and auxiliary heads)")
    best = report["best"]
    if best is not None:
        print(f"Best: trial {best.trial_id}, {objective_name}={best.objective:.4f}, "
              f"builder arguments {json.dumps(best.builder_args)}")
    for key, path in report["paths"].items():
        print(f"  {key:8s} {path}")


def _setup(args):
    """``(entry, builder kwargs, hardware, hypermodel arguments)``, every argument checked."""
    overrides = _overrides(args.hp)
    entry = get_entry(args.model)
    builder_kwargs = model_kwargs(args, entry.name)
    hardware = training.setup_hardware(args.strategy, args.precision, "auto", set_policy=False)
    if args.batch_size % hardware.replicas:
        fail("--batch-size", f"a multiple of the {hardware.replicas} replicas", args.batch_size,
             received=f"batch_size={args.batch_size}")
    hypermodel_args = dict(
        per_block=not args.global_only, depth=args.search_depth,
        learning_rate=args.search_learning_rate, overrides=overrides,
        batch_size=args.batch_size, epochs=args.epochs, model_kwargs=builder_kwargs,
        jit_compile=hardware.jit_compile,
    )
    return entry, builder_kwargs, hardware, hypermodel_args


def _show_space(args, entry, hypermodel_args):
    from kerasnets import tuning

    size = args.image_size or entry.info.default_size
    hypermodel = tuning.WidthHyperModel(
        entry.name, input_shape=(size, size, 3), classes=entry.info.default_classes, **hypermodel_args
    )
    print(hypermodel.describe())
    return 0


# ---------------------------------------------------------------------------
# --output: train's folder rules, the run lock
# ---------------------------------------------------------------------------


def read_search(output):
    """The ``search.json`` record of a folder a search wrote, or None."""
    try:
        with open(os.path.join(output, SEARCH_FILE), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


class _Claim:
    """``--output`` checked as `kerasnets train` checks its folder, then locked for this search.

    The folder must be new, empty (but for the lock and leftovers of killed writes),
    or hold a search: a `kerasnets.files.Manifest` of kind ``"search"``. A folder with
    other files, or the manifest of a run or an export, is refused before anything
    is written. The lock (`kerasnets.files.RunLock`, the one ``train`` takes) refuses
    a folder another kerasnets command holds. Until ``search.json`` is written,
    `abandon` leaves the folder as it was.
    """

    def __init__(self, output):
        received = f"output={output!r}"
        self.output = output
        self.previous = None  # the search.json of the search to resume
        self.manifest = None  # the folder's manifest once this search is recorded in it
        self._old = None  # the manifest the folder had
        if os.path.exists(output):
            if not os.path.isdir(output):
                raise ValueError(f"The output path exists and is not a folder. Received: {received}")
            try:
                self._old = Manifest.read(output)
            except ManifestError as error:
                raise ValueError(f"{error} So kerasnets cannot tell which files it wrote in {output}: it "
                                 f"neither resumes nor overwrites it; choose another --output. "
                                 f"Received: {received}") from None
            if self._old is None:
                if [name for name in os.listdir(output) if name != LOCK_FILE and not is_leftover(name)]:
                    raise ValueError(
                        "The output folder is not empty and holds no kerasnets search (no kerasnets "
                        "manifest); a search writes results.csv, pareto.png, best_model.keras and "
                        "best_args.json there and --overwrite deletes only what kerasnets wrote: choose "
                        f"another --output. Received: {received}")
            elif self._old.kind != MANIFEST_KIND:
                raise ValueError(f"{output} is a kerasnets {self._old.kind} folder, not a search: a search "
                                 f"needs a folder of its own: choose another --output. Received: {received}")
            else:
                self.previous = read_search(output)
        check_writable(output, received=received)
        self.created = [output]  # the folders the lock creates, innermost first
        while not os.path.exists(os.path.dirname(self.created[-1])):
            self.created.append(os.path.dirname(self.created[-1]))
        if os.path.exists(output):
            self.created = []
        self.lock = RunLock(output)
        self._new_lock_file = not os.path.exists(self.lock.path)
        self.lock.acquire()  # another process's lock: its files stay as they are

    def clear(self):
        """--overwrite: removes what an earlier search wrote (what its manifest lists), nothing else."""
        if self._old is None:
            return
        kept = self._old.remove_written()
        self._old, self.previous = None, None
        print(f"--overwrite: removed the previous search in {self.output}"
              + (f"; kept what kerasnets did not write there: {', '.join(kept)}" if kept else "") + ".",
              file=sys.stderr, flush=True)

    def write_search(self, request):
        """Lists the search's files in the folder's manifest, then writes ``search.json``."""
        self.manifest = self._old or Manifest(self.output, MANIFEST_KIND)
        self.manifest.record(*LAYOUT)
        write_json(os.path.join(self.output, SEARCH_FILE), request)

    def record(self, *names):
        """Lists ``names`` (relative paths) in the manifest before they are written."""
        if self.manifest is not None:
            self.manifest.record(*names)

    def record_tuner(self):
        """Lists what keras-tuner (the chief's oracle, every worker) wrote in ``tuner/`` so far."""
        if self.manifest is None:
            return
        folder = os.path.join(self.output, "tuner")
        found = []
        for here, dirs, files in os.walk(folder):
            rel = os.path.relpath(here, self.output).replace(os.sep, "/")
            dirs[:] = [d for d in dirs if not is_leftover(d) and not os.path.islink(os.path.join(here, d))]
            found += [f"{rel}/{d}/" for d in dirs] + [f"{rel}/{f}" for f in files if not is_leftover(f)]
        self.manifest.record(*found)

    def abandon(self):
        """Leaves the folder as it was before, unless a search.json is there now."""
        if read_search(self.output) is None:
            with contextlib.suppress(OSError):
                if self.manifest is not None and self._old is None:
                    self.manifest.remove_written()
                if self._new_lock_file:
                    os.remove(self.lock.path)
                for folder in self.created:
                    os.rmdir(folder)  # only empty ones
        self.release()

    def release(self):
        self.lock.release()


# ---------------------------------------------------------------------------
# A search on one process, or the chief of several workers
# ---------------------------------------------------------------------------


def _load_search(args, entry, builder_kwargs, hypermodel_args):
    """Loads the data and builds the hypermodel; ``(hypermodel, request, train batches, validation
    batches, description)``."""
    from kerasnets import tuning

    train, val = _load_data(args, entry)
    steps = min(args.steps_per_epoch or train.steps_per_epoch, train.steps_per_epoch)
    n = train.image_size
    hypermodel = tuning.WidthHyperModel(
        entry.name, input_shape=image_shape(n),
        classes=train.num_classes, steps_per_epoch=steps, **hypermodel_args,
    )
    request = {
        "model": entry.name, "dataset": str(args.dataset), "image_size": n,
        "tuner": args.tuner, "objective": args.objective, "batch_size": args.batch_size,
        "space": hypermodel.describe(), "options": {k: repr(v) for k, v in builder_kwargs.items()},
        "epochs": args.epochs, "steps_per_epoch": steps, "validation_steps": args.validation_steps,
    }
    train_ds = train.dataset.take(steps) if steps < train.steps_per_epoch else train.dataset
    val_ds = val.dataset.take(args.validation_steps) if args.validation_steps else val.dataset
    description = f"{entry.name} on {args.dataset} ({n}x{n}, {train.num_classes} classes)"
    return hypermodel, request, train_ds, val_ds, description


def _make_tuner(args, hypermodel, hardware, output, **kwargs):
    import keras

    from kerasnets import tuning

    keras.mixed_precision.set_global_policy(hardware.precision)
    return tuning.make_tuner(
        args.tuner, hypermodel, objective=args.objective, max_trials=args.max_trials,
        max_epochs=args.epochs, directory=output, project_name="tuner",
        distribution_strategy=hardware.strategy if hardware.strategy_name != "default" else None,
        seed=args.seed, **kwargs,
    )


def _prepare_search(args, entry, builder_kwargs, hardware, hypermodel_args, claim):
    """Loads the data, records the search in ``search.json`` and builds the tuner;
    ``(tuner, train batches, validation batches)``."""
    hypermodel, request, train_ds, val_ds, description = _load_search(args, entry, builder_kwargs, hypermodel_args)
    if not args.overwrite:
        _check_request(claim.previous, request, claim.output)
    else:
        claim.clear()
    claim.write_search(request)  # before keras-tuner's folder: the folder is a search from now on
    from kerasnets import tuning

    chief = args.workers is not None or args.role == "chief"
    with tuning.chief_environment() if chief else contextlib.nullcontext():
        tuner = _make_tuner(args, hypermodel, hardware, claim.output, overwrite=False, on_failure="raise")
    print(f"Searching {description}: {args.tuner}, {args.max_trials} trials, {args.epochs} epoch(s) each, "
          f"{hardware.describe() if args.workers is None and args.role is None else 'on workers'}")
    print(hypermodel.describe(), flush=True)
    return tuner, train_ds, val_ds


def _verbose(args):
    return args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)


def _finish(tuner, claim, objective_name, failures, total, stopped=None, error=None):
    """Writes and prints the report; the exit status (1 when trials failed or the search broke off)."""
    from kerasnets import tuning

    claim.record_tuner()
    _print_report(tuning.write_report(tuner, claim.output), objective_name)
    if failures or stopped:
        print(f"kerasnets tune: {tuning.TrialsFailedError(failures, total=total, stopped=stopped)}",
              file=sys.stderr)
        return 1
    if error:
        print(f"kerasnets tune: error: {error}", file=sys.stderr)
        return 1
    return 0


def _search(args, tuner, train_ds, val_ds, claim):
    """Runs the search in this process, then writes and prints the report; the exit status."""
    from kerasnets import tuning

    objective_name = tuner.oracle.objective.name
    progress = _progress(tuner, objective_name, args.max_trials, time.time())

    def ended(trial):
        claim.record_tuner()
        progress(trial)

    tuner.trial_callback = ended
    try:
        tuner.search(train_ds, validation_data=val_ds, epochs=args.epochs, verbose=_verbose(args))
    except tuning.TrialsFailedError as error:
        return _finish(tuner, claim, objective_name, error.failures, error.total, error.stopped)
    return _finish(tuner, claim, objective_name, [], 0)


def _serve(args, tuner, server, claim, gpus):
    """The chief: serves the oracle until the workers are done; then the report. The exit status."""
    from kerasnets import tuning

    output = claim.output
    objective_name = tuner.oracle.objective.name
    progress = _progress(tuner, objective_name, args.max_trials, time.time())
    server.start(tuner)
    if server.host in ("127.0.0.1", "::1", "localhost"):
        reach = "this machine only"
    elif server.host in ("0.0.0.0", "::", ""):
        reach = "EVERY network of this machine, without authentication: prefer the address of a trusted one"
    else:
        reach = "gRPC without authentication: keep this port on a trusted network"
    print(f"[tune] the oracle listens on {server.address} ({reach})", flush=True)
    ended = []
    notice = [None]

    def drain():
        while True:
            try:
                trial, worker = server.ended.get_nowait()
            except queue.Empty:
                return
            ended.append(trial.trial_id)
            claim.record_tuner()
            progress(trial, worker)
            for failure in tuning.failed_trials(tuner, [trial.trial_id]):
                print(f"Trial {failure.trial_id} FAILED on {worker or 'a worker'}: {failure.error}",
                      file=sys.stderr, flush=True)

    workers = LocalWorkers(args, server, output, gpus, claim.record) if args.workers else None

    def check():
        drain()
        if workers is not None:
            workers.check()
        if server.all_handed_out():  # say whom the chief waits for, once per change
            ongoing = {w: t for w, t in server.state()[0].items() if workers is None or w not in workers.names}
            if ongoing and sorted(ongoing.items()) != notice[0]:
                notice[0] = sorted(ongoing.items())
                waiting = ", ".join(f"trial {t} on {w}" for w, t in sorted(ongoing.items()))
                print(f"[tune] every trial is handed out; waiting for {waiting}. If a worker is gone, start "
                      "it again with its --worker-id (it gets its trial back), or stop this chief and run "
                      "it again (the trial is handed out anew).", flush=True)

    error = None
    try:
        if not server.has_work():
            print("[tune] every trial of this search has ended; writing the report.")
        else:
            if workers is not None:
                workers.start()
            else:
                print(f"[tune] start the workers with this command's arguments and --role worker "
                      f"--oracle {args.oracle} [--worker-id NAME]", flush=True)
            try:
                server.serve(check=check)
            except WorkersGone as gone:
                error = str(gone)
            drain()
    finally:
        if workers is not None:
            workers.stop()
        server.stop()
    failures = tuning.failed_trials(tuner, set(ended))
    return _finish(tuner, claim, objective_name, failures, len(set(ended)), server.stopped, error)


def _keep_chief_off_gpus():
    """The ids of this machine's GPUs, for the workers; the chief itself computes on the CPU
    (TensorFlow would otherwise reserve every GPU's memory for it at its first operation)."""
    try:
        import tensorflow as tf
    except ImportError:
        return []
    gpus = tf.config.list_physical_devices("GPU")
    with contextlib.suppress(RuntimeError, ValueError):
        tf.config.set_visible_devices([], "GPU")
    if os.environ.get("KERAS_BACKEND") == "jax":
        with contextlib.suppress(Exception):
            import jax

            jax.config.update("jax_platforms", "cpu")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d.strip() for d in visible.split(",") if d.strip()] if visible else [str(i) for i in range(len(gpus))]
    return ids[:len(gpus)]


# ---------------------------------------------------------------------------
# A worker
# ---------------------------------------------------------------------------


def _default_worker_id():
    # Keras Tuner takes any id containing "chief" for the chief.
    return f"{socket.gethostname().replace('chief', 'chf')}-{os.getpid()}"


def _run_worker(args, entry, builder_kwargs, hardware, hypermodel_args, output):
    """Joins the chief at --oracle and runs the trials it hands out; the exit status."""
    import grpc

    from kerasnets import tuning

    worker_id = args.worker_id or _default_worker_id()
    with usage_errors():
        if "chief" in worker_id:
            raise UsageError(message("--worker-id", "a name without 'chief' (Keras Tuner takes such a tuner "
                                     "for the chief)", worker_id, received=f"--worker-id {worker_id}"))
        host, port = tuning.parse_address("--oracle", args.oracle)
        received = f"--oracle {args.oracle}"
        chief_space = tuning.fetch_space(host, port, timeout=args.oracle_timeout, received=received)
        search = read_search(output)
        if search is None:
            raise ValueError(
                f"{output} holds no search ({SEARCH_FILE}, which the chief writes before it serves): a "
                "worker's --output is the chief's, on a file system the machines share. "
                f"Received: output={output!r}")
        hypermodel, request, train_ds, val_ds, description = _load_search(args, entry, builder_kwargs, hypermodel_args)
        import keras_tuner

        space = keras_tuner.HyperParameters()
        hypermodel.declare_hyperparameters(space)
        differences = tuning.space_differences(space, chief_space)
        if differences:
            raise ValueError(
                f"The chief at {args.oracle} searches another space than this worker "
                f"({'; '.join(differences)}): start every worker with the chief's arguments. "
                f"Received: {received}")
        changed = _changed(search, request)
        if changed:
            theirs = ", ".join(f"{k}: {search.get(k)!r} on the chief, {request.get(k)!r} here" for k in changed)
            raise ValueError(
                f"The chief's search in {output} differs from this worker's ({theirs}): start every worker "
                f"with the chief's arguments. Received: {received}")
        if args.batch_size % hardware.replicas:
            fail("--batch-size", f"a multiple of this worker's {hardware.replicas} replicas", args.batch_size,
                 received=f"batch_size={args.batch_size}")

    def report(trial):
        status = trial.status if trial.status != "INVALID" else "FAILED"
        print(f"[tune] {worker_id}: trial {trial.trial_id} {status}", flush=True)

    print(f"Worker {worker_id} of the chief at {args.oracle}: {description}, {hardware.describe()}", flush=True)
    try:
        with tuning.worker_environment(host, port, worker_id, timeout=args.oracle_timeout):
            tuner = _make_tuner(args, hypermodel, hardware, output, overwrite=False, trial_callback=report)
            tuner.search(train_ds, validation_data=val_ds, epochs=args.epochs, verbose=_verbose(args))
    except grpc.RpcError as error:
        print(f"kerasnets tune: error: lost the oracle at {args.oracle} ({error.code().name}: "
              f"{error.details()}); start this worker again once the chief runs.", file=sys.stderr)
        return 1
    print(f"[tune] {worker_id}: the oracle has no more trials; done.", flush=True)
    return 0


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def _role(args):
    """``"single"``, ``"chief"`` or ``"worker"``: the distribution options, checked together."""
    def refuse(flag, value, expected):
        raise UsageError(message(flag, expected, value, received=f"{flag} {value}"))

    if args.role is None:
        if args.oracle is not None:
            refuse("--oracle", args.oracle, "given with --role chief or --role worker")
        if args.worker_id is not None:
            refuse("--worker-id", args.worker_id, "given with --role worker")
        return "chief" if args.workers else "single"
    if args.oracle is None:
        raise UsageError(message("--oracle", f"given with --role {args.role}: HOST:PORT, where the chief "
                                 "listens", None, received=f"--role {args.role} without --oracle"))
    if args.role == "chief" and args.worker_id is not None:
        refuse("--worker-id", args.worker_id, "given with --role worker (the chief is 'chief')")
    if args.role == "worker":
        if args.workers:
            refuse("--workers", args.workers, "given without --role worker (start one worker per "
                   "command; --workers is for the chief's machine)")
        if args.overwrite:
            raise UsageError(message("--overwrite", "left to the chief (it decides whether the search starts "
                                     "over)", True, received="--role worker --overwrite"))
    return args.role


def run_tune(args):
    with usage_errors():
        role = _role(args)
        gpus = _keep_chief_off_gpus() if role == "chief" else []
        entry, builder_kwargs, hardware, hypermodel_args = _setup(args)
        if args.show_space:
            return _show_space(args, entry, hypermodel_args)
        output = os.path.abspath(args.output or os.path.join("runs", f"tune-{entry.name}-{_slug(args.dataset)}"))
    if role == "worker":
        return _run_worker(args, entry, builder_kwargs, hardware, hypermodel_args, output)
    server = None
    with usage_errors():
        if role == "chief":  # bound first: a busy port is an error before any work
            from kerasnets import tuning

            host, port = (tuning.parse_address("--oracle", args.oracle, allow_any_port=True)
                          if args.oracle else ("127.0.0.1", 0))
            server = tuning.OracleServer(host, port, received=f"--oracle {args.oracle or '127.0.0.1:0'}")
        try:
            claim = _Claim(output)
        except BaseException:
            if server is not None:
                server.stop(0)
            raise
    try:
        try:
            with usage_errors():
                tuner, train_ds, val_ds = _prepare_search(args, entry, builder_kwargs, hardware,
                                                          hypermodel_args, claim)
        except BaseException:
            claim.abandon()
            raise
        if server is not None:
            return _serve(args, tuner, server, claim, gpus)
        return _search(args, tuner, train_ds, val_ds, claim)
    finally:
        claim.release()
        if server is not None:
            server.stop(0)
