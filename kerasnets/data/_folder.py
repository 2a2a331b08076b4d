"""Folders of images: ``root/<class>/<image>`` or ``root/<split>/<class>/<image>``.

Class names are the sorted class folder names (as Keras'
``image_dataset_from_directory``); images inside a class folder may sit in
subfolders. With split folders, the class list comes from ``train`` (or the
requested split when there is no ``train``), and every split must use only those
classes.

A folder without split subfolders has three splits: ``"validation"`` holds
``validation_fraction`` (default 10%) of each class, at least one image for a class
of two or more, chosen by a stable hash of the file's path inside its class folder
(the choice does not depend on listing order or machine); ``"train"`` holds the
rest, ``"all"`` everything.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import sys
import time
import zlib

import tensorflow as tf

from kerasnets.data._common import DataError, Records
from kerasnets.files import write_json

__all__ = ["IMAGE_EXTENSIONS", "SPLIT_FOLDERS", "folder_records", "list_images", "verified_cache_path"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
# Split name -> folder names accepted for it.
SPLIT_FOLDERS = {
    "train": ("train", "training"),
    "validation": ("validation", "val", "valid"),
    "test": ("test", "testing"),
}
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)


def _subfolders(path):
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries
                      if e.is_dir(follow_symlinks=True) and not e.name.startswith("."))


def list_images(folder):
    """Image files under ``folder`` (recursively, through links to folders), sorted, as paths.

    A folder reached twice (a link to a folder above it: a loop) is listed once, so
    its images are not counted again under ever longer paths."""
    found, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        try:
            stat = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (stat.st_dev, stat.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            os.path.join(dirpath, f) for f in sorted(filenames)
            if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
        )
    return found


def _split_folder(root, split):
    """The folder of ``split`` under ``root``, or None."""
    present = {name.lower(): name for name in _subfolders(root)}
    for alias in SPLIT_FOLDERS.get(split, (split,)):
        if alias in present:
            return os.path.join(root, present[alias])
    return None


def _is_split_layout(root):
    names = [n.lower() for n in _subfolders(root)]
    aliases = {a for group in SPLIT_FOLDERS.values() for a in group}
    return bool(names) and all(n in aliases for n in names)


def _check_header(path):
    """None if ``path`` starts like an image, else the reason it is not readable."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as error:
        return f"cannot be read ({type(error).__name__})"
    if not head:
        return "is empty"
    if not any(head.startswith(magic) for magic, _ in _MAGIC):
        return f"is not a JPEG, PNG, GIF or BMP image (starts with {head[:8]!r})"
    return None


def _decode_error(error):
    """TensorFlow's message without its op and function decorations."""
    text = getattr(error, "message", None) or str(error)
    text = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\].*$", "", text, flags=re.S)
    return " ".join(text.split()) or type(error).__name__


def _check_decode(path):
    """None if TensorFlow decodes the whole of ``path`` (as the input pipeline will)."""
    reason = _check_header(path)
    if reason:
        return reason
    try:
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except (tf.errors.OpError, ValueError) as error:  # truncated or corrupt data
        return f"cannot be decoded ({_decode_error(error)})"
    return None


def verified_cache_path(root) -> str:
    """The file that remembers which images of ``root`` decoded (``verify="full"``).

    In ``$KERASNETS_CACHE_DIR``, else ``$XDG_CACHE_HOME/kerasnets``, else
    ``~/.cache/kerasnets``; one file per folder, named by a hash of its path.
    """
    base = os.environ.get("KERASNETS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "kerasnets")
    digest = hashlib.sha1(os.path.realpath(root).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(base, "verified", f"{digest}.json")


def _stamp(path):
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def _read_cache(file):
    try:
        with open(file, encoding="utf-8") as f:
            return dict(json.load(f).get("files", {}))
    except (OSError, ValueError, AttributeError):
        return {}


def _write_cache(file, root, files):
    """Best effort (a read-only home only makes the next run slower), atomic."""
    try:
        write_json(file, {"root": os.path.realpath(root), "files": files}, indent=None)
    except OSError:
        pass


class _Progress:
    """A one-line progress bar on stderr (a start and an end line when not a terminal)."""

    def __init__(self, total, root):
        self.total, self.done, self.start = total, 0, time.time()
        self.tty = sys.stderr.isatty()
        self.label = f"Verifying {total:,} images in {root} (each is decoded once; verified ones are remembered)"
        if not self.tty:
            print(f"{self.label} ...", file=sys.stderr, flush=True)

    def step(self):
        self.done += 1
        if self.tty and (self.done == self.total or self.done % 50 == 0):
            width = 30
            filled = int(width * self.done / self.total)
            print(f"\r{self.label}: [{'=' * filled}{'.' * (width - filled)}] {self.done:,}/{self.total:,}",
                  end="", file=sys.stderr, flush=True)

    def close(self):
        end = "\n" if self.tty else ""
        print(f"{end}Verified {self.total:,} images in {time.time() - self.start:.1f} s.",
              file=sys.stderr, flush=True)


def _check_all_decode(paths, root):
    """The reasons of the images of ``paths`` that do not decode; skips remembered ones."""
    cache_file = verified_cache_path(root)
    cache = _read_cache(cache_file)
    reasons, todo = {}, []
    for path in paths:
        key = os.path.relpath(path, root)
        try:
            stamp = _stamp(path)
        except OSError as error:
            reasons[path] = f"cannot be read ({type(error).__name__})"
            continue
        if cache.get(key) != stamp:
            todo.append((path, key, stamp))
    if todo:
        progress = _Progress(len(todo), root)
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 4)) as pool:
            for (path, key, stamp), reason in zip(todo, pool.map(lambda item: _check_decode(item[0]), todo)):
                progress.step()
                if reason:
                    reasons[path] = reason
                else:
                    cache[key] = stamp
        progress.close()
        _write_cache(cache_file, root, cache)
    return [reasons.get(p) for p in paths]


def _verify(paths, verify, root, *, stopped=False):
    """Raises `DataError` naming the files of ``paths`` that ``verify`` finds unreadable;
    ``stopped``: the check runs because the pipeline stopped on one of them."""
    if not verify:
        return
    if verify == "full":
        reasons = _check_all_decode(paths, root)
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            reasons = list(pool.map(_check_header, paths))
    bad = [(p, r) for p, r in zip(paths, reasons) if r]
    if bad:
        shown = "; ".join(f"{os.path.relpath(p, root)} {r}" for p, r in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        remedy = ("The input pipeline stopped on them (the check before training was verify="
                  "'header' or None): remove or replace them") if stopped else (
                  "Remove or replace them, or pass verify=None (--verify none) to skip this check")
        raise DataError(
            f"{len(bad)} of {len(paths)} image files in {root} are not readable images: "
            f"{shown}{more}. {remedy}. Received: source={root!r}"
        )


def _carve(class_dir, files, split, fraction):
    """The ``split`` part of one class's files (see the module docstring)."""
    if split == "all" or fraction == 0:
        return files
    keyed = sorted(files, key=lambda p: (zlib.crc32(os.path.relpath(p, class_dir).encode()), p))
    count = round(fraction * len(files))
    if len(files) >= 2:
        count = max(count, 1)
    held_out = set(keyed[:count])
    if split == "validation":
        return [p for p in files if p in held_out]
    return [p for p in files if p not in held_out]


def _split_folders(root, split, received):
    """``(class names, {class: folder})`` of a ``root/<split>/<class>/<image>`` folder."""
    split_dir = _split_folder(root, split)
    if split_dir is None:
        available = [s for s in SPLIT_FOLDERS if _split_folder(root, s)]
        raise DataError(
            f"The image folder {root} has no {split!r} split folder. Available splits: "
            f"{', '.join(available)} (folder names accepted: "
            f"{', '.join(SPLIT_FOLDERS.get(split, (split,)))}). {received}"
        )
    train_dir = _split_folder(root, "train") or split_dir
    class_names = _subfolders(train_dir)
    extra = sorted(set(_subfolders(split_dir)) - set(class_names))
    if extra:
        raise DataError(
            f"The {split!r} folder of {root} has class folders that 'train' lacks: "
            f"{', '.join(extra)}. {received}"
        )
    return class_names, {name: os.path.join(split_dir, name) for name in class_names}, train_dir == split_dir


def _class_folders(root, split, validation_fraction, received):
    """``(class names, {class: folder})`` of a ``root/<class>/<image>`` folder."""
    allowed = ("train", "validation", "all") if validation_fraction > 0 else ("train", "all")
    if split not in allowed:
        raise DataError(
            f"The image folder {root} has no split folders (train/, validation/ or val/, "
            f"test/), so its splits are {', '.join(allowed)} (validation: "
            f"validation_fraction={validation_fraction} of each class). {received}"
        )
    class_names = _subfolders(root)
    return class_names, {name: os.path.join(root, name) for name in class_names}, True


def _labelled_paths(class_names, folders, split, carve, defining, root, received):
    """The image paths and their labels; ``carve``: the held-out fraction of each class, or
    None. ``defining``: these folders define the classes (train's, or the only ones), so
    an empty one is refused: a class without images can never be learnt."""
    paths, labels, empty = [], [], []
    for label, name in enumerate(class_names):
        files = list_images(folders[name]) if os.path.isdir(folders[name]) else []
        if not files:
            empty.append(name)
        if carve is not None:
            files = _carve(folders[name], files, split, carve)
        paths.extend(files)
        labels.extend([label] * len(files))
    if defining and empty and len(empty) < len(class_names):
        raise DataError(
            f"The class folder{'s' if len(empty) > 1 else ''} {', '.join(empty)} of {root} "
            f"hold{'' if len(empty) > 1 else 's'} no images (files ending in {', '.join(IMAGE_EXTENSIONS)}): "
            f"a class without images is never learnt, yet takes a label. Add images or remove "
            f"the folder. {received}"
        )
    return paths, labels


def _check_found(root, split, paths, class_names, layout, received):
    if not paths:
        loose = any(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(root))
        hint = " (images directly in the root need a class folder each)" if loose else ""
        raise DataError(
            f"No images found for split {split!r} in {root}{hint}: expected {layout} "
            f"with files ending in {', '.join(IMAGE_EXTENSIONS)}. {received}"
        )
    if len(class_names) < 2:
        raise DataError(
            f"The image folder {root} has {len(class_names)} class folder"
            f"{'' if len(class_names) == 1 else 's'} ({', '.join(class_names)}); "
            f"classification needs at least 2, laid out as {layout}. {received}"
        )


def folder_records(root, split, *, validation_fraction=0.1, verify="header") -> Records:
    """The `Records` of ``split`` of the image folder ``root``."""
    received = f"Received: source={root!r}, split={split!r}"
    if not os.path.isdir(root):
        what = "is a file, not a folder" if os.path.exists(root) else "does not exist"
        raise DataError(f"The image folder {root} {what}. {received}")
    if _is_split_layout(root):
        layout, carve = "root/<split>/<class>/<image>", None
        class_names, folders, defining = _split_folders(root, split, received)
    else:
        layout, carve = "root/<class>/<image>", validation_fraction
        class_names, folders, defining = _class_folders(root, split, validation_fraction, received)
    paths, labels = _labelled_paths(class_names, folders, split, carve, defining, root, received)
    _check_found(root, split, paths, class_names, layout, received)
    _verify(paths, verify, root)

    def make_dataset(shuffle, seed):
        ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int32)))
        if shuffle:
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        return ds.map(
            lambda path, label: (tf.io.read_file(path), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    return Records(
        make_dataset=make_dataset,
        class_names=class_names,
        num_examples=len(paths),
        native_size=None,
        description=f"folder {root}",
        shuffles_fully=True,
        check_decodable=lambda: _verify(paths, "full", root, stopped=True),
    )
