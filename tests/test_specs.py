"""The model specs: each registered variant declared once, and everything read from it.

The widths are the papers' numbers, typed here as literals: He et al. (2015) Table 1,
Simonyan & Zisserman (2014) Table 1, Szegedy et al. (2014) Table 1, and the released
Inception v3 (keras.applications' mixed0 .. mixed10 channels).
"""

from __future__ import annotations

import ast
import inspect
import json
import pathlib
import re

import pytest

import kerasnets
import kerasnets.tuning as kt
from kerasnets import registry
from kerasnets.cli import main
from kerasnets.models import alexnet, googlenet, inception, resnet, vgg
from kerasnets.registry import ModelSpec, WidthSpace, get_entry, list_models

PACKAGE = pathlib.Path(kerasnets.__file__).parent
ALL_SPECS = [*resnet.SPECS.values(), *vgg.SPECS.values(), *googlenet.SPECS.values(),
             *inception.SPECS.values(), *alexnet.SPECS.values()]


# ---------------------------------------------------------------------------
# One spec per registered name
# ---------------------------------------------------------------------------


def test_every_registered_name_has_exactly_one_spec():
    names = [spec.name for spec in ALL_SPECS]
    assert len(names) == len(set(names)) == 25
    assert sorted(names) == sorted(list_models())
    for spec in ALL_SPECS:
        entry = get_entry(spec.name)
        assert entry.spec is spec
        assert getattr(kerasnets, spec.builder_name) is entry.builder
        assert entry.info is spec.info and entry.builder.info is spec.info


def test_the_public_builders_stay_plain_functions_with_the_contract():
    builder = kerasnets.ResNet50
    assert inspect.isfunction(builder)
    parameters = list(inspect.signature(builder).parameters)
    assert parameters[:8] == [
        "include_top", "weights", "input_tensor", "input_shape", "pooling", "classes",
        "classifier_activation", "name",
    ]
    assert inspect.signature(kerasnets.ResNet20).parameters["classes"].default == 10
    assert inspect.signature(kerasnets.ResNet50).parameters["classes"].default == 1000
    doc = inspect.getdoc(builder)
    assert doc.startswith("ResNet-50 of Table 1") and "stage_widths:" in doc and "include_top:" in doc


def test_each_preset_is_declared_once_in_its_models_spec():
    declared = [(spec.name, p.name) for spec in ALL_SPECS for p in spec.presets]
    assert len(declared) == len(set(declared))
    for spec in ALL_SPECS:  # the spec gives each preset its registered name
        assert all(p.model == spec.name for p in spec.presets)
        assert kerasnets.weights.presets_of(spec.name) is get_entry(spec.name).presets
    names = lambda model: tuple(p.name for p in get_entry(model).presets)  # noqa: E731
    assert names("resnet50") == ("keras_applications", "torchvision_v1", "torchvision_v2")
    assert names("resnet18") == ("torchvision_v1",)
    assert names("inception_v3") == ("keras_applications",)
    assert names("googlenet") == ("bvlc",) and names("googlenet_bn") == ()
    assert names("alexnet") == ("bvlc", "torchvision_v1")
    assert not hasattr(kerasnets.weights, "PRESETS")  # no second list to reconcile


def _kerasnets_imports(path):
    tree = ast.parse(path.read_text())
    imported = [
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    return sorted({m for m in imported if m.startswith("kerasnets")})


def test_the_registry_imports_nothing_of_kerasnets_but_the_argument_checks_and_preprocessing():
    """Layer 0: the argument checks, and `Preprocessing` (the type of ``ModelInfo.preprocessing``)."""
    assert _kerasnets_imports(PACKAGE / "registry.py") == ["kerasnets._validate", "kerasnets.preprocessing"]
    for leaf in ("_validate.py", "preprocessing.py"):  # which import nothing of kerasnets
        assert _kerasnets_imports(PACKAGE / leaf) == []


# ---------------------------------------------------------------------------
# The spec's widths are the paper's, and the built model has them
# ---------------------------------------------------------------------------


def _channels(model, layer):
    return model.get_layer(layer).output.shape[-1]


@pytest.mark.parametrize("name, blocks, outputs", [
    ("resnet18", (2, 2, 2, 2), (64, 128, 256, 512)),
    ("resnet50", (3, 4, 6, 3), (256, 512, 1024, 2048)),
])
def test_resnet_stage_widths_are_table1(name, blocks, outputs, no_random_init):
    space = get_entry(name).widths
    assert dict(space.groups) == {"conv2_width": 64, "conv3_width": 128, "conv4_width": 256, "conv5_width": 512}
    model = kerasnets.get_model(name, include_top=False, input_shape=(64, 64, 3))
    for stage, (n, base, out) in enumerate(zip(blocks, space.groups.values(), outputs), start=2):
        assert model.get_layer(f"conv{stage}_block1_1_conv").filters == base
        assert _channels(model, f"conv{stage}_block{n}_out") == out
    assert dict(get_entry(name).feature_stages) == {
        f"conv{s}": f"conv{s}_block{n}_out" for s, n in enumerate(blocks, start=2)
    }


def test_cifar_resnet_stage_widths_are_section_4_2(no_random_init):
    space = get_entry("resnet20").widths
    assert dict(space.groups) == {"conv2_width": 16, "conv3_width": 32, "conv4_width": 64}
    assert space.monotonic
    model = kerasnets.ResNet20(include_top=False)
    assert [_channels(model, f"conv{s}_block3_out") for s in (2, 3, 4)] == [16, 32, 64]


def test_vgg16_block_widths_are_table1(no_random_init):
    space = get_entry("vgg16").widths
    assert list(space.groups.values()) == [64, 128, 256, 512, 512]
    model = kerasnets.VGG16(include_top=False, input_shape=(32, 32, 3))
    convs = [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)]  # configuration D: 2, 2, 3, 3, 3 convolutions
    for (b, n), width in zip(convs, [64, 128, 256, 512, 512]):
        assert [model.get_layer(f"block{b}_conv{i}").filters for i in range(1, n + 1)] == [width] * n


# Table 1 of Szegedy et al.: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj; output depth.
GOOGLENET_TABLE1 = {
    "3a": ((64, 96, 128, 16, 32, 32), 256),
    "3b": ((128, 128, 192, 32, 96, 64), 480),
    "4a": ((192, 96, 208, 16, 48, 64), 512),
    "4b": ((160, 112, 224, 24, 64, 64), 512),
    "4c": ((128, 128, 256, 24, 64, 64), 512),
    "4d": ((112, 144, 288, 32, 64, 64), 528),
    "4e": ((256, 160, 320, 32, 128, 128), 832),
    "5a": ((256, 160, 320, 32, 128, 128), 832),
    "5b": ((384, 192, 384, 48, 128, 128), 1024),
}


def test_googlenet_module_widths_are_table1(no_random_init):
    space = get_entry("googlenet").widths
    assert space.kind == "module"
    assert {key: tuple(row) for key, row in space.groups.values()} == {
        k: widths for k, (widths, _) in GOOGLENET_TABLE1.items()
    }
    assert list(space.groups) == [f"inception_{k}_scale" for k in GOOGLENET_TABLE1]
    model = kerasnets.GoogLeNet(include_top=False, aux_classifiers=False, input_shape=(64, 64, 3))
    branches = ("b1", "b3_reduce", "b3", "b5_reduce", "b5", "pool_proj")
    for key, (widths, depth) in GOOGLENET_TABLE1.items():
        assert [model.get_layer(f"inception_{key}_{b}_conv").filters for b in branches] == list(widths)
        assert _channels(model, space.module_layer.format(key)) == depth


def test_inception_v3_module_outputs_are_the_released_networks(no_random_init):
    space = get_entry("inception_v3").widths
    modules = [key for key, _ in space.groups.values()]
    assert modules == ["mixed5b", "mixed5c", "mixed5d", "mixed6a", "mixed6b", "mixed6c", "mixed6d",
                       "mixed6e", "mixed7a", "mixed7b", "mixed7c"]
    model = kerasnets.InceptionV3(include_top=False, input_shape=(75, 75, 3))
    # keras.applications' mixed0 .. mixed10
    assert [_channels(model, space.module_layer.format(m)) for m in modules] == [
        256, 288, 288, 768, 768, 768, 768, 768, 1280, 2048, 2048,
    ]


# ---------------------------------------------------------------------------
# Tuning spaces come from the specs
# ---------------------------------------------------------------------------


@pytest.fixture
def extra_spec():
    """Registers specs for the test and removes them afterwards."""
    added = []

    def register(spec):
        from kerasnets.models._application import make_builder

        added.append(spec.name)
        return make_builder(spec)

    yield register
    for name in added:
        registry._REGISTRY.pop(name, None)


def test_a_new_spec_gets_a_search_space(extra_spec, no_random_init):
    # A ResNet-18 twice as wide: declared once, it is buildable and searchable.
    builder = extra_spec(ModelSpec(
        "wide_resnet18_test", "WideResNet18Test", resnet.resnet_imagenet, resnet.IMAGENET_INFO,
        summary="ResNet-18, twice as wide.", arguments={"depth": 18}, depth=18,
        widths=WidthSpace("stage", {"conv2_width": 128, "conv3_width": 256, "conv4_width": 512,
                                    "conv5_width": 1024}, depth_group="wide_test"),
    ))
    assert kerasnets.get_model("wide_resnet18_test", include_top=False, input_shape=(64, 64, 3),
                               stage_widths=(8, 8, 8, 8)).output_shape[-1] == 8
    assert inspect.signature(builder).parameters["stage_widths"].default is None
    space = {hp.name: hp for hp in kt.search_space("wide_resnet18_test")}
    assert list(space) == ["width_multiplier", "conv2_width", "conv3_width", "conv4_width", "conv5_width"]
    assert (space["conv5_width"].min_value, space["conv5_width"].max_value, space["conv5_width"].step) == (256, 1024, 256)
    assert kt.builder_kwargs("wide_resnet18_test", {"width_multiplier": 1.0, **{
        f"conv{s}_width": w for s, w in zip((2, 3, 4, 5), (32, 64, 96, 128))}}) == (
        "wide_resnet18_test", {"width_multiplier": 1.0, "stage_widths": [32, 64, 96, 128]})
    # Its depth group grows with a second spec; nothing else is declared.
    extra_spec(ModelSpec(
        "wide_resnet34_test", "WideResNet34Test", resnet.resnet_imagenet, resnet.IMAGENET_INFO,
        summary="ResNet-34, twice as wide.", arguments={"depth": 34}, depth=34,
        widths=WidthSpace("stage", dict(get_entry("wide_resnet18_test").widths.groups), depth_group="wide_test"),
    ))
    assert kt.depth_choices("wide_resnet18_test") == {18: "wide_resnet18_test", 34: "wide_resnet34_test"}
    assert kt.depth_choices("resnet18") == {18: "resnet18", 34: "resnet34"}
    # A spec that declares no width groups searches the width multiplier.
    extra_spec(ModelSpec("tiny_vgg_test", "TinyVGGTest", vgg.vgg, vgg.INFO, summary="VGG-A.",
                         arguments={"config": "A"}))
    assert [hp.name for hp in kt.search_space("tiny_vgg_test")] == ["width_multiplier"]
    assert kt.depth_choices("tiny_vgg_test") == {}


def test_depth_groups_come_from_the_specs():
    assert kt.depth_choices("resnet50") == {50: "resnet50", 101: "resnet101", 152: "resnet152"}
    assert kt.depth_choices("resnet18") == {18: "resnet18", 34: "resnet34"}
    assert kt.depth_choices("resnet56") == {20: "resnet20", 32: "resnet32", 44: "resnet44", 56: "resnet56",
                                            110: "resnet110"}
    assert kt.depth_choices("vgg13") == {11: "vgg11", 13: "vgg13", 16: "vgg16", 19: "vgg19"}
    assert kt.depth_choices("vgg16_bn") == {11: "vgg11_bn", 13: "vgg13_bn", 16: "vgg16_bn", 19: "vgg19_bn"}
    assert kt.depth_choices("vgg16_c") == {} and kt.depth_choices("googlenet") == {}


def test_tuning_holds_no_table_of_names_or_widths():
    """Outside docstrings, no string in kerasnets/tuning is a registered name."""
    names = set(list_models())
    for path in (PACKAGE / "tuning").glob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
        }
        strings = [
            node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        ]
        assert not names & set(strings), path


# ---------------------------------------------------------------------------
# One name for the per-stage widths; the former names are aliases
# ---------------------------------------------------------------------------


def test_stage_widths_in_every_family_and_the_aliases(no_random_init):
    for name in ("resnet50", "resnet20", "vgg16", "googlenet", "inception_v3"):
        assert "stage_widths" in inspect.signature(get_entry(name).builder).parameters
    kwargs = dict(include_top=False, input_shape=(32, 32, 3))
    widths = (8, 16, 24, 32, 40)
    new = kerasnets.VGG11(stage_widths=widths, **kwargs)
    old = kerasnets.VGG11(block_widths=widths, **kwargs)
    assert [new.get_layer(f"block{b}_conv1").filters for b in range(1, 6)] == list(widths)
    assert [old.get_layer(f"block{b}_conv1").filters for b in range(1, 6)] == list(widths)
    with pytest.raises(ValueError, match="block_widths is another name of stage_widths.*Received"):
        kerasnets.VGG11(stage_widths=widths, block_widths=widths, **kwargs)
    with pytest.raises(ValueError, match=r"Received: stage_widths=\(8, 16\)"):
        kerasnets.VGG11(block_widths=(8, 16), **kwargs)
    g_kwargs = dict(include_top=False, aux_classifiers=False, input_shape=(64, 64, 3))
    new = kerasnets.GoogLeNet(stage_widths={"3a": {"b5": 48}}, **g_kwargs)
    old = kerasnets.GoogLeNet(module_widths={"3a": {"b5": 48}}, **g_kwargs)
    for model in (new, old):
        assert model.get_layer("inception_3a_b5_conv").filters == 48
        assert _channels(model, "inception_3a_output") == 64 + 128 + 48 + 32
    model = kerasnets.InceptionV3(module_widths={"mixed5b": {"pool_proj": 16}}, include_top=False,
                                  input_shape=(75, 75, 3))
    assert _channels(model, "mixed5b") == 64 + 64 + 96 + 16
    assert "module_widths: another name of ``stage_widths``" in kerasnets.GoogLeNet.__doc__
    assert "block_widths: another name of ``stage_widths``" in kerasnets.VGG16.__doc__


def test_the_hypermodel_reserves_the_aliases_too():
    with pytest.raises(ValueError, match=r"model_kwargs must be free of \['block_widths'\]"):
        kt.WidthHyperModel("vgg11", input_shape=(32, 32, 3), classes=3, model_kwargs={"block_widths": [8] * 5})


# ---------------------------------------------------------------------------
# The contract defaults are written once
# ---------------------------------------------------------------------------


def test_contract_defaults_are_the_builders_and_build_applications():
    from kerasnets.models._application import CONTRACT_DEFAULTS, build_application

    parameters = inspect.signature(kerasnets.VGG16).parameters
    assert {k: parameters[k].default for k in CONTRACT_DEFAULTS} == dict(CONTRACT_DEFAULTS)
    assert dict(CONTRACT_DEFAULTS) == dict(
        include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
        classes=1000, classifier_activation="softmax", name=None,
    )
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        build_application(backbone=None, info=None, model_name="X", min_size=1, include_tops=True)


# ---------------------------------------------------------------------------
# `kerasnets list` shows the presets
# ---------------------------------------------------------------------------


def _columns(out, model):
    """The rows of ``model`` in an aligned table, split into its columns."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines() if line.startswith(model + " ")]


def test_list_shows_each_models_presets(capsys):
    assert main(["list", "vgg16"]) == 0
    model_row, *presets = _columns(capsys.readouterr().out, "vgg16")
    assert model_row[:2] == ["vgg16", "VGG16"]
    # model, preset, source, top-1 as published, input size, preprocessing, builder arguments
    assert presets == [
        ["vgg16", "keras_applications", "keras.applications vgg16 (published .h5)", "71.3", "224",
         "mean_subtraction", "-"],
        ["vgg16", "torchvision_v1", "torchvision vgg16 IMAGENET1K_V1 (huggingface.co)", "71.6", "224",
         "imagenet_mean_std", "-"],
    ]
    assert main(["list", "resnet50", "--weights"]) == 0
    rows = _columns(capsys.readouterr().out, "resnet50")
    assert [r[1] for r in rows] == ["keras_applications", "torchvision_v1", "torchvision_v2"]
    assert [r[3] for r in rows] == ["74.9", "76.1", "80.9"]
    assert rows[2][5:] == ["imagenet_mean_std (crop 0.966)", "downsample_on='3x3'"]
    assert main(["list", "googlenet*", "--weights"]) == 0
    out = capsys.readouterr().out
    assert _columns(out, "googlenet") == [["googlenet", "bvlc", "BVLC Caffe model zoo bvlc_googlenet (published "
                                           ".caffemodel)", "68.7", "224", "bvlc_googlenet", "-"]]
    assert "No exact public ImageNet weights: googlenet_bn." in out
    assert main(["list", "alexnet", "--weights"]) == 0
    rows = _columns(capsys.readouterr().out, "alexnet")
    assert rows[0][1:] == ["bvlc", "BVLC Caffe model zoo bvlc_alexnet (published .caffemodel)", "57.1", "227",
                           "bvlc_alexnet (crop 0.887)", "lrn='caffe'"]
    assert rows[1][1] == "torchvision_v1" and rows[1][-1] == "variant='torchvision'"
    assert main(["list", "inception_v3", "--weights", "--json"]) == 0
    (preset,) = json.loads(capsys.readouterr().out)
    assert (preset["preset"], preset["top1"], preset["input_size"], preset["preprocessing"]) == (
        "keras_applications", 77.9, 299, "inception")
