"""Caffe's ``.caffemodel`` files, read with NumPy alone (no Caffe, no compiled schema).

A ``.caffemodel`` is a binary protobuf ``NetParameter`` (``src/caffe/proto/caffe.proto``,
proto2). This module walks the protobuf wire format (varint keys; length-delimited
messages, strings and packed arrays) and reads only what weights need:

* ``NetParameter``: ``name`` = 1, ``layers`` = 2 (``V1LayerParameter``, files written
  before 2015, such as the BVLC releases' Caffe commits), ``layer`` = 100
  (``LayerParameter``). A file may hold either; both are read.
* ``LayerParameter``: ``name`` = 1, ``type`` = 2 (a string, ``"Convolution"``),
  ``blobs`` = 7. ``V1LayerParameter``: ``name`` = 4, ``type`` = 5 (an enum:
  ``CONVOLUTION`` = 4, ``INNER_PRODUCT`` = 14), ``blobs`` = 6; its field 1 holds a
  ``V0LayerParameter`` in files older still, which Caffe's own tools upgrade.
* ``BlobProto``: ``shape`` = 7 (``BlobShape.dim`` = 1, int64, packed or not), ``data`` = 5
  (float32, packed or not), ``double_data`` = 8 (float64), and the legacy 4-D
  ``num`` = 1, ``channels`` = 2, ``height`` = 3, ``width`` = 4. Caffe reads legacy
  dimensions from the end: an InnerProduct weight is stored as ``1 x 1 x out x in``
  and a bias as ``1 x 1 x 1 x out`` (`state_dict` drops the leading ones).

Anything else in the file (the layers' settings, training state) is skipped by its
length. A file that is not a ``NetParameter`` (a field number or wire type that a
``NetParameter`` never has, a length past the end of the file) raises one
`WeightFileError` naming the file, before any array reaches a model.
"""

from __future__ import annotations

import math
import mmap
from typing import NamedTuple

import numpy as np

from kerasnets.weights._readers import WeightFileError

__all__ = ["CaffeLayer", "read_caffemodel", "state_dict", "read_state_dict"]

# Wire types.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
# NetParameter's fields and the wire types they may have (4 and 8 are the
# deprecated input shapes, 3 the input names, 5..7 flags and the state).
_NET_FIELDS = {1: (_LEN,), 2: (_LEN,), 3: (_LEN,), 4: (_VARINT, _LEN), 5: (_VARINT,), 6: (_LEN,),
               7: (_VARINT,), 8: (_LEN,), 100: (_LEN,)}
# V1LayerParameter.LayerType values of the layers that hold weights, as the
# LayerParameter type strings.
_V1_TYPES = {4: "Convolution", 14: "InnerProduct"}
# The ranks Caffe gives each blob of a layer type (legacy 4-D blobs are read from the end).
_BLOB_RANKS = {"Convolution": (4, 1), "InnerProduct": (2, 1)}


class CaffeLayer(NamedTuple):
    """One layer of a ``.caffemodel`` that holds weights.

    Attributes:
        name: the layer's name (``"conv1/7x7_s2"``).
        type: its type as ``LayerParameter`` writes it (``"Convolution"``,
            ``"InnerProduct"``; a V1 enum the reader does not name is ``"V1:<number>"``).
        blobs: its arrays, float32, in the file's shapes (a legacy blob is 4-D).
    """

    name: str
    type: str
    blobs: list


class _Damaged(Exception):
    """Raised inside the walk; `read_caffemodel` turns it into one `WeightFileError`."""


def _varint(buf, pos, end):
    result = shift = 0
    while True:
        if pos >= end:
            raise _Damaged(f"a number runs past the end of its message at byte {pos:,}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Damaged(f"a number longer than 10 bytes at byte {pos:,}")


def _field(buf, pos, end):
    """The field that starts at ``pos``: ``(number, wire_type, value, next_pos)``, where
    ``value`` is a varint's number, a length-delimited field's ``(start, stop)``, or the
    offset of a fixed 32- or 64-bit value."""
    start = pos
    key, pos = _varint(buf, pos, end)
    number, wire = key >> 3, key & 7
    if number == 0:
        raise _Damaged(f"field number 0 at byte {start:,}")
    if wire == _VARINT:
        value, pos = _varint(buf, pos, end)
        return number, wire, value, pos
    if wire == _LEN:
        length, pos = _varint(buf, pos, end)
        if pos + length > end:
            raise _Damaged(f"a field of {length:,} bytes at byte {start:,} runs past the end of its "
                           f"message (byte {end:,})")
        return number, wire, (pos, pos + length), pos + length
    if wire in (_I32, _I64):
        size = 4 if wire == _I32 else 8
        if pos + size > end:
            raise _Damaged(f"a {size * 8}-bit value at byte {start:,} runs past the end of its message")
        return number, wire, pos, pos + size
    raise _Damaged(f"wire type {wire} (field {number}) at byte {start:,}, which Caffe files never use")


def _fields(buf, pos, end):
    """Yields ``(number, wire_type, value, start)`` for each field of a message."""
    while pos < end:
        number, wire, value, next_pos = _field(buf, pos, end)
        yield number, wire, value, pos
        pos = next_pos


def _string(buf, span):
    try:
        return bytes(buf[span[0]:span[1]]).decode("utf8")
    except UnicodeDecodeError:
        raise _Damaged(f"a name that is not UTF-8 at byte {span[0]:,}") from None


def _dims(buf, wire, value):
    """``BlobShape.dim``: packed varints, or one unpacked varint."""
    if wire == _VARINT:
        return [value]
    if wire != _LEN:
        raise _Damaged(f"a blob dimension of wire type {wire}")
    dims, pos = [], value[0]
    while pos < value[1]:
        dim, pos = _varint(buf, pos, value[1])
        dims.append(dim)
    return dims


def _values(buf, wire, value, at, end, dtype):
    """A chunk of ``data`` (float32) or ``double_data`` (float64) and where the next field
    starts: a packed array, or a run of unpacked values (one key each) read at once."""
    itemsize = np.dtype(dtype).itemsize
    if wire == _LEN:
        start, stop = value
        if (stop - start) % itemsize:
            raise _Damaged(f"a packed array of {stop - start:,} bytes at byte {start:,} is not a whole "
                           f"number of {itemsize}-byte values")
        return np.frombuffer(buf, dtype, (stop - start) // itemsize, start), stop
    if wire != (_I32 if itemsize == 4 else _I64) or value != at + 1:
        raise _Damaged(f"blob values of wire type {wire} at byte {at:,}")
    record = 1 + itemsize
    count = (end - at) // record
    records = np.frombuffer(buf, np.uint8, count * record, at).reshape(count, record)
    differ = np.flatnonzero(records[:, 0] != buf[at])
    count = int(differ[0]) if differ.size else count
    values = np.ascontiguousarray(records[:count, 1:]).view(dtype).reshape(-1)
    return values, at + count * record


def _blob(buf, start, end):
    """A ``BlobProto``: its values as float32, in the file's shape."""
    shape, legacy, chunks = None, {}, []
    pos = start
    while pos < end:
        number, wire, value, next_pos = _field(buf, pos, end)
        if number == 7 and wire == _LEN:  # BlobShape
            shape = tuple(d for f, w, v, _ in _fields(buf, *value) if f == 1 for d in _dims(buf, w, v))
        elif number in (1, 2, 3, 4) and wire == _VARINT:  # num, channels, height, width
            legacy[number] = value
        elif number in (5, 8):  # data, double_data
            values, next_pos = _values(buf, wire, value, pos, end, np.float32 if number == 5 else np.float64)
            chunks.append(values)
        pos = next_pos
    data = np.concatenate(chunks) if len(chunks) > 1 else chunks[0] if chunks else np.zeros(0, np.float32)
    if shape is None:
        shape = tuple(legacy.get(f, 0) for f in (1, 2, 3, 4)) if legacy else (data.size,)
    count = math.prod(shape)
    if count != data.size:
        raise _Damaged(f"a blob of shape {shape} at byte {start:,} holds {data.size:,} values, not {count:,}")
    return data.astype(np.float32).reshape(shape)


def _layer(buf, start, end, v1):
    """``(name, type, blobs)`` of a ``LayerParameter`` (``v1=False``) or a ``V1LayerParameter``."""
    name_field, type_field, blobs_field = (4, 5, 6) if v1 else (1, 2, 7)
    name, kind, blobs = "", "", []
    for number, wire, value, at in _fields(buf, start, end):
        if number == name_field and wire == _LEN:
            name = _string(buf, value)
        elif number == type_field and wire == (_VARINT if v1 else _LEN):
            kind = _V1_TYPES.get(value, f"V1:{value}") if v1 else _string(buf, value)
        elif number == blobs_field and wire == _LEN:
            blobs.append(_blob(buf, *value))
        elif v1 and number == 1 and wire == _LEN:
            raise _Damaged(f"a V0 layer (Caffe's layout before 2014) at byte {at:,}; upgrade the file "
                           "with Caffe's tools/upgrade_net_proto_binary first")
    return name, kind, blobs


def read_caffemodel(path) -> dict[str, CaffeLayer]:
    """The layers of a ``.caffemodel`` that hold weights, by name, in the file's order.

    Raises:
        WeightFileError: the file cannot be read, is not a Caffe ``NetParameter``, is
            truncated, or holds no weights.
    """
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if size == 0:
                raise WeightFileError(f"{path} is empty: not a Caffe model (.caffemodel).")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                layers = _walk(mapped, size, path)
    except OSError as error:
        raise WeightFileError(f"{path} cannot be read as a Caffe model ({error}).") from None
    return layers


def _walk(buf, size, path):
    layers, problem = {}, None
    try:
        for number, wire, value, at in _fields(buf, 0, size):
            if number not in _NET_FIELDS or wire not in _NET_FIELDS[number]:
                raise _Damaged(f"field {number} of wire type {wire} at byte {at:,}, which a NetParameter "
                               "does not have")
            if number in (2, 100):
                name, kind, blobs = _layer(buf, *value, v1=number == 2)
                if not blobs:
                    continue
                if name in layers:
                    raise _Damaged(f"two layers with weights are named {name!r}")
                layers[name] = CaffeLayer(name, kind, blobs)
    except _Damaged as error:
        problem = str(error)  # raised below, so that no view of the mapped file outlives it
    if problem is not None:
        raise WeightFileError(
            f"{path} is not a Caffe model (a binary NetParameter, .caffemodel), or it is truncated "
            f"or damaged: {problem}. Nothing was loaded."
        )
    if not layers:
        raise WeightFileError(f"{path} holds no layers with weights: it is not a Caffe model (.caffemodel) "
                              "with trained weights (a .prototxt, or a NetParameter without blobs).")
    return layers


def _to_rank(array, rank, name):
    """A legacy 4-D blob as the ``rank``-D array Caffe reads from its last dimensions."""
    shape = array.shape
    while array.ndim > rank and array.shape[0] == 1:
        array = array.reshape(array.shape[1:])
    if array.ndim != rank:
        raise WeightFileError(f"layer {name!r} has a blob of shape {shape}, not a {rank}-D array")
    return array


def state_dict(layers: dict[str, CaffeLayer]) -> dict[str, np.ndarray]:
    """``{"<layer>.weight": ..., "<layer>.bias": ...}``: a convolution's weight
    ``(out, in / group, kh, kw)``, an InnerProduct's ``(out, in)``, biases ``(out,)``
    (PyTorch's layouts, which Caffe's are). Other layers keep their blobs as
    ``"<layer>.<i>"``."""
    state = {}
    for layer in layers.values():
        ranks = _BLOB_RANKS.get(layer.type)
        if ranks is None or not 1 <= len(layer.blobs) <= 2:
            for i, blob in enumerate(layer.blobs):
                state[f"{layer.name}.{i}"] = blob
            continue
        for key, blob, rank in zip(("weight", "bias"), layer.blobs, ranks):
            state[f"{layer.name}.{key}"] = _to_rank(blob, rank, layer.name)
    return state


def read_state_dict(path) -> dict[str, np.ndarray]:
    """`read_caffemodel` then `state_dict`; an error names ``path``."""
    layers = read_caffemodel(path)
    try:
        return state_dict(layers)
    except WeightFileError as error:
        raise WeightFileError(f"{path}: {error}.") from None
