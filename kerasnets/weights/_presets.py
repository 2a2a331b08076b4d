"""The weight presets: published ImageNet weights that kerasnets models reproduce exactly.

A preset is data: where its file is published and its hash, how its arrays map to
kerasnets layers (a converter of `kerasnets.weights._convert`), the builder
arguments its architecture needs (torchvision's ResNet-50 is "v1.5":
``downsample_on="3x3"``), the preprocessing its weights were trained with and the
accuracy its publisher reports. Only exact sources are listed: each conversion is
equal to the source model to float32 rounding (the tests check each one).

Each preset is declared once, in its model's `kerasnets.registry.ModelSpec` (``presets=``,
beside the architecture, as timm's ``default_cfgs`` and torchvision's weight enums are),
with the constructors here: `keras_applications_preset`, `torchvision_preset`,
`bvlc_preset`. The spec
gives it the model's name (`Preset.for_model`); `kerasnets.weights.presets_of` reads them
from the registry.

Preset names say the source: ``"keras_applications"`` (keras.applications' files),
``"torchvision_v1"`` and ``"torchvision_v2"`` (torchvision's ``IMAGENET1K_V1`` and
``IMAGENET1K_V2`` weights), ``"bvlc"`` (the Berkeley Vision and Learning Center's
Caffe models: GoogLeNet and AlexNet, docs/caffe.md). ``"imagenet"`` is a model's first
preset that fits the requested architecture.
"""

from __future__ import annotations

import dataclasses

from kerasnets.preprocessing import IMAGENET_MEAN_STD, MEAN_SUBTRACTION, Preprocessing
from kerasnets.weights._files import WeightFile

__all__ = ["Preset", "keras_applications_preset", "torchvision_preset", "bvlc_preset"]


@dataclasses.dataclass(frozen=True)
class Preset:
    """Published weights for one registered model.

    Attributes:
        name: the preset's name (``"torchvision_v2"``), unique per model.
        source: who publishes the weights, and under which name.
        file: the file with the classifier.
        converter: the `kerasnets.weights._convert.CONVERTERS` key.
        preprocessing: what the weights expect (RGB ``[0, 255]`` pixels in).
        top1, top5: ImageNet-1k validation accuracy (%) as the source publishes it.
        input_size: the evaluation input size of the published accuracy.
        notop_file: the file without it (keras.applications publishes both); when
            ``None``, ``include_top=False`` reads the layers it needs from ``file``.
        builder_kwargs: builder arguments the architecture needs.
        fixed_size_top: the classifier flattens a feature map, so ``include_top=True``
            needs ``input_size``.
        license: the weights' license as the source states it.
        free_options: builder options the weights fit whatever their value
            (GoogLeNet's ``aux_classifiers``: the file holds the auxiliary heads,
            which load when the model has them).
        model: the registered model name (``"resnet50"``), set by the model's spec.
    """

    name: str
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
    model: str = ""

    @property
    def files(self):
        return [f for f in (self.file, self.notop_file) if f is not None]

    def for_model(self, model: str) -> "Preset":
        """This preset of the registered ``model`` (what a `ModelSpec` does with its presets)."""
        return self if self.model == model else dataclasses.replace(self, model=model)

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


def keras_applications_preset(folder, stem, top_hash, notop_hash, converter, top1, top5, *, size=224,
                              preprocessing=MEAN_SUBTRACTION, fixed_size_top=False) -> Preset:
    """keras.applications' published ``.h5`` files, with and without the classifier.

    Args:
        folder, stem: the file's folder under keras.applications' storage and its name
            without ``.h5`` (the no-top file adds ``_notop``).
        top_hash, notop_hash: their published MD5s.
        converter, top1, top5: see `Preset`.
        size: the evaluation input size of the published accuracy.
        preprocessing: what the converted weights take (RGB minus the mean pixel by default:
            see above).
        fixed_size_top: see `Preset`.
    """
    return Preset(
        "keras_applications", f"keras.applications {stem.split('_weights')[0]} (published .h5)",
        file=WeightFile(f"{_KA}/{folder}/{stem}.h5", top_hash),
        notop_file=WeightFile(f"{_KA}/{folder}/{stem}_notop.h5", notop_hash),
        converter=converter, preprocessing=preprocessing, top1=top1, top5=top5, input_size=size,
        fixed_size_top=fixed_size_top, license=_KA_LICENSE,
    )


# The SHA-256s of the Hugging Face mirrors: not published by torchvision.
_THIRD_PARTY = "reported by public projects that pinned the file; not checked here"


def torchvision_preset(preset, tv_file, top1, top5, converter, *, hf=None, **extra) -> Preset:
    """torchvision's ``IMAGENET1K_V1`` (``preset="torchvision_v1"``) or ``IMAGENET1K_V2`` weights.

    The file is the Hugging Face safetensors mirror (timm's ``<arch>.tv_in1k``) when its
    SHA-256 is known (``hf=(repo, sha256)``), else torchvision's own ``tv_file``, whose name
    carries the first digits of its SHA-256 (what torch.hub checks). ``extra``: the other
    fields of `Preset` (``builder_kwargs``, ``fixed_size_top``).
    """
    if hf is not None:
        repo, sha256 = hf
        file = WeightFile(f"{_HF}/{repo}/resolve/main/model.safetensors", sha256,
                          file_name=f"{repo}.safetensors", hash_source=_THIRD_PARTY)
    else:
        file = WeightFile(f"{_TV}/{tv_file}", tv_file.rsplit("-", 1)[1].split(".")[0],
                          hash_source="the file name (torchvision's SHA-256 prefix)")
    enum = {"torchvision_v1": "IMAGENET1K_V1", "torchvision_v2": "IMAGENET1K_V2"}[preset]
    pre = _TV_V2_PREPROCESSING if preset == "torchvision_v2" else IMAGENET_MEAN_STD
    architecture = tv_file.split("-")[0]  # torchvision's model name: "resnet50", "vgg11_bn"
    return Preset(preset, f"torchvision {architecture} {enum} ({file.url.split('/')[2]})", file=file,
                  converter=converter, preprocessing=pre, top1=top1, top5=top5,
                  license=_TV_LICENSE, **extra)


# BVLC's Caffe model zoo: each model's readme.md in BVLC/caffe gives its URL, SHA-1,
# license and centre-crop accuracy. The files are trained on BGR pixels; the converters
# reverse the first convolution's input channels for kerasnets' RGB input.
_BVLC = "http://dl.caffe.berkeleyvision.org"
_BVLC_HASH = "the model's readme.md in BVLC/caffe (sha1)"


def bvlc_preset(stem, sha1, top1, top5, converter, preprocessing, **extra) -> Preset:
    """A BVLC Caffe model zoo file (``preset="bvlc"``): ``stem`` is its name without
    ``.caffemodel``, ``sha1`` its published SHA-1; ``extra``: the other fields of `Preset`."""
    return Preset(
        "bvlc", f"BVLC Caffe model zoo {stem} (published .caffemodel)",
        file=WeightFile(f"{_BVLC}/{stem}.caffemodel", sha1, hash_source=_BVLC_HASH),
        converter=converter, preprocessing=preprocessing, top1=top1, top5=top5,
        license="unrestricted use (BVLC)", **extra,
    )
