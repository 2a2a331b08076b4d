"""kerasnets: the classic ImageNet CNNs, faithful to their papers, for Keras 3.

>>> import kerasnets
>>> model = kerasnets.ResNet50(weights=None)
>>> kerasnets.list_models("resnet*")[:3]
['resnet18', 'resnet20', 'resnet32']
"""

from kerasnets import _startup  # noqa: E402
from kerasnets._version import __version__  # noqa: E402,F401

if _startup.started_as_cli():  # before TensorFlow is imported: its start-up noise stays out
    _startup.quiet_tensorflow_startup()

from kerasnets.registry import get_model, list_models, register_model  # noqa: E402
from kerasnets.card import ModelCard, model_card  # noqa: E402
from kerasnets.models import *  # noqa: E402,F401,F403
from kerasnets.models import ModelInfo  # noqa: E402
from kerasnets.layers import LocalResponseNormalization  # noqa: E402
from kerasnets.profiling import profile  # noqa: E402
from kerasnets.models import feature_extractor, inference_model  # noqa: E402
from kerasnets.weights import decode_predictions, preprocess_input  # noqa: E402


from kerasnets import models, registry  # noqa: E402

# The public API (`from kerasnets import *`; what the docs list): the names below, then every
# name of kerasnets.models (the builders, ModelInfo, feature_extractor, ...) from its own __all__.
__all__ = [
    "__version__", "get_model", "get_model_info", "list_models", "register_model", "model_card", "ModelCard",
    "LocalResponseNormalization", "profile", "decode_predictions", "preprocess_input",
    "data", "export", "models", "training", "tuning", "weights",
]
__all__ += models.__all__


def get_model_info(name: str) -> ModelInfo:
    """The `ModelInfo` (family, paper, default input size, preprocessing) of a registered model."""
    return registry.get_entry(name).info


# Submodules with heavier imports, loaded on first use: `kerasnets.export.saved_model(...)`
# works after a plain `import kerasnets`. Add a name here to make another one lazy.
_LAZY_SUBMODULES = ("data", "export", "tuning", "training")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"kerasnets.{name}")
    raise AttributeError(f"module 'kerasnets' has no attribute {name!r}")
