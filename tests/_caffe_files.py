"""Caffe files for the tests, written here: a ``.caffemodel`` in the real wire format
(a binary protobuf ``NetParameter`` of ``src/caffe/proto/caffe.proto``, encoded by hand,
in its newer ``layer`` or its older ``layers`` form) and the BVLC models' prototxts
(deploy form: the layer names and parameters of BVLC/caffe's ``models/bvlc_googlenet``
and ``models/bvlc_alexnet``), so that OpenCV's Caffe importer can run the same network."""

from __future__ import annotations

import numpy as np

from kerasnets.models.googlenet import AUX_AFTER, STAGES, TABLE1

# --------------------------------------------------------------------------- wire format


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Message:
    """A protobuf message as a list of byte chunks (large arrays are not copied)."""

    def __init__(self):
        self.chunks, self.size = [], 0

    def _add(self, *chunks):
        for c in chunks:
            self.chunks.append(c)
            self.size += len(c)
        return self

    def varint(self, field, value):
        return self._add(_varint(field << 3), _varint(value))

    def bytes(self, field, data):
        data = memoryview(data).cast("B")
        return self._add(_varint(field << 3 | 2), _varint(len(data)), data)

    def string(self, field, text):
        return self.bytes(field, text.encode())

    def message(self, field, message):
        self._add(_varint(field << 3 | 2), _varint(message.size))
        return self._add(*message.chunks)

    def fixed32_each(self, field, values):
        """A repeated float written unpacked: one key per value."""
        key = _varint(field << 3 | 5)
        return self._add(b"".join(key + v.tobytes() for v in np.asarray(values, "<f4").reshape(-1)))

    def write(self, path):
        with open(path, "wb") as f:
            for chunk in self.chunks:
                f.write(chunk)


def blob(array, *, legacy=False, packed=True, double=False):
    """A ``BlobProto``: ``shape`` (field 7), or the legacy ``num/channels/height/width``
    read from the end as Caffe does (an InnerProduct weight ``1 x 1 x out x in``);
    the values packed (field 5), unpacked, or as ``double_data`` (field 8)."""
    array = np.asarray(array)
    m = Message()
    if legacy:
        dims = (1,) * (4 - array.ndim) + array.shape
        for field, dim in zip((1, 2, 3, 4), dims):
            m.varint(field, dim)
    else:
        m.message(7, Message().bytes(1, b"".join(_varint(d) for d in array.shape)))
    if double:
        m.bytes(8, np.ascontiguousarray(array, "<f8"))
    elif packed:
        m.bytes(5, np.ascontiguousarray(array, "<f4"))
    else:
        m.fixed32_each(5, array)
    return m


_V1_TYPE = {"Convolution": 4, "InnerProduct": 14}


def caffemodel(layers, *, form="layer", legacy=None, name="net", **blob_options):
    """A ``NetParameter`` holding ``layers``, ``[(name, type, [weight, bias]), ...]``:
    ``form="layer"`` (field 100, ``LayerParameter``) or ``"layers"`` (field 2,
    ``V1LayerParameter``, whose blobs use the legacy 4-D dimensions by default)."""
    v1 = form == "layers"
    legacy = v1 if legacy is None else legacy
    net = Message().string(1, name)
    for layer_name, kind, arrays in layers:
        layer = Message()
        if v1:
            layer.string(4, layer_name).varint(5, _V1_TYPE[kind])
        else:
            layer.string(1, layer_name).string(2, kind)
        for array in arrays:
            layer.message(6 if v1 else 7, blob(array, legacy=legacy, **blob_options))
        net.message(2 if v1 else 100, layer)
    return net


# --------------------------------------------------------------------------- BVLC GoogLeNet

_BRANCHES = (("1x1", "b1", 1), ("3x3_reduce", "b3_reduce", 1), ("3x3", "b3", 3),
             ("5x5_reduce", "b5_reduce", 1), ("5x5", "b5", 5), ("pool_proj", "pool_proj", 1))


def googlenet_shapes(aux=True, classes=1000):
    """``[(name, type, [weight shape, bias shape])]`` of BVLC GoogLeNet, Caffe's layouts."""
    stem = TABLE1["stem"]
    shapes = [("conv1/7x7_s2", "Convolution", (stem.conv1, 3, 7, 7)),
              ("conv2/3x3_reduce", "Convolution", (stem.conv2_reduce, stem.conv1, 1, 1)),
              ("conv2/3x3", "Convolution", (stem.conv2, stem.conv2_reduce, 3, 3))]
    channels = stem.conv2
    for modules in STAGES:
        for m in modules:
            w = TABLE1[m]
            inputs = {"1x1": channels, "3x3_reduce": channels, "3x3": w.b3_reduce, "5x5_reduce": channels,
                      "5x5": w.b5_reduce, "pool_proj": channels}
            for caffe, column, k in _BRANCHES:
                shapes.append((f"inception_{m}/{caffe}", "Convolution", (getattr(w, column), inputs[caffe], k, k)))
            channels = w.b1 + w.b3 + w.b5 + w.pool_proj
            if aux and m in AUX_AFTER:
                loss = f"loss{AUX_AFTER[m][-1]}"
                a = TABLE1["aux"]
                shapes += [(f"{loss}/conv", "Convolution", (a.proj, channels, 1, 1)),
                           (f"{loss}/fc", "InnerProduct", (a.fc, a.proj * 4 * 4)),
                           (f"{loss}/classifier", "InnerProduct", (classes, a.fc))]
    shapes.append(("loss3/classifier", "InnerProduct", (classes, channels)))
    return [(n, t, [s, s[:1]]) for n, t, s in shapes]


def random_layers(shapes, seed=0, conv_gain=1.2, fc_gain=2.0):
    """Weights drawn for ``shapes`` at a scale that keeps the activations of
    mean-subtracted pixels in range through the network: logits of a standard
    deviation of a few units, neither a flat nor a saturated softmax."""
    rng = np.random.default_rng(seed)
    layers = []
    for name, kind, (w_shape, b_shape) in shapes:
        fan_in = int(np.prod(w_shape[1:]))
        scale = (conv_gain if kind == "Convolution" else fc_gain) / np.sqrt(fan_in)
        if name.startswith("conv1"):
            scale /= 60.0  # pixels are +-128, not +-1
        # Uniform with the same variance: drawn several times faster than a Gaussian
        # (AlexNet's 61M values).
        w = rng.random(w_shape, dtype=np.float32)
        w -= np.float32(0.5)
        w *= np.float32(scale * 12 ** 0.5)
        layers.append((name, kind, [w, rng.uniform(0.0, 0.1, b_shape).astype(np.float32)]))
    return layers


def _conv(name, bottom, top, num, k, stride=1, pad=0, group=1):
    extra = (f" pad: {pad}" if pad else "") + (f" stride: {stride}" if stride > 1 else "") + (
        f" group: {group}" if group > 1 else "")
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{top}" '
            f"convolution_param {{ num_output: {num} kernel_size: {k}{extra} }} }}\n")


def _relu(name, top):
    return f'layer {{ name: "{name}" type: "ReLU" bottom: "{top}" top: "{top}" }}\n'


def _pool(name, bottom, top, kind, k, stride, pad=0):
    return (f'layer {{ name: "{name}" type: "Pooling" bottom: "{bottom}" top: "{top}" pooling_param {{ '
            f"pool: {kind} kernel_size: {k} stride: {stride}" + (f" pad: {pad}" if pad else "") + " } }\n")


def _lrn(name, bottom, top):
    return (f'layer {{ name: "{name}" type: "LRN" bottom: "{bottom}" top: "{top}" '
            "lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }\n")


def _ip(name, bottom, top, num):
    return (f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{top}" '
            f"inner_product_param {{ num_output: {num} }} }}\n")


def _softmax(name, bottom):
    return f'layer {{ name: "{name}" type: "Softmax" bottom: "{bottom}" top: "{name}" }}\n'


def _input(batch, size):
    return f'input: "data"\ninput_shape {{ dim: {batch} dim: 3 dim: {size} dim: {size} }}\n'


def googlenet_prototxt(batch=1, aux=True, classes=1000):
    """BVLC GoogLeNet's deploy net (with train_val's auxiliary classifiers, made deploy
    heads: ``loss1/prob``, ``loss2/prob``; the main head is ``prob``)."""
    stem = TABLE1["stem"]
    text = 'name: "GoogleNet"\n' + _input(batch, 224)
    text += _conv("conv1/7x7_s2", "data", "conv1/7x7_s2", stem.conv1, 7, stride=2, pad=3)
    text += _relu("conv1/relu_7x7", "conv1/7x7_s2")
    text += _pool("pool1/3x3_s2", "conv1/7x7_s2", "pool1/3x3_s2", "MAX", 3, 2)
    text += _lrn("pool1/norm1", "pool1/3x3_s2", "pool1/norm1")
    text += _conv("conv2/3x3_reduce", "pool1/norm1", "conv2/3x3_reduce", stem.conv2_reduce, 1)
    text += _relu("conv2/relu_3x3_reduce", "conv2/3x3_reduce")
    text += _conv("conv2/3x3", "conv2/3x3_reduce", "conv2/3x3", stem.conv2, 3, pad=1)
    text += _relu("conv2/relu_3x3", "conv2/3x3")
    text += _lrn("conv2/norm2", "conv2/3x3", "conv2/norm2")
    text += _pool("pool2/3x3_s2", "conv2/norm2", "pool2/3x3_s2", "MAX", 3, 2)
    bottom = "pool2/3x3_s2"
    for stage, modules in enumerate(STAGES, start=3):
        if stage > 3:
            pool = f"pool{stage}/3x3_s2"
            text += _pool(pool, bottom, pool, "MAX", 3, 2)
            bottom = pool
        for m in modules:
            w, p = TABLE1[m], f"inception_{m}"
            text += _conv(f"{p}/1x1", bottom, f"{p}/1x1", w.b1, 1) + _relu(f"{p}/relu_1x1", f"{p}/1x1")
            text += _conv(f"{p}/3x3_reduce", bottom, f"{p}/3x3_reduce", w.b3_reduce, 1)
            text += _relu(f"{p}/relu_3x3_reduce", f"{p}/3x3_reduce")
            text += _conv(f"{p}/3x3", f"{p}/3x3_reduce", f"{p}/3x3", w.b3, 3, pad=1)
            text += _relu(f"{p}/relu_3x3", f"{p}/3x3")
            text += _conv(f"{p}/5x5_reduce", bottom, f"{p}/5x5_reduce", w.b5_reduce, 1)
            text += _relu(f"{p}/relu_5x5_reduce", f"{p}/5x5_reduce")
            text += _conv(f"{p}/5x5", f"{p}/5x5_reduce", f"{p}/5x5", w.b5, 5, pad=2)
            text += _relu(f"{p}/relu_5x5", f"{p}/5x5")
            text += _pool(f"{p}/pool", bottom, f"{p}/pool", "MAX", 3, 1, pad=1)
            text += _conv(f"{p}/pool_proj", f"{p}/pool", f"{p}/pool_proj", w.pool_proj, 1)
            text += _relu(f"{p}/relu_pool_proj", f"{p}/pool_proj")
            text += (f'layer {{ name: "{p}/output" type: "Concat" bottom: "{p}/1x1" bottom: "{p}/3x3" '
                     f'bottom: "{p}/5x5" bottom: "{p}/pool_proj" top: "{p}/output" }}\n')
            bottom = f"{p}/output"
            if aux and m in AUX_AFTER:
                loss, a = f"loss{AUX_AFTER[m][-1]}", TABLE1["aux"]
                text += _pool(f"{loss}/ave_pool", bottom, f"{loss}/ave_pool", "AVE", 5, 3)
                text += _conv(f"{loss}/conv", f"{loss}/ave_pool", f"{loss}/conv", a.proj, 1)
                text += _relu(f"{loss}/relu_conv", f"{loss}/conv")
                text += _ip(f"{loss}/fc", f"{loss}/conv", f"{loss}/fc", a.fc) + _relu(f"{loss}/relu_fc", f"{loss}/fc")
                text += _ip(f"{loss}/classifier", f"{loss}/fc", f"{loss}/classifier", classes)
                text += _softmax(f"{loss}/prob", f"{loss}/classifier")
    text += _pool("pool5/7x7_s1", bottom, "pool5/7x7_s1", "AVE", 7, 1)
    text += _ip("loss3/classifier", "pool5/7x7_s1", "loss3/classifier", classes)
    return text + _softmax("prob", "loss3/classifier")


# --------------------------------------------------------------------------- BVLC AlexNet

ALEXNET_SHAPES = [  # (name, type, weight shape): conv2, conv4, conv5 in two groups
    ("conv1", "Convolution", (96, 3, 11, 11)), ("conv2", "Convolution", (256, 48, 5, 5)),
    ("conv3", "Convolution", (384, 256, 3, 3)), ("conv4", "Convolution", (384, 192, 3, 3)),
    ("conv5", "Convolution", (256, 192, 3, 3)), ("fc6", "InnerProduct", (4096, 256 * 6 * 6)),
    ("fc7", "InnerProduct", (4096, 4096)), ("fc8", "InnerProduct", (1000, 4096)),
]


def alexnet_shapes():
    return [(n, t, [s, s[:1]]) for n, t, s in ALEXNET_SHAPES]


def alexnet_prototxt(batch=1):
    """BVLC AlexNet's deploy.prototxt: conv -> ReLU -> LRN -> pool (the paper's order)."""
    text = 'name: "AlexNet"\n' + _input(batch, 227)
    text += _conv("conv1", "data", "conv1", 96, 11, stride=4) + _relu("relu1", "conv1")
    text += _lrn("norm1", "conv1", "norm1") + _pool("pool1", "norm1", "pool1", "MAX", 3, 2)
    text += _conv("conv2", "pool1", "conv2", 256, 5, pad=2, group=2) + _relu("relu2", "conv2")
    text += _lrn("norm2", "conv2", "norm2") + _pool("pool2", "norm2", "pool2", "MAX", 3, 2)
    text += _conv("conv3", "pool2", "conv3", 384, 3, pad=1) + _relu("relu3", "conv3")
    text += _conv("conv4", "conv3", "conv4", 384, 3, pad=1, group=2) + _relu("relu4", "conv4")
    text += _conv("conv5", "conv4", "conv5", 256, 3, pad=1, group=2) + _relu("relu5", "conv5")
    text += _pool("pool5", "conv5", "pool5", "MAX", 3, 2)
    text += _ip("fc6", "pool5", "fc6", 4096) + _relu("relu6", "fc6")
    text += _ip("fc7", "fc6", "fc7", 4096) + _relu("relu7", "fc7")
    return text + _ip("fc8", "fc7", "fc8", 1000) + _softmax("prob", "fc8")
