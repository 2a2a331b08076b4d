"""The main job over several seeds: what `kerasnets train resnet20` reaches on `shapes`.

Runs the default command once per seed, each in its own process and run folder, and
prints one row per seed (test top-1, the training/validation accuracy per epoch and
the run's training seconds), then the lowest test accuracy: the level the learning check in
``tests/test_train_cli.py`` may assert, less a margin.

    python benchmarks/main_job_seeds.py                       # seeds 11-15, two at a time
    python benchmarks/main_job_seeds.py --seeds 11 12 --parallel 1
    python benchmarks/main_job_seeds.py -- --set warmup=constant --set warmup_epochs=0

Arguments after ``--`` go to ``kerasnets train`` as they are (a recipe override to
compare). With ``--parallel N`` the runs share the cores, each with
``cores / N`` TensorFlow threads; the accuracy of a seeded run does not depend on it,
its wall time does. Runs are kept in ``--output`` (default ``runs/main_job_seeds``), and
a run already complete there is read, not repeated.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time


def _run_one(seed, output, extra, threads):
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1")
    folder = os.path.join(output, f"seed{seed}")
    command = [sys.executable, "-m", "kerasnets", "train", "resnet20", "--seed", str(seed),
               "--no-export", "--verbose", "2", "--output", folder, *extra]
    log = open(os.path.join(output, f"seed{seed}.log"), "w")
    return folder, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log


def _row(seed, folder):
    with open(os.path.join(folder, "run.json")) as f:
        run = json.load(f)
    with open(os.path.join(folder, "log.csv")) as f:
        epochs = list(csv.DictReader(f))
    curve = " ".join(f"{float(e['accuracy']):.3f}/{float(e['val_accuracy']):.3f}" for e in epochs)
    return dict(seed=seed, status=run.get("status"), test=run.get("test", {}).get("accuracy"),
                curve=curve, train_seconds=run.get("train_seconds"))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14, 15])
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (default 2)")
    parser.add_argument("--output", default=os.path.join("runs", "main_job_seeds"))
    args = parser.parse_args(argv)
    if args.parallel < 1:
        parser.error(f"--parallel must be a positive integer. Received: --parallel={args.parallel}")
    os.makedirs(args.output, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // args.parallel)

    pending, running, rows = list(args.seeds), [], []
    while pending or running:
        while pending and len(running) < args.parallel:
            seed = pending.pop(0)
            folder = os.path.join(args.output, f"seed{seed}")
            try:
                with open(os.path.join(folder, "run.json")) as f:
                    done = json.load(f).get("status") == "complete"
            except OSError:
                done = False
            if done:
                rows.append(_row(seed, folder))
                continue
            running.append((seed, *_run_one(seed, args.output, extra, threads)))
            print(f"seed {seed}: started ({threads} thread(s)), log in {args.output}/seed{seed}.log",
                  flush=True)
        for item in list(running):
            seed, folder, proc, log = item
            if proc.poll() is None:
                continue
            log.close()
            running.remove(item)
            if proc.returncode != 0:
                print(f"seed {seed}: kerasnets train exited {proc.returncode}; see its log", flush=True)
                continue
            rows.append(_row(seed, folder))
            print(f"seed {seed}: test top-1 {rows[-1]['test']:.4f}", flush=True)
        time.sleep(2)

    print("\n| seed | test top-1 | train / validation accuracy per epoch | train seconds |")
    print("|---|---|---|---|")
    for row in sorted(rows, key=lambda r: r["seed"]):
        print(f"| {row['seed']} | {row['test']:.2%} | {row['curve']} | {row['train_seconds']:.0f} |")
    if rows:
        print(f"\nlowest test top-1: {min(r['test'] for r in rows):.2%} over {len(rows)} seed(s)")
    return 0 if len(rows) == len(args.seeds) else 1


if __name__ == "__main__":
    sys.exit(main())
