"""A width search on two workers against one: ``kerasnets tune --workers 2`` vs ``--workers 1``.

Runs the same search (same seed, so the same trials) as whole ``kerasnets tune``
commands, one after the other and alternating over rounds, so that a machine
busy with other work slows them alike: ``--workers 2`` (each worker one share of
the CPU cores; on two cores, one each), ``--workers 1`` (one worker with every
core) and, unless ``--no-single``, today's one-process search. For each it
prints the wall time, the CPU time of every process (the chief and its workers),
the time spent in training proper (the sum of Keras's per-epoch times from the
logs), and the machine's load average around it.

    python benchmarks/tune_workers.py                  # 6 trials of ResNet-20 on shapes, 1 round
    python benchmarks/tune_workers.py --rounds 2 --trials 6 --steps 100 --epochs 2
    python benchmarks/tune_workers.py --quick          # a minute: a smoke test of the script

The search: ResNet-20 on the built-in ``shapes`` dataset at 32x32, batch 64,
``--steps`` batches per epoch, ``--epochs`` epochs per trial, random search over
its stage widths (width_multiplier fixed at 1). Its data is prepared once in a
temporary folder (or ``--data-dir``).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_EPOCH = re.compile(r"^\s*\d+/\d+ - (\d+(?:\.\d+)?)(m?s) - ")


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _training_seconds(text):
    """The sum of Keras's per-epoch times (``100/100 - 23s - ...``) in a log."""
    total = 0.0
    for line in text.splitlines():
        match = _EPOCH.match(line)
        if match:
            total += float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
    return total


def _run(label, extra, args, data_dir, scratch):
    output = os.path.join(scratch, label.replace(" ", "_"))
    shutil.rmtree(output, ignore_errors=True)
    command = [
        sys.executable, "-m", "kerasnets", "tune", args.model, "--dataset", "shapes", "--data-dir", data_dir,
        "--max-trials", str(args.trials), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
        "--image-size", str(args.image_size), "--steps-per-epoch", str(args.steps), "--validation-steps", "2",
        "--hp", "width_multiplier=1.0", "--precision", "float32", "--seed", "1", "--verbose", "2",
        "--output", output, *extra,
    ]
    load = os.getloadavg()[0]
    cpu, start = _children_cpu(), time.time()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    wall, cpu = time.time() - start, _children_cpu() - cpu
    if done.returncode != 0:
        sys.exit(f"{label} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    logs = done.stdout
    folder = os.path.join(output, "logs")
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
                logs += f.read()
    ends = {}  # worker -> when its last trial ended (s since the search started)
    times = []
    for line in done.stdout.splitlines():
        if line.startswith("[tune] trial "):
            words, seconds = line.split(), float(line.rsplit("| ", 1)[1].rstrip("s"))
            ends[words[6] if words[5] == "on" else ""] = seconds
            times.append(seconds)
    last = sorted(ends.values())
    return dict(label=label, wall=wall, cpu=cpu, training=_training_seconds(logs),
                first=times[0] if times else float("nan"),
                tail=last[-1] - last[-2] if len(last) > 1 else 0.0,
                trials=len(times), load=(load + os.getloadavg()[0]) / 2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60, help="training batches per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--workers", type=int, default=2, help="the workers to compare with one (default 2)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-single", action="store_true", help="leave out the one-process search")
    parser.add_argument("--data-dir", help="a tensorflow-datasets folder holding shapes (default: a temporary one)")
    parser.add_argument("--quick", action="store_true", help="2 trials, 1 epoch of 2 steps: checks the script")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.epochs, args.steps = 2, 1, 2
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    configs = [(f"--workers {args.workers}", ["--workers", str(args.workers)]), ("--workers 1", ["--workers", "1"])]
    if not args.no_single:
        configs.append(("one process", []))
    scratch = tempfile.mkdtemp(prefix="kerasnets-tune-bench-")
    try:
        data_dir = args.data_dir or os.path.join(scratch, "tfds")
        subprocess.run([sys.executable, "-c", "import sys, kerasnets.data as d; "
                        "d.load('shapes', 'test', batch_size=1, data_dir=sys.argv[1])", data_dir],
                       check=True, capture_output=True, cwd=REPO)
        results = {label: [] for label, _ in configs}
        for round_ in range(args.rounds):
            order = configs if round_ % 2 == 0 else configs[::-1]
            for label, extra in order:
                result = _run(label, extra, args, data_dir, scratch)
                results[label].append(result)
                print(f"round {round_ + 1}: {label}: {result['wall']:.0f} s wall, {result['cpu']:.0f} s CPU, "
                      f"load {result['load']:.1f}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\n{args.model}, {args.trials} trials x {args.epochs} epoch(s) x {args.steps} steps of batch "
          f"{args.batch_size} at {args.image_size}x{args.image_size}; {cores} cores; median of "
          f"{args.rounds} round(s)\n")
    print("| configuration | wall s | speed-up vs --workers 1 | CPU s (all processes) | CPU vs --workers 1 "
          "| training s (sum of epochs) | first trial ends at s | a worker idle at the end s | load average |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    median = lambda values: sorted(values)[len(values) // 2]  # noqa: E731
    keys = ("wall", "cpu", "training", "first", "tail", "load")
    rows = {label: {key: median([r[key] for r in runs]) for key in keys} for label, runs in results.items()}
    base = rows["--workers 1"]
    for label, row in rows.items():
        print(f"| {label} | {row['wall']:.0f} | {base['wall'] / row['wall']:.2f}x | {row['cpu']:.0f} | "
              f"{row['cpu'] / base['cpu']:.2f} | {row['training']:.0f} | {row['first']:.0f} | "
              f"{row['tail']:.0f} | {row['load']:.1f} |")


if __name__ == "__main__":
    main()
