"""What every source (tfds, folder, built-in) hands to the pipeline, and the error type."""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import tensorflow as tf

__all__ = ["DataError", "Records"]


class DataError(ValueError):
    """A data source that cannot be used as asked: missing, empty, unreadable, no such split.

    A ``ValueError``, so the CLI reports it as a usage error without a traceback.
    """


@dataclasses.dataclass(frozen=True)
class Records:
    """One split of a source, before decoding.

    Attributes:
        make_dataset: ``make_dataset(shuffle: bool, seed) -> tf.data.Dataset`` of
            ``(encoded image bytes, int32 label)``. With ``shuffle`` the source
            shuffles what is cheap to shuffle (file order); the pipeline adds a
            shuffle buffer.
        class_names: the label names, index = label.
        num_examples: the number of examples in the split.
        native_size: the side of the source's images when all are the same square
            size (shapes, CIFAR), else ``None``.
        description: where the data comes from, for messages.
        shuffles_fully: ``make_dataset(shuffle=True, ...)`` already shuffles the
            whole split (a list of files), so no shuffle buffer is needed.
        check_decodable: for a source of image files, decodes every one (those
            remembered as decoding are skipped) and raises `DataError` naming those
            that do not; None for other sources.
    """

    make_dataset: Callable[[bool, Optional[int]], tf.data.Dataset]
    class_names: list
    num_examples: int
    native_size: Optional[int]
    description: str
    shuffles_fully: bool = False
    check_decodable: Optional[Callable[[], None]] = None
