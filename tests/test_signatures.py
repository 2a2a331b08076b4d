"""The public builders' parameters as people's tools see them: `inspect.signature`, ``help()``,
a type checker (mypy) and an IDE, which reads the generated stub ``kerasnets/models/__init__.pyi``."""

import ast
import importlib.util
import inspect
import os
import pydoc
import subprocess
import sys
import textwrap

import pytest

import kerasnets
from kerasnets.registry import entries

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUB = os.path.join(REPO, "kerasnets", "models", "__init__.pyi")
BUILDERS = sorted({e.spec.builder_name for e in entries() if e.spec is not None})


def _make_stubs():
    spec = importlib.util.spec_from_file_location("make_stubs", os.path.join(REPO, "scripts", "make_stubs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_stub_is_generated_from_the_registry_and_current():
    with open(STUB) as f:
        assert f.read() == _make_stubs().generate(), "run python scripts/make_stubs.py"


def _stub_functions():
    with open(STUB) as f:
        tree = ast.parse(f.read())
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("name", BUILDERS)
def test_signature_help_and_stub_show_the_same_parameters(name):
    builder = getattr(kerasnets, name)
    parameters = inspect.signature(builder).parameters
    assert list(parameters)[:3] == ["include_top", "weights", "input_tensor"]  # not (*args, **kwargs)
    assert all(p.annotation is not inspect.Parameter.empty for p in parameters.values()), name

    stub = _stub_functions()[name].args
    positional = [a.arg for a in stub.args]
    keyword_only = [a.arg for a in stub.kwonlyargs]
    assert positional + keyword_only == list(parameters)
    assert positional == [k for k, p in parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    defaults = [ast.literal_eval(d) for d in stub.defaults + stub.kw_defaults]
    assert defaults == [p.default for p in parameters.values()]
    annotations = [ast.unparse(a.annotation) for a in stub.args + stub.kwonlyargs]
    assert annotations == [ast.unparse(ast.parse(p.annotation, mode="eval").body) for p in parameters.values()]

    shown = pydoc.render_doc(builder, renderer=pydoc.plaintext)
    assert "include_top: 'bool' = True" in shown and "-> 'keras.Model'" in shown


def test_builders_are_looked_up_by_name():
    for entry in entries():
        if entry.spec is not None:
            assert entry.builder.__name__ == entry.spec.builder_name
            assert getattr(kerasnets, entry.spec.builder_name) is entry.builder


def test_a_type_checker_sees_the_parameters(tmp_path):
    pytest.importorskip("mypy")
    (tmp_path / "good.py").write_text(textwrap.dedent("""\
        import kerasnets
        features = kerasnets.ResNet50(weights=None, include_top=False, pooling="avg")
        cifar = kerasnets.ResNet20(True, None, classes=4, width_multiplier=0.5)  # positional, as keras.applications
        googlenet = kerasnets.GoogLeNet(weights=None, aux_classifiers=True, module_widths={"4a": {"b5": 64}})
    """))
    (tmp_path / "bad.py").write_text(textwrap.dedent("""\
        import kerasnets
        from kerasnets.models import VGG16
        misspelt = kerasnets.ResNet50(weigths=None)
        pooled = kerasnets.ResNet50(include_top=False, pooling="mean")
        text = VGG16(include_top="no")
    """))
    env = dict(os.environ, MYPYPATH=REPO)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports=silent",
         "--no-incremental", "--cache-dir", os.devnull, "--no-error-summary", "good.py", "bad.py"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600,
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert all(line.startswith("bad.py:") for line in errors), done.stdout + done.stderr
    assert [int(line.split(":")[1]) for line in errors] == [3, 4, 5], done.stdout
    assert 'Unexpected keyword argument "weigths" for "ResNet50"; did you mean "weights"?' in errors[0]
    assert '"Literal[\'avg\', \'max\'] | None"' in errors[1]
    assert 'Argument "include_top" to "VGG16" has incompatible type "str"; expected "bool"' in errors[2]
