"""kerasnets.data: the shapes dataset, load(), preprocessing and augmentation.

Nothing downloads: ``shapes`` is generated into a session tmp dir, tfds names run
under ``tfds.testing.mock_data`` and folders are written by the tests.
"""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from _data_fixtures import image_folder, shapes_data_dir, write_id_folder, write_image  # noqa: F401

import kerasnets
import kerasnets.data as kd
from kerasnets.data import _augment
from kerasnets.data.shapes import CLASS_NAMES, generate_split, render_shapes
from kerasnets.preprocessing import IMAGENET_MEAN_STD, INCEPTION, Preprocessing

RAW = Preprocessing("raw")  # identity normalisation: pixel values stay in [0, 255]


def _first(split):
    x, y = next(iter(split.dataset))
    return x.numpy(), y.numpy()


# ---------------------------------------------------------------------------
# The shapes dataset.
# ---------------------------------------------------------------------------


def test_shapes_is_a_registered_tfds_dataset(shapes_data_dir):
    builder = tfds.builder("shapes", data_dir=shapes_data_dir)
    assert builder.is_prepared()
    assert builder.info.features["label"].names == list(CLASS_NAMES)
    assert len(CLASS_NAMES) >= 8
    counts = {name: s.num_examples for name, s in builder.info.splits.items()}
    assert counts == {"train": 10_000, "validation": 2_000, "test": 2_000}
    ds = tfds.load("shapes", split="test", data_dir=shapes_data_dir, as_supervised=True)
    images, labels = next(iter(ds.batch(500)))
    assert images.shape == (500, 32, 32, 3) and images.dtype == tf.uint8
    assert set(labels.numpy()) == set(range(len(CLASS_NAMES)))


def test_shapes_preparation_is_deterministic(shapes_data_dir):
    # The stored validation split is exactly what generate_split produces, and
    # generate_split is a pure function of (split, size, index).
    stored = tfds.load("shapes", split="validation", data_dir=shapes_data_dir, as_supervised=True)
    stored = {(img.tobytes(), int(lbl)) for img, lbl in tfds.as_numpy(stored)}
    generated = {(img.tobytes(), lbl) for _, img, lbl in generate_split("validation", 32, 2000)}
    assert stored == generated
    first = [img for _, img, _ in generate_split("validation", 32, 300)]
    again = list(generate_split("validation", 32, 300))
    assert all(np.array_equal(a[1], b) for a, b in zip(again, first))
    test = next(generate_split("test", 32, 1))[1]
    assert not np.array_equal(test, again[0][1])


def test_shapes_vary_widely_in_scale_and_colour():
    rng = np.random.default_rng(0)
    labels = np.arange(1000) % len(CLASS_NAMES)
    images, coverage = render_shapes(labels, 32, rng, return_coverage=True)
    area = coverage.sum(axis=(1, 2)) / 32 ** 2
    assert (area > 0).all()  # every shape is visible
    assert area.min() < 0.02 and area.max() > 0.4  # a few pixels .. most of the image
    assert (area < 0.03).mean() > 0.1 and (area > 0.2).mean() > 0.1
    # Foreground colour is unrelated to the class: per-class mean colours are close.
    fg = np.array([images[i][coverage[i] > 0.99].mean(axis=0) if (coverage[i] > 0.99).any()
                   else np.full(3, np.nan) for i in range(len(images))])
    per_class = np.array([np.nanmean(fg[labels == c], axis=0) for c in range(len(CLASS_NAMES))])
    assert np.ptp(per_class, axis=0).max() < 40
    assert np.nanstd(fg, axis=0).min() > 50


def test_a_linear_classifier_stays_far_from_solving_shapes():
    # Closed-form ridge regression on the pixels: the best linear fit is poor,
    # while a small CNN reaches high accuracy (benchmarks/README.md has the numbers).
    train = list(generate_split("train", 32, 3000))
    val = list(generate_split("validation", 32, 1000))

    def features(rows):
        x = np.stack([r[1] for r in rows]).reshape(len(rows), -1).astype(np.float32) / 255
        return np.hstack([x, np.ones((len(rows), 1), np.float32)]), np.array([r[2] for r in rows])

    x, y = features(train)
    xv, yv = features(val)
    gram = x.T @ x + 30.0 * np.eye(x.shape[1], dtype=np.float32)
    w = np.linalg.solve(gram, x.T @ np.eye(len(CLASS_NAMES), dtype=np.float32)[y])
    accuracy = float(((xv @ w).argmax(axis=1) == yv).mean())
    assert accuracy < 0.3, accuracy


# ---------------------------------------------------------------------------
# load() on shapes: batches, values, augmentation, determinism.
# ---------------------------------------------------------------------------


def test_load_shapes_training_batches(shapes_data_dir):
    split = kd.load("shapes", "train", batch_size=50, seed=0, data_dir=shapes_data_dir)
    assert isinstance(split, kd.DataSplit)
    assert (split.num_examples, split.num_classes, split.image_size) == (10_000, 10, 32)
    assert split.class_names == list(CLASS_NAMES)
    assert split.training and split.augment == "pad_crop" and split.steps_per_epoch == 200
    assert split.dataset.element_spec[0].shape.as_list() == [None, 32, 32, 3]
    x, y = _first(split)
    assert x.shape == (50, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
    assert y.min() >= 0 and y.max() < 10
    pixels = x * np.array(IMAGENET_MEAN_STD.std) + np.array(IMAGENET_MEAN_STD.mean)
    assert pixels.min() > -1e-3 and pixels.max() < 255 + 1e-3


def test_evaluation_batches_are_the_normalised_images(shapes_data_dir):
    split = kd.load("shapes", "validation", batch_size=64, data_dir=shapes_data_dir)
    assert not split.training and split.augment is None
    assert split.preprocessing.crop_fraction == 1.0  # small images: the whole image
    raw = tfds.load("shapes", split="validation", data_dir=shapes_data_dir, as_supervised=True)
    images, labels = next(iter(raw.batch(64)))
    x, y = _first(split)
    np.testing.assert_array_equal(y, labels.numpy())
    np.testing.assert_allclose(x, IMAGENET_MEAN_STD.normalize_numpy(images.numpy()), atol=1e-4)
    x2, _ = _first(split)  # a second pass gives the same batch
    np.testing.assert_array_equal(x, x2)


def test_augmentation_changes_training_batches(shapes_data_dir):
    common = dict(batch_size=64, shuffle=False, seed=1, data_dir=shapes_data_dir, preprocessing=RAW)
    plain_x, plain_y = _first(kd.load("shapes", "train", augment=None, **common))
    aug_x, aug_y = _first(kd.load("shapes", "train", **common))
    np.testing.assert_array_equal(plain_y, aug_y)
    changed = np.abs(plain_x - aug_x).reshape(64, -1).max(axis=1) > 0
    assert changed.mean() > 0.5


def test_seed_makes_batches_reproducible_and_epochs_differ(shapes_data_dir):
    kwargs = dict(batch_size=32, data_dir=shapes_data_dir, training=True)
    a = kd.load("shapes", "train[:1000]", seed=7, **kwargs)
    b = kd.load("shapes", "train[:1000]", seed=7, **kwargs)
    c = kd.load("shapes", "train[:1000]", seed=8, **kwargs)
    (xa, ya), (xb, yb), (_, yc) = _first(a), _first(b), _first(c)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ya, yc)
    # Iterating again is the next epoch: a new order and new augmentations.
    xa2, ya2 = _first(a)
    assert not np.array_equal(ya, ya2)
    xb2, _ = _first(b)
    np.testing.assert_array_equal(xa2, xb2)


def test_steps_cache_and_drop_remainder(shapes_data_dir):
    split = kd.load("shapes", "test[:100]", batch_size=32, data_dir=shapes_data_dir, cache=True)
    assert split.num_examples == 100 and split.steps_per_epoch == 4
    sizes = [int(x.shape[0]) for x, _ in split.dataset]
    assert sizes == [32, 32, 32, 4]
    cached_x = np.concatenate([x for x, _ in split.dataset])
    plain = kd.load("shapes", "test[:100]", batch_size=32, data_dir=shapes_data_dir)
    np.testing.assert_array_equal(cached_x, np.concatenate([x for x, _ in plain.dataset]))
    dropped = kd.load("shapes", "test[:100]", batch_size=32, data_dir=shapes_data_dir,
                      drop_remainder=True, training=True)
    assert dropped.steps_per_epoch == 3 and len(list(dropped.dataset)) == 3


def test_cached_training_reshuffles_and_reaugments_each_epoch(shapes_data_dir):
    kwargs = dict(batch_size=64, data_dir=shapes_data_dir, training=True, seed=5,
                  preprocessing=RAW)
    split = kd.load("shapes", "train[:128]", cache=True, **kwargs)
    assert split.augment == "pad_crop"
    epochs = [[(x.numpy(), y.numpy()) for x, y in split.dataset] for _ in range(2)]
    assert [len(e) for e in epochs] == [2, 2]
    labels = [np.concatenate([y for _, y in e]) for e in epochs]
    assert sorted(labels[0]) == sorted(labels[1]) and not np.array_equal(labels[0], labels[1])
    uncached = kd.load("shapes", "train[:128]", **kwargs)
    np.testing.assert_array_equal(epochs[0][0][0], _first(uncached)[0])  # same seed, same batch


# ---------------------------------------------------------------------------
# The augmentation and evaluation ops.
# ---------------------------------------------------------------------------


def test_pad_crop_is_a_shift_of_at_most_4_pixels_and_a_flip():
    image = np.random.default_rng(0).integers(1, 256, (32, 32, 3)).astype(np.float32)
    batch = tf.constant(np.repeat(image[None], 24, axis=0))
    out = _augment.pad_crop_batch(batch, tf.constant([3, 0], tf.int64), RAW).numpy()
    padded = np.pad(image, [(4, 4), (4, 4), (0, 0)])
    shifts, flips = set(), set()
    for view in out:
        found = [
            (dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
            if np.array_equal(view, (lambda c: c[:, ::-1] if flip else c)(padded[dy:dy + 32, dx:dx + 32]))
        ]
        assert found, "not a shifted, possibly flipped, copy"
        shifts.add(found[0][:2])
        flips.add(found[0][2])
    assert len(shifts) > 5 and flips == {False, True}
    again = _augment.pad_crop_batch(batch, tf.constant([3, 0], tf.int64), RAW).numpy()
    np.testing.assert_array_equal(out, again)  # stateless: the seed decides


def test_inception_window_area_and_aspect_ratio():
    shape = tf.constant([300, 400])
    windows = np.array([
        _augment.inception_window(shape, tf.constant([i, 1], tf.int64)).numpy() for i in range(150)
    ])
    area = windows[:, 2] * windows[:, 3] / (300 * 400)
    aspect = windows[:, 3] / windows[:, 2]
    whole = area == 1.0  # fallback after 10 failed draws
    assert area.min() >= 0.08 - 0.01 and area.min() < 0.2 and area[~whole].max() > 0.7
    assert (aspect[~whole] > 3 / 4 - 0.02).all() and (aspect[~whole] < 4 / 3 + 0.02).all()
    assert (windows[:, 0] + windows[:, 2] <= 300).all() and (windows[:, 1] + windows[:, 3] <= 400).all()


def test_scale_window_rescales_the_shorter_side_to_256_512():
    sides = np.array([
        _augment.scale_window(tf.constant([300, 400]), tf.constant([i, 2], tf.int64), 224).numpy()[2]
        for i in range(100)
    ])
    rescaled = 224 * 300 / sides  # the shorter side after rescaling
    assert rescaled.min() >= 256 - 2 and rescaled.max() <= 512 + 3
    assert rescaled.min() < 300 and rescaled.max() > 450


def test_preprocess_for_eval_central_crop_geometry():
    image = np.zeros((256, 320, 3), np.uint8)
    image[16:240, 48:272] = 200  # the central 224 square = 0.875 of the shorter side
    out = kd.preprocess_for_eval(image, 224, RAW).numpy()
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 200, atol=1e-3)
    whole = kd.preprocess_for_eval(image, 224, RAW, crop_fraction=1.0).numpy()
    assert whole.min() < 100  # the black border is inside a full-side crop
    normalised = kd.preprocess_for_eval(image, 224, INCEPTION).numpy()
    np.testing.assert_allclose(normalised, (200 - 127.5) / 127.5, atol=1e-5)
    batch = kd.preprocess_for_eval(np.stack([image, image]), 224, RAW).numpy()
    np.testing.assert_allclose(batch, out[None].repeat(2, axis=0), atol=1e-4)
    grey = kd.preprocess_for_eval(image[..., :1], 224, RAW)
    assert grey.shape == (224, 224, 3)


def test_preprocess_for_eval_traces_with_dynamic_sizes():
    # What the export's serving signature does: any image size, one graph.
    fn = tf.function(
        lambda x: kd.preprocess_for_eval(x, 64, INCEPTION),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)],
    )
    for shape in [(2, 100, 80, 3), (1, 64, 64, 3)]:
        out = fn(tf.zeros(shape, tf.uint8))
        assert out.shape == (shape[0], 64, 64, 3)
    same = kd.preprocess_for_eval(np.full((64, 64, 3), 9, np.uint8), 64, RAW, crop_fraction=1.0)
    np.testing.assert_allclose(same.numpy(), 9, atol=1e-4)  # no-op resize is exact


def test_fused_jpeg_decode_and_evaluation_parity(image_folder):
    import glob

    paths = sorted(glob.glob(f"{image_folder}/*/*.jpg"))
    assert paths
    for path in paths[:3]:
        encoded = tf.io.read_file(path)
        full = tf.io.decode_jpeg(encoded, channels=3).numpy()
        # Training crops decode only the window; libjpeg's chroma upsampling may
        # differ at the window's edge, so the pixels are close, not identical.
        fused = _augment.decode_window(encoded, tf.constant([5, 7, 30, 33])).numpy()
        diff = np.abs(fused.astype(int) - full[5:35, 7:40])
        assert fused.shape == (30, 33, 3) and diff.mean() < 2 and np.median(diff) == 0
        # Evaluation batches are exactly what the serving function computes.
        pipeline = _augment.eval_transform(encoded, 40, IMAGENET_MEAN_STD, 0.875).numpy()
        reference = kd.preprocess_for_eval(full, 40, IMAGENET_MEAN_STD).numpy()
        np.testing.assert_array_equal(pipeline, reference)


# ---------------------------------------------------------------------------
# Folders.
# ---------------------------------------------------------------------------


def _ids(split):
    ids, labels = [], []
    for x, y in split.dataset:
        ids.extend(np.rint(x.numpy()[:, 0, 0, 0]).astype(int))
        labels.extend(y.numpy())
    return dict(zip(ids, labels))


def test_folder_without_split_folders_carves_a_stable_validation_split(tmp_path):
    expected = write_id_folder(str(tmp_path / "f"), per_class=10)
    kwargs = dict(batch_size=8, preprocessing=RAW, image_size=16, training=False)
    train = kd.load(str(tmp_path / "f"), "train", **kwargs)
    val = kd.load(str(tmp_path / "f"), "validation", **kwargs)
    every = kd.load(str(tmp_path / "f"), "all", **kwargs)
    assert train.class_names == ["bird", "cat", "dog"]
    assert (train.num_examples, val.num_examples, every.num_examples) == (27, 3, 30)
    train_ids, val_ids = _ids(train), _ids(val)
    assert not set(train_ids) & set(val_ids)
    assert {**train_ids, **val_ids} == expected == _ids(every)  # labels follow the folders
    assert sorted(val_ids.values()) == [0, 1, 2]  # one per class
    assert _ids(kd.load(str(tmp_path / "f"), "validation", **kwargs)) == val_ids


def test_folder_with_split_folders(tmp_path):
    train_ids = write_id_folder(str(tmp_path / "r" / "train"), per_class=4)
    val_ids = write_id_folder(str(tmp_path / "r" / "val"), per_class=2, ids_start=100)
    kwargs = dict(batch_size=4, preprocessing=RAW, image_size=8, training=False)
    assert _ids(kd.load(str(tmp_path / "r"), "validation", **kwargs)) == val_ids
    assert _ids(kd.load(str(tmp_path / "r"), "train", **kwargs)) == train_ids


def test_folder_of_mixed_jpeg_and_png_images(image_folder):
    train = kd.load(image_folder, "all", image_size=40, batch_size=18, seed=0, training=True)
    assert train.augment == "pad_crop" and train.num_classes == 3
    x, y = _first(train)
    assert x.shape == (18, 40, 40, 3) and np.isfinite(x).all()
    big = kd.load(image_folder, "all", image_size=96, batch_size=6, seed=0, augment="scale",
                  training=True)
    assert big.augment == "scale" and _first(big)[0].shape == (6, 96, 96, 3)
    inception = kd.load(image_folder, "all", image_size=96, batch_size=6, seed=0, training=True)
    assert inception.augment == "inception" and _first(inception)[0].shape == (6, 96, 96, 3)
    evaluation = kd.load(image_folder, "all", image_size=96, batch_size=6, training=False)
    assert evaluation.preprocessing.crop_fraction == 0.875


def test_model_sets_size_and_normalisation_per_family(tmp_path):
    # Constant-colour images: after preprocessing every pixel is (colour - mean) / std.
    root = tmp_path / "colours"
    colours = {"blue": (20, 40, 220), "red": (230, 30, 10)}
    for name, colour in colours.items():
        write_image(str(root / name / "a.png"), np.full((60, 90, 3), colour, np.uint8))
    families = {}
    for name in kerasnets.list_models():
        families.setdefault(kerasnets.get_model_info(name).family, name)
    assert families
    for family, name in families.items():
        info = kerasnets.get_model_info(name)
        split = kd.load(str(root), "all", model=name, batch_size=2, training=False)
        x, y = _first(split)
        assert split.image_size == info.default_size and x.shape[1:] == (info.default_size,) * 2 + (3,)
        expected = np.stack([info.preprocessing.normalize_numpy(colours[split.class_names[i]]) for i in y])
        np.testing.assert_allclose(x, expected[:, None, None, :].repeat(x.shape[1], 1).repeat(x.shape[2], 2),
                                   atol=1e-4, err_msg=family)
    # The papers' input sizes, for the families registered so far.
    expected_sizes = {"inception": 299, "resnet": 224, "vgg": 224, "googlenet": 224, "alexnet": 227}
    for family, size in expected_sizes.items():
        if family in families:
            assert kerasnets.get_model_info(families[family]).default_size == size, family
    if "inception" in families:
        assert kerasnets.get_model_info(families["inception"]).preprocessing == INCEPTION


def test_explicit_image_size_and_preprocessing_override_the_model(image_folder):
    split = kd.load(image_folder, "all", model="resnet50", image_size=48,
                    preprocessing="inception", batch_size=4, training=False)
    x, _ = _first(split)
    assert split.image_size == 48 and x.shape == (4, 48, 48, 3)
    assert split.preprocessing.mean == INCEPTION.mean and -1 <= x.min() and x.max() <= 1


# ---------------------------------------------------------------------------
# tensorflow-datasets names (mocked: nothing downloads).
# ---------------------------------------------------------------------------


def test_tfds_names_under_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=12):
        cifar = kd.load("cifar10", "train", batch_size=4, seed=0, data_dir=str(tmp_path))
        x, y = _first(cifar)
        assert cifar.image_size == 32 and cifar.augment == "pad_crop" and cifar.num_classes == 10
        assert x.shape == (4, 32, 32, 3) and y.dtype == np.int32
        nette = kd.load("imagenette", "train", batch_size=3, seed=0, model="inception_v3"
                        if "inception_v3" in kerasnets.list_models() else "resnet18")
        x, _ = _first(nette)
        assert nette.augment == "inception" and x.shape == (3,) + (nette.image_size,) * 2 + (3,)
        assert nette.num_examples == 12 and nette.steps_per_epoch == 4
