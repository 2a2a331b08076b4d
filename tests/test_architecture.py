"""The package's import order, as `docs/architecture.md` ("Layers") writes it down.

Read from the source with `ast` (nothing is imported), every import in every module of
``kerasnets/``, function-level imports included, is checked against four rules:

* an import never goes to a higher layer than the importer's (imports within one layer
  are allowed, as long as the packages do not import each other in a circle);
* no module below the top imports the top-level package itself (``import kerasnets``,
  ``from kerasnets import get_model``): it imports the module it needs;
* no package imports another package's underscore module or underscore name
  (``kerasnets.training._run`` outside ``kerasnets.training``); what others need is a
  public name of that package. The underscore modules at the top (``kerasnets._validate``,
  ``kerasnets._keras_compat``, ...) are the bottom layer's shared helpers: any module may
  import them;
* Keras internals (``_keras_history``, ``_inbound_nodes``, ``_flatten_layers``, ``_initial_epoch``,
  ``keras.src``) are reached only in
  ``kerasnets/_keras_compat.py``.
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "kerasnets"
DOCS = ROOT / "docs" / "architecture.md"

# Imports that break a rule on purpose: none. An entry here is ``(importer, imported)`` with a
# comment saying why it must stay.
ALLOWED: set = set()

KERAS_INTERNALS = ("_keras_history", "_inbound_nodes", "_flatten_layers", "_initial_epoch")
KERAS_ADAPTER = "kerasnets._keras_compat"


def _layers_from_docs() -> dict[str, int]:
    """``{unit: layer}`` from the ``layer N  name/  name.py ...`` lines of the Layers section."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers = {}
    for number, names in re.findall(r"^\s*layer (\d)\s+(.*)$", section, flags=re.M):
        for token in names.split():
            match = re.fullmatch(r"(\w+)(/|\.py)", token)
            if match is None:
                break  # the description after the names
            layers[match.group(1)] = int(number)
    return layers


LAYERS = _layers_from_docs()
TOP = max(LAYERS.values(), default=0) + 1  # kerasnets/__init__.py and __main__.py


def _module_name(path: pathlib.Path, root: pathlib.Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> str:
    """The layer unit of a module: its subpackage, its top-level module, or the top."""
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and parts[1] == "__main__"):
        return "kerasnets"
    return parts[1]


def _is_module(dotted: str, root: pathlib.Path) -> bool:
    path = root.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: pathlib.Path, root: pathlib.Path):
    """``(line, target, names)`` of every kerasnets import in a file, at any depth."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "kerasnets":
                    yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "kerasnets":
                yield node.lineno, target, tuple(alias.name for alias in node.names)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _edges(root: pathlib.Path):
    """``(importer:line, importer, imported, private parts)`` for every kerasnets import.

    ``imported`` is the module imported (``from kerasnets.data import _load`` imports
    ``kerasnets.data._load``), or the module a name is taken from.
    """
    for path in sorted((root / "kerasnets").rglob("*.py")):
        importer = _module_name(path, root)
        for line, target, names in _imports(path, root):
            where = f"{importer}:{line}"
            for name in names or (None,):
                full = target if name is None else f"{target}.{name}"
                imported = full if _is_module(full, root) else target
                private = [p for p in full.split(".")[2:] if _private(p)]
                yield where, importer, imported, private


def _violations(root: pathlib.Path = ROOT) -> list[str]:
    found = []
    graph = {}  # unit -> the units it imports, for the circle check
    for where, importer, imported, private in _edges(root):
        if (importer, imported) in ALLOWED:
            continue
        source, dest = _unit(importer), _unit(imported)
        if imported == "kerasnets" and source != "kerasnets":
            found.append(f"{where} imports the top-level package kerasnets; import the module it needs")
            continue
        if source == dest or dest == "kerasnets":
            continue
        if private:
            found.append(f"{where} imports {'.'.join(private)} of {imported}, private to kerasnets.{dest}")
        graph.setdefault(source, set()).add(dest)
        low, high = LAYERS.get(source, TOP), LAYERS.get(dest, TOP)
        if high > low:
            found.append(f"{where} imports {imported} upward (layer {low} -> layer {high})")
    found += ["packages import each other in a circle: " + " -> ".join(c) for c in _cycles(graph)]
    return list(dict.fromkeys(found))


def _cycles(graph):
    """Each circle of the package graph once."""
    cycles, seen = [], set()

    def visit(node, trail):
        for nxt in sorted(graph.get(node, ())):
            if nxt in trail:
                cycle = trail[trail.index(nxt):] + [nxt]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    cycles.append(cycle)
            else:
                visit(nxt, trail + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    return cycles


def test_docs_name_every_package_and_bottom_module():
    units = {_unit(_module_name(p)) for p in PACKAGE.rglob("*.py")} - {"kerasnets"}
    assert LAYERS, f"no 'layer N  name/ ...' lines in the Layers section of {DOCS}"
    assert sorted(units - set(LAYERS)) == [], "every package and top-level module has a layer in docs/architecture.md"
    assert sorted(set(LAYERS) - units) == [], "docs/architecture.md names a layer unit that does not exist"


def test_imports_follow_the_layers():
    assert _violations() == []


def test_keras_internals_only_in_the_adapter():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if module == KERAS_ADAPTER:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in KERAS_INTERNALS:
                found.append(f"{module}:{node.lineno} .{node.attr}")
            elif isinstance(node, ast.Constant) and node.value in KERAS_INTERNALS:
                found.append(f"{module}:{node.lineno} {node.value!r}")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found += [f"{module}:{node.lineno} import {n}" for n in names if n.startswith("keras.src")]
    assert found == [], f"Keras internals are reached through {KERAS_ADAPTER} only"


@pytest.mark.parametrize("source, expected", [
    ("import kerasnets\n", "imports the top-level package"),
    ("from kerasnets import get_model\n", "imports the top-level package"),
    ("from kerasnets.training import _run\n", "private to kerasnets.training"),
    ("from kerasnets.tuning._report import count_text\n", "private to kerasnets.tuning"),
    ("def f():\n    from kerasnets.cli import main\n", "upward"),
])
def test_the_rules_catch_a_bad_import(tmp_path, source, expected):
    """The checker itself: a bad import planted in a copy of data/ is reported."""
    for path in PACKAGE.rglob("*.py"):
        dest = tmp_path / path.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "kerasnets" / "data" / "_planted.py").write_text(source, encoding="utf-8")
    found = [v for v in _violations(tmp_path) if v.startswith("kerasnets.data._planted")]
    assert len(found) >= 1 and expected in found[0], found
