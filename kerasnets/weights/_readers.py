"""Readers of the published file formats, NumPy only (no torch, no TensorFlow).

* keras.applications' legacy HDF5 weights (Keras 2 layout): root attribute
  ``layer_names`` (possibly chunked as ``layer_names0``, ``layer_names1``, ...), one
  group per layer with attribute ``weight_names``; a full-model file keeps the same
  under ``model_weights``.
* safetensors (the Hugging Face mirrors of torchvision's weights), with
  ``safetensors.numpy``.
* PyTorch's zip checkpoints (``torch.save`` since 1.6: ``<name>/data.pkl`` plus one
  raw buffer per storage), read with a restricted unpickler that builds NumPy arrays
  and refuses every other class, so a checkpoint cannot run code.
"""

from __future__ import annotations

import collections
import pickle
import zipfile

import numpy as np

__all__ = ["read_legacy_h5", "is_legacy_h5", "read_safetensors", "read_torch_zip", "read_state_dict"]


class WeightFileError(ValueError):
    """A weight file that cannot be read as the format it should be."""


def _attr_list(group, name):
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values.extend(group.attrs[f"{name}{i}"])
            i += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def is_legacy_h5(path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            return bool(_attr_list(group, "layer_names"))
    except OSError:
        return False


def read_legacy_h5(path) -> list[tuple[str, list[np.ndarray]]]:
    """``[(layer_name, [arrays in weight_names order]), ...]`` in the file's order;
    layers without weights are left out."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise WeightFileError(f"{path} is not a readable HDF5 file ({error}).") from None
    with f:
        group = f["model_weights"] if "model_weights" in f else f
        names = _attr_list(group, "layer_names")
        if not names:
            raise WeightFileError(
                f"{path} is not a Keras legacy weights file: it has no 'layer_names' attribute."
            )
        layers = []
        try:
            for name in names:
                g = group[name]
                weight_names = _attr_list(g, "weight_names")
                if weight_names:
                    layers.append((name, [np.asarray(g[w], dtype=np.float32) for w in weight_names]))
        except (KeyError, OSError, TypeError) as error:
            raise WeightFileError(f"{path} is truncated or damaged: {error}") from None
    return layers


def read_safetensors(path) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError as error:  # a dependency in setup.cfg; say so if missing
        raise ImportError("Reading .safetensors weights needs `pip install safetensors`.") from error
    try:
        return load_file(str(path))
    except Exception as error:
        raise WeightFileError(f"{path} is not a readable safetensors file ({error}).") from None


_TORCH_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


def _int_tuple(value):
    """``value`` as a tuple of non-negative ints, or None when it is not one."""
    if not isinstance(value, (tuple, list)):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        return None
    return tuple(value)


def _rebuild_tensor(storage, offset, size, stride, *_):
    """``torch._utils._rebuild_tensor_v2``: the view ``(offset, size, stride)`` of ``storage``.

    Every number comes from the file, and ``as_strided`` reads whatever memory they
    point at: the view is refused unless it lies inside the storage (each element's
    index ``offset + sum(i_k * stride_k)`` below ``len(storage)``) before it is made.
    """
    shape, strides = _int_tuple(size), _int_tuple(stride)
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise WeightFileError(f"a tensor's storage is not a storage of the checkpoint ({type(storage).__name__})")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 or shape is None \
            or strides is None or len(shape) != len(strides):
        raise WeightFileError(f"a tensor has an invalid layout (offset {offset!r}, size {size!r}, stride {stride!r})")
    if 0 in shape:
        return np.zeros(shape, storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
    if last >= len(storage):
        raise WeightFileError(
            f"a tensor (offset {offset}, size {shape}, stride {strides}) reaches element {last} of a "
            f"storage of {len(storage)}: the checkpoint is damaged or crafted")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=shape,
                                           strides=[s * storage.itemsize for s in strides], writeable=False)
    return view.copy()


class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self._archive, self._prefix = archive, prefix

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda data, *_: data
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _TORCH_DTYPES:
            return _TORCH_DTYPES[name]
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weight checkpoint.")

    def persistent_load(self, pid):
        _, dtype, key, _location, _numel = pid
        if not any(dtype is known for known in _TORCH_DTYPES.values()) or not isinstance(key, str):
            raise WeightFileError(f"a storage of an unknown type ({dtype!r}, key {key!r})")
        data = self._archive.read(f"{self._prefix}data/{key}")
        return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))


def read_torch_zip(path) -> dict[str, np.ndarray]:
    """A PyTorch zip checkpoint's state dict as NumPy arrays (torch not needed)."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if len(pickles) == 1:
                prefix = pickles[0][: -len("data.pkl")]
                with archive.open(pickles[0]) as f:
                    state = _TorchUnpickler(f, archive, prefix).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError,
            IndexError, AttributeError) as error:  # WeightFileError, raised on a tensor, is a ValueError
        raise WeightFileError(f"{path} is not a readable PyTorch checkpoint ({error}).") from None
    if len(pickles) != 1:
        raise WeightFileError(f"{path} is not a PyTorch zip checkpoint (no data.pkl).")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return {k: np.asarray(v) for k, v in state.items() if isinstance(v, np.ndarray)}


def read_state_dict(path) -> dict[str, np.ndarray]:
    """A torchvision/timm state dict from ``.safetensors`` or a ``.pth`` zip checkpoint."""
    if str(path).endswith(".safetensors"):
        return read_safetensors(path)
    return read_torch_zip(path)
