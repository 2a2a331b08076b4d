"""The input pipeline alone (images/s) next to a model's training consumption, in one process.

The pipeline must not be what limits training: its throughput is measured alone
and divided by the images/s the model trains on when its input costs nothing (one
batch held in memory, repeated). A ratio above 1 means the pipeline keeps up with
the model on this machine. Also measured, side by side:

* the same pipeline with ``cache=True`` (decoded images for ``shapes``, encoded
  files for JPEGs);
* a reference pipeline doing less work (no augmentation): ``tfds.load`` plus
  normalisation for ``shapes`` (tfds caches such a small dataset in memory on its
  own, decoded); Keras' ``image_dataset_from_directory`` (decode the whole file,
  resize) for the JPEG folder;
* ``fit`` fed by the pipeline, as a ratio to ``fit`` on the in-memory batch (on a
  CPU-only machine the pipeline and the model share the cores, so some slowdown
  is expected there; with an accelerator it should be ~1).

Scenarios:

* ``shapes``: ``shapes/32`` training batches (PNG decode, pad-4 crop, flip) for
  ``resnet20``;
* ``jpeg``: a folder of ImageNet-like 500x375 JPEGs written to a temporary
  directory, 224 training batches with the Inception crop fused into the JPEG
  decode (`tf.image.decode_and_crop_jpeg`), for ``resnet50``.

Usage::

    python benchmarks/data_pipeline.py                         # both scenarios
    python benchmarks/data_pipeline.py --scenario jpeg --model resnet18 --batch 64
    python benchmarks/data_pipeline.py --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def _images_per_second(dataset, min_batches, min_seconds, warmup=5):
    """Images/s of a fresh iterator, after ``warmup`` batches (shuffle buffer filled,
    AUTOTUNE settled), over at least ``min_batches`` batches and ``min_seconds``."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    count = batches = 0
    while batches < min_batches or time.perf_counter() - start < min_seconds:
        images, _ = next(iterator)
        count += int(images.shape[0])
        batches += 1
    rate = count / (time.perf_counter() - start)
    del iterator  # stops its background threads before the next contender runs
    return rate


def _compare(datasets, args):
    """Median images/s of each (repeated) dataset; one runs at a time, in turns."""
    rates = [[] for _ in datasets]
    for _ in range(args.repeats):
        for rate, dataset in zip(rates, datasets):
            rate.append(_images_per_second(dataset, args.batches, args.seconds))
    return [statistics.median(r) for r in rates]


def _fit_images_per_second(model, dataset, steps, batch_size):
    model.fit(dataset.take(2), epochs=1, verbose=0)  # build, trace, warm up
    start = time.perf_counter()
    model.fit(dataset.take(steps), epochs=1, verbose=0)
    return steps * batch_size / (time.perf_counter() - start)


def _write_jpeg_folder(root, count, classes=4, size=(375, 500)):
    """ImageNet-like JPEGs: smooth random content (realistic file sizes), quality 90."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        folder = os.path.join(root, f"class{i % classes}")
        os.makedirs(folder, exist_ok=True)
        small = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize(size[::-1], Image.BILINEAR)
        noise = rng.normal(0, 12, (size[0], size[1], 3))
        array = np.clip(np.asarray(image, np.float64) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(array).save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)
    return root


def _reference(scenario, source, image_size, batch_size, data_dir):
    import keras
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from kerasnets.preprocessing import IMAGENET_MEAN_STD as P

    mean, std = tf.constant(P.mean), tf.constant(P.std)
    if scenario == "shapes":
        ds = tfds.load("shapes", split="train", data_dir=data_dir, as_supervised=True,
                       shuffle_files=True)
        ds = ds.shuffle(10_000).map(
            lambda x, y: ((tf.cast(x, tf.float32) - mean) / std, y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).repeat()
    ds = keras.utils.image_dataset_from_directory(
        source, image_size=(image_size, image_size), batch_size=batch_size, verbose=False
    )
    ds = ds.map(lambda x, y: ((x - mean) / std, y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE).repeat()


def run_scenario(scenario, args, workdir):
    import keras
    import tensorflow as tf

    import kerasnets
    import kerasnets.data

    if scenario == "shapes":
        source, model_name, image_size = "shapes", args.model or "resnet20", 32
        batch_size = args.batch or 128
    else:
        source = _write_jpeg_folder(os.path.join(workdir, "jpegs"), args.jpegs)
        model_name, image_size = args.model or "resnet50", None
        batch_size = args.batch or 32
    def load(cache=False):
        return kerasnets.data.load(
            source, "train" if scenario == "shapes" else "all", training=True,
            batch_size=batch_size, image_size=image_size, model=model_name,
            data_dir=args.data_dir, drop_remainder=True, seed=None, cache=cache,
        )

    split = load()
    image_size = split.image_size
    pipeline, cached, reference = _compare(
        [split.dataset.repeat(), load(cache=True).dataset.repeat(),
         _reference(scenario, source, image_size, batch_size, args.data_dir)],
        args,
    )

    model = kerasnets.get_model(model_name, classes=split.num_classes,
                                input_shape=(image_size, image_size, 3))
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy")
    x, y = next(iter(split.dataset))
    in_memory = tf.data.Dataset.from_tensors((x, y)).repeat()
    model_alone = _fit_images_per_second(model, in_memory, args.model_steps, batch_size)
    fed = _fit_images_per_second(model, split.dataset.repeat(), args.model_steps, batch_size)
    return {
        "scenario": scenario,
        "source": source if scenario == "shapes" else f"{args.jpegs} JPEGs 500x375",
        "augment": split.augment,
        "image_size": image_size,
        "batch_size": batch_size,
        "model": model_name,
        "pipeline_images_per_s": round(pipeline, 1),
        "pipeline_cached_images_per_s": round(cached, 1),
        "reference_pipeline_images_per_s": round(reference, 1),
        "pipeline_vs_reference": round(pipeline / reference, 2),
        "pipeline_cached_vs_reference": round(cached / reference, 2),
        "model_training_images_per_s": round(model_alone, 1),
        "pipeline_vs_model": round(pipeline / model_alone, 2),
        "fit_with_pipeline_images_per_s": round(fed, 1),
        "fit_with_pipeline_vs_in_memory": round(fed / model_alone, 2),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=("shapes", "jpeg", "all"), default="all")
    parser.add_argument("--model", default=None, help="default: resnet20 (shapes), resnet50 (jpeg)")
    parser.add_argument("--batch", type=int, default=None, help="default: 128 (shapes), 32 (jpeg)")
    parser.add_argument("--batches", type=int, default=20, help="at least this many batches per timing")
    parser.add_argument("--seconds", type=float, default=4.0, help="and at least this long")
    parser.add_argument("--repeats", type=int, default=3, help="timings per pipeline (median)")
    parser.add_argument("--model-steps", type=int, default=5, help="training steps timed")
    parser.add_argument("--jpegs", type=int, default=256, help="JPEG files written")
    parser.add_argument("--data-dir", default=None, help="tfds data_dir (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)

    import tensorflow as tf

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs (load average {load:.1f}), "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    scenarios = ("shapes", "jpeg") if args.scenario == "all" else (args.scenario,)
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        args.data_dir = args.data_dir or os.path.join(workdir, "tfds")
        for scenario in scenarios:
            result = run_scenario(scenario, args, workdir)
            results.append(result)
            width = max(len(k) for k in result)
            print()
            for key, value in result.items():
                print(f"  {key:<{width}}  {value}")
    for result in results:
        verdict = "keeps up with" if result["pipeline_vs_model"] >= 1 else "LIMITS"
        print(f"\n{result['scenario']}: the pipeline {verdict} {result['model']} training "
              f"({result['pipeline_vs_model']}x its images/s).")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
