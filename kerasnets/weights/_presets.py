"""The weight presets: published ImageNet weights that kerasnets models reproduce exactly.

A preset is data: where its file is published and its hash, how its arrays map to
kerasnets layers (a converter of `kerasnets.weights._convert`), the builder
arguments its architecture needs (torchvision's ResNet-50 is "v1.5":
``downsample_on="3x3"``), the preprocessing its weights were trained with and the
accuracy its publisher reports. Only exact sources are listed: each conversion is
equal to the source model to float32 rounding (the tests check each one).

Preset names say the source: ``"keras_applications"`` (keras.applications' files),
``"torchvision_v1"`` and ``"torchvision_v2"`` (torchvision's ``IMAGENET1K_V1`` and
``IMAGENET1K_V2`` weights), ``"bvlc"`` (the Berkeley Vision and Learning Center's
Caffe models: GoogLeNet and AlexNet, docs/caffe.md). ``"imagenet"`` is a model's first
preset that fits the requested architecture.
"""

from __future__ import annotations

import dataclasses

from kerasnets.preprocessing import (
    BVLC_ALEXNET,
    BVLC_GOOGLENET,
    IMAGENET_MEAN_STD,
    INCEPTION,
    MEAN_SUBTRACTION,
    Preprocessing,
)
from kerasnets.weights._files import WeightFile

__all__ = ["Preset", "PRESETS"]


@dataclasses.dataclass(frozen=True)
class Preset:
    """Published weights for one registered model.

    Attributes:
        name: the preset's name (``"torchvision_v2"``), unique per model.
        model: the registered model name (``"resnet50"``).
        source: who publishes the weights, and under which name.
        file: the file with the classifier.
        notop_file: the file without it (keras.applications publishes both); when
            ``None``, ``include_top=False`` reads the layers it needs from ``file``.
        converter: the `kerasnets.weights._convert.CONVERTERS` key.
        preprocessing: what the weights expect (RGB ``[0, 255]`` pixels in).
        top1, top5: ImageNet-1k validation accuracy (%) as the source publishes it.
        input_size: the evaluation input size of the published accuracy.
        builder_kwargs: builder arguments the architecture needs.
        fixed_size_top: the classifier flattens a feature map, so ``include_top=True``
            needs ``input_size``.
        license: the weights' license as the source states it.
        free_options: builder options the weights fit whatever their value
            (GoogLeNet's ``aux_classifiers``: the file holds the auxiliary heads,
            which load when the model has them).
    """

    name: str
    model: str
    source: str
    file: WeightFile
    converter: str
    preprocessing: Preprocessing
    top1: float
    top5: float
    input_size: int = 224
    notop_file: WeightFile | None = None
    builder_kwargs: dict = dataclasses.field(default_factory=dict)
    fixed_size_top: bool = False
    license: str = ""
    free_options: tuple = ()

    @property
    def files(self):
        return [f for f in (self.file, self.notop_file) if f is not None]

    def describe(self) -> str:
        kwargs = ", ".join(f"{k}={v!r}" for k, v in self.builder_kwargs.items())
        return (
            f"{self.model}/{self.name}: {self.source}; top-1 {self.top1}% at {self.input_size}px; "
            f"preprocessing {self.preprocessing.name}" + (f"; needs {kwargs}" if kwargs else "")
        )


# keras.applications' files were trained on BGR images with the mean pixel
# subtracted ("caffe" mode). Reversing the input channels of the first convolution
# makes them take RGB with the same per-colour means: kerasnets' MEAN_SUBTRACTION
# (exact: only the channel order changes, and the zero padding is the same zero).
_KA = "https://storage.googleapis.com/tensorflow/keras-applications"
_KA_LICENSE = "MIT (keras.applications)"
_TV = "https://download.pytorch.org/models"
_HF = "https://huggingface.co/timm"
_TV_LICENSE = "BSD-3-Clause (torchvision)"
# torchvision's IMAGENET1K_V2 weights are evaluated at resize 232, crop 224.
_TV_V2_PREPROCESSING = dataclasses.replace(IMAGENET_MEAN_STD, crop_fraction=224 / 232)


def _ka(model, folder, stem, top_hash, notop_hash, converter, top1, top5, *, size=224,
        preprocessing=MEAN_SUBTRACTION, fixed_size_top=False):
    return Preset(
        "keras_applications", model, f"keras.applications {stem.split('_weights')[0]} (published .h5)",
        file=WeightFile(f"{_KA}/{folder}/{stem}.h5", top_hash),
        notop_file=WeightFile(f"{_KA}/{folder}/{stem}_notop.h5", notop_hash),
        converter=converter, preprocessing=preprocessing, top1=top1, top5=top5, input_size=size,
        fixed_size_top=fixed_size_top, license=_KA_LICENSE,
    )


def _tv(model, preset, tv_file, top1, top5, converter, *, hf=None, **extra):
    """torchvision weights: the Hugging Face safetensors mirror (timm ``<arch>.tv_in1k``)
    when its SHA-256 is known, else torchvision's own file, whose name carries the first
    digits of its SHA-256 (what torch.hub checks)."""
    if hf is not None:
        repo, sha256, hash_source = hf
        file = WeightFile(f"{_HF}/{repo}/resolve/main/model.safetensors", sha256,
                          file_name=f"{repo}.safetensors", hash_source=hash_source)
    else:
        file = WeightFile(f"{_TV}/{tv_file}", tv_file.rsplit("-", 1)[1].split(".")[0],
                          hash_source="the file name (torchvision's SHA-256 prefix)")
    enum = {"torchvision_v1": "IMAGENET1K_V1", "torchvision_v2": "IMAGENET1K_V2"}[preset]
    pre = _TV_V2_PREPROCESSING if preset == "torchvision_v2" else IMAGENET_MEAN_STD
    return Preset(preset, model, f"torchvision {model} {enum} ({file.url.split('/')[2]})", file=file,
                  converter=converter, preprocessing=pre, top1=top1, top5=top5,
                  license=_TV_LICENSE, **extra)


_THIRD_PARTY = "reported by public projects that pinned the file; not checked here"
# BVLC's Caffe model zoo: each model's readme.md in BVLC/caffe gives its URL, SHA-1,
# license and centre-crop accuracy. The files are trained on BGR pixels; the converters
# reverse the first convolution's input channels for kerasnets' RGB input.
_BVLC = "http://dl.caffe.berkeleyvision.org"
_BVLC_HASH = "the model's readme.md in BVLC/caffe (sha1)"


def _bvlc(model, stem, sha1, top1, top5, converter, preprocessing, **extra):
    return Preset(
        "bvlc", model, f"BVLC Caffe model zoo {stem} (published .caffemodel)",
        file=WeightFile(f"{_BVLC}/{stem}.caffemodel", sha1, hash_source=_BVLC_HASH),
        converter=converter, preprocessing=preprocessing, top1=top1, top5=top5,
        license="unrestricted use (BVLC)", **extra,
    )
_V15 = {"downsample_on": "3x3"}

_LIST = [
    # ResNet: keras.applications v1 (stride on the 1x1: kerasnets' default) and
    # torchvision's v1.5 (stride on the 3x3).
    _tv("resnet18", "torchvision_v1", "resnet18-f37072fd.pth", 69.758, 89.078, "torchvision_resnet",
        hf=("resnet18.tv_in1k", "694f673df6520a3158624e8a89af086f59923ee4cd7436fe5bc3bc71d295ad81",
            _THIRD_PARTY)),
    _tv("resnet34", "torchvision_v1", "resnet34-b627a593.pth", 73.314, 91.420, "torchvision_resnet"),
    _ka("resnet50", "resnet", "resnet50_weights_tf_dim_ordering_tf_kernels",
        "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626", "keras_resnet", 74.9, 92.1),
    _tv("resnet50", "torchvision_v1", "resnet50-0676ba61.pth", 76.130, 92.862, "torchvision_resnet",
        builder_kwargs=_V15,
        hf=("resnet50.tv_in1k", "5d061a3c593d795bfe682d9b152bafbcf550579873492def3515b46db1189888",
            _THIRD_PARTY)),
    _tv("resnet50", "torchvision_v2", "resnet50-11ad3fa6.pth", 80.858, 95.434, "torchvision_resnet",
        builder_kwargs=_V15),
    _ka("resnet101", "resnet", "resnet101_weights_tf_dim_ordering_tf_kernels",
        "f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21", "keras_resnet", 76.4, 92.8),
    _tv("resnet101", "torchvision_v1", "resnet101-63fe2227.pth", 77.374, 93.546, "torchvision_resnet",
        builder_kwargs=_V15),
    _tv("resnet101", "torchvision_v2", "resnet101-cd907fc2.pth", 81.886, 95.780, "torchvision_resnet",
        builder_kwargs=_V15),
    _ka("resnet152", "resnet", "resnet152_weights_tf_dim_ordering_tf_kernels",
        "100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c", "keras_resnet", 76.6, 93.1),
    _tv("resnet152", "torchvision_v1", "resnet152-394f9c45.pth", 78.312, 94.046, "torchvision_resnet",
        builder_kwargs=_V15),
    _tv("resnet152", "torchvision_v2", "resnet152-f82ba261.pth", 82.284, 96.002, "torchvision_resnet",
        builder_kwargs=_V15),
    # VGG: keras.applications (16, 19) and torchvision (all, with and without BN).
    _tv("vgg11", "torchvision_v1", "vgg11-8a719046.pth", 69.020, 88.628, "torchvision_vgg",
        fixed_size_top=True,
        hf=("vgg11.tv_in1k", "682c023808812148d4e60c76d80ad83dbeaf5d50eb1a952a0b836895003151e5",
            _THIRD_PARTY)),
    _tv("vgg11_bn", "torchvision_v1", "vgg11_bn-6002323d.pth", 70.370, 89.810, "torchvision_vgg",
        fixed_size_top=True),
    _tv("vgg13", "torchvision_v1", "vgg13-19584684.pth", 69.928, 89.246, "torchvision_vgg",
        fixed_size_top=True),
    _tv("vgg13_bn", "torchvision_v1", "vgg13_bn-abd245e5.pth", 71.586, 90.374, "torchvision_vgg",
        fixed_size_top=True),
    _ka("vgg16", "vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels",
        "64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc", "keras_vgg", 71.3, 90.1,
        fixed_size_top=True),
    _tv("vgg16", "torchvision_v1", "vgg16-397923af.pth", 71.592, 90.382, "torchvision_vgg",
        fixed_size_top=True,
        hf=("vgg16.tv_in1k", "57b026918159a6bf9faf8405c3a551903768e7138989d9c6224a14227203fad8",
            _THIRD_PARTY)),
    _tv("vgg16_bn", "torchvision_v1", "vgg16_bn-6c64b313.pth", 73.360, 91.516, "torchvision_vgg",
        fixed_size_top=True),
    _ka("vgg19", "vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels",
        "cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6", "keras_vgg", 71.3, 90.0,
        fixed_size_top=True),
    _tv("vgg19", "torchvision_v1", "vgg19-dcbb9e9d.pth", 72.376, 90.876, "torchvision_vgg",
        fixed_size_top=True),
    _tv("vgg19_bn", "torchvision_v1", "vgg19_bn-c79401a0.pth", 74.218, 91.842, "torchvision_vgg",
        fixed_size_top=True),
    # AlexNet: BVLC's (the paper's two-group network, with Caffe's LRN constants) and
    # torchvision's one-GPU variant (no mirror on the hub: torchvision's file).
    _bvlc("alexnet", "bvlc_alexnet", "9116a64c0fbe4459d18f4bb6b56d647b63920377", 57.1, 80.2, "caffe_alexnet",
          BVLC_ALEXNET, input_size=227, builder_kwargs={"lrn": "caffe"}, fixed_size_top=True),
    _tv("alexnet", "torchvision_v1", "alexnet-owt-7be5be79.pth", 56.522, 79.066, "torchvision_alexnet",
        builder_kwargs={"variant": "torchvision"}, fixed_size_top=True),
    # GoogLeNet: BVLC's, with its two auxiliary classifiers (they load when the model has them).
    _bvlc("googlenet", "bvlc_googlenet", "405fc5acd08a3bb12de8ee5e23a96bec22f08204", 68.7, 88.9,
          "caffe_googlenet", BVLC_GOOGLENET, free_options=("aux_classifiers",)),
    # Inception v3: keras.applications (by layer order; its file has automatic names).
    _ka("inception_v3", "inception_v3", "inception_v3_weights_tf_dim_ordering_tf_kernels",
        "9a0d58056eeedaa3f26cb7ebd46da564", "bcbd6486424b2319ff4ef7d526e38f63", "keras_by_order",
        77.9, 93.7, size=299, preprocessing=INCEPTION),
]

PRESETS: dict[str, tuple[Preset, ...]] = {}
for _preset in _LIST:
    PRESETS[_preset.model] = PRESETS.get(_preset.model, ()) + (_preset,)
del _preset
