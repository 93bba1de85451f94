"""The layout rules of docs/architecture.md, checked on the source so they stay true.

- layers point down only: notebooks → widgets → cli → commands/tour → recipes → methods → capture →
  models (and the shipped zoo) → data, viz and results → the training runtime → files and errors; every import counts, also one inside a function body (imports under `TYPE_CHECKING` do
  not run and are left out);
- no module imports another that imports it back (no cycles of any length);
- `egokit/methods/` holds only method packages (plus its `__init__.py`);
- no method module names a model attribute path: the families in `egokit/models/` own them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Rank of each layer: a module may import modules of its own rank or lower (cycles are checked apart).
LAYERS: list[tuple[str, int]] = [
    ("egokit.widgets", 9),
    ("egokit.cli", 8),
    ("egokit.__main__", 8),
    ("egokit.commands", 7),
    ("egokit.tour", 7),
    ("egokit.recipes", 6),
    ("egokit.methods", 5),
    ("egokit.capture", 4),
    ("egokit.models", 3),
    ("egokit.zoo", 3),
    ("egokit.data", 2),
    ("egokit.viz", 2),
    ("egokit.results", 2),
    ("egokit.training", 1),
    ("egokit.files", 0),
    ("egokit.argtypes", 0),
    ("egokit.errors", 0),
    ("egokit", 0),  # the package root: the public API, which imports its names lazily (by name, not by import)
]


def layer(module: str) -> tuple[str, int]:
    for prefix, rank in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return prefix, rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/architecture.md")


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name (widgets/ installs as egokit.widgets)."""
    found: dict[str, Path] = {}
    for base, prefix in ((ROOT / "egokit", "egokit"), (ROOT / "widgets", "egokit.widgets")):
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


MODULES = modules()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                skip.update(id(n) for n in ast.walk(inner))
    return skip


def imports_of(name: str, path: Path) -> set[str]:
    """The kit's modules that `name` imports (anywhere in the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in MODULES and t != name)
    return out


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def test_every_module_is_in_a_layer():
    for name in MODULES:
        layer(name)


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_imports_point_down(name):
    own, rank = layer(name)
    upward = [f"{t} ({layer(t)[0]})" for t in sorted(GRAPH[name]) if layer(t)[1] > rank]
    assert not upward, f"{name} ({own}) imports from layers above it: {', '.join(upward)}"


def test_low_layers_import_no_method_cli_recipe_or_tour():
    low = ("egokit.models", "egokit.capture", "egokit.data", "egokit.viz", "egokit.zoo")
    high = ("egokit.methods", "egokit.cli", "egokit.commands", "egokit.recipes", "egokit.tour", "egokit.widgets")
    bad = [f"{m} → {t}" for m, ts in GRAPH.items() if m.startswith(low) for t in ts if t.startswith(high)]
    assert not bad, "\n".join(bad)


def test_methods_import_no_cli_recipe_tour_or_widget():
    high = ("egokit.cli", "egokit.commands", "egokit.recipes", "egokit.tour", "egokit.widgets")
    bad = [f"{m} → {t}" for m, ts in GRAPH.items() if m.startswith("egokit.methods") for t in ts
           if t.startswith(high)]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    """Tarjan's strongly connected components: any component with more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, "modules that import each other: " + "; ".join(" ↔ ".join(c) for c in cycles)


def test_methods_folder_holds_only_method_packages():
    folder = ROOT / "egokit" / "methods"
    stray = sorted(p.name for p in folder.iterdir()
                   if p.suffix == ".py" and p.name != "__init__.py")
    assert not stray, f"modules outside a method package: {stray}"
    packages = sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    assert {"ego", "misalign", "lorsu", "pixel", "sa2vp", "explore"} <= set(packages)


# Attribute paths of model internals: only the families (egokit/models/) may name them.
MODEL_PATHS = re.compile(r"\b(vision_model|text_model|language_model|vision_tower|multi_modal_projector|"
                         r"visual_projection|text_projection|lm_head)\b|\bencoder\.layers\b|\bmodel\.layers\b")


def test_no_method_names_a_model_attribute_path():
    bad = []
    for path in sorted((ROOT / "egokit" / "methods").rglob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if MODEL_PATHS.search(line):
                bad.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not bad, "ask the family (adapter.module(part)) instead:\n" + "\n".join(bad)


def test_the_checks_can_fail(tmp_path):
    """The rules above catch what they are meant to: an upward import, a cycle, a named model path."""
    assert layer("egokit.models.loading")[1] < layer("egokit.methods.ego")[1]
    assert MODEL_PATHS.search("clip.vision_model.encoder.layers[0]")
    assert not MODEL_PATHS.search('adapter.module("vision_blocks")')
    fake = tmp_path / "mod.py"
    fake.write_text("def f():\n    from egokit.methods.ego import remember\n", encoding="utf-8")
    assert "egokit.methods.ego" in imports_of("egokit.models.fake", fake)
