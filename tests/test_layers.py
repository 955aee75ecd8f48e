"""The three layers and who may import whom, read from the source with ``ast`` (imports inside
functions included):

* ``dclip.engine`` (the paper's method) imports neither ``dclip.baselines`` nor ``dclip.notebook``;
  its only way out of the engine is a lazy (in-function) import of the shipped toy model files
  (``dclip.toy.models``: ``load_unet("toy")``, ``load_clip("toy")``).
* ``dclip.baselines`` (the GAN comparators) imports only the engine (plus third-party code).
* ``dclip.toy`` imports the engine, never the baselines; only its figure sheet and command line
  (``toy/sheet.py``, ``toy/__main__.py``) import the notebook layer.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dclip"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(absolute dclip module imported, whether the import sits inside a function) for one file.
    ``from X import name`` counts as importing X.name too, so ``from dclip import notebook`` is caught."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[:len(package) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.append((target, in_function))
                found.extend((f"{target}.{a.name}", in_function) for a in child.names)
            visit(child, nested)

    visit(tree, False)
    return [(name, lazy) for name, lazy in found if name == "dclip" or name.startswith("dclip.")]


def layer_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def test_the_layers_exist():
    for layer in ("engine", "baselines", "notebook", "toy"):
        assert files(layer), f"dclip/{layer}/ holds no modules"


def violations(path: Path) -> list[str]:
    layer = layer_of(module_name(path))
    bad = []
    for name, lazy in imports(path):
        other = layer_of(name)
        if layer == "engine":
            # `from .. import __version__` (the package's version string) is its one import of the top level
            allowed = (other == "engine" or name in ("dclip", "dclip.__version__")
                       or (lazy and (name == "dclip.toy.models" or name.startswith("dclip.toy.models."))))
        elif layer == "baselines":
            allowed = other in ("engine", "baselines")
        elif layer == "toy":
            # `import dclip`: the package's public API, which is the engine's
            allowed = other in ("engine", "toy") or name == "dclip" or (
                other == "notebook" and path.name in ("sheet.py", "__main__.py"))
        else:
            continue
        if not allowed:
            bad.append(f"{path.relative_to(PACKAGE.parent)} imports {name}{' (inside a function)' if lazy else ''}")
    return bad


@pytest.mark.parametrize("layer", ["engine", "baselines", "toy"])
def test_import_rule(layer):
    bad = [v for path in files(layer) for v in violations(path)]
    assert not bad, "layer rule broken:\n" + "\n".join(bad)


def test_the_rule_catches_a_bad_import(tmp_path, monkeypatch):
    """The checker itself: an engine module importing the notebook layer (even lazily), or the
    baselines, is reported; a lazy toy-model import is not; a top-level one is."""
    fake = tmp_path / "dclip"
    (fake / "engine").mkdir(parents=True)
    module = fake / "engine" / "m.py"
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    module.write_text("from ..baselines.gan_common import frozen\n"
                      "def f():\n    from ..notebook import context\n    from ..toy.models import load_toy_unet\n"
                      "from dclip.toy.models import load_judge\nfrom .ddim import invert\n")
    assert violations(module) == [
        "dclip/engine/m.py imports dclip.baselines.common",
        "dclip/engine/m.py imports dclip.baselines.common.frozen",
        "dclip/engine/m.py imports dclip.notebook (inside a function)",
        "dclip/engine/m.py imports dclip.notebook.context (inside a function)",
        "dclip/engine/m.py imports dclip.toy.models",
        "dclip/engine/m.py imports dclip.toy.models.load_judge",
    ]


def test_readme_layout_table_lists_every_module():
    """Each module of the three layers has a row in the README's layout table, under its layer."""
    readme = (PACKAGE.parent / "README.md").read_text()
    table = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    sections = {}
    current = None
    for line in table.splitlines():
        if line.startswith("| **`dclip/"):
            current = line.split("`")[1].strip("/").split("/")[1]
        elif line.startswith("| **"):
            current = None
        elif line.startswith("| `") and current:
            sections.setdefault(current, "")
            sections[current] += line.split("|")[1]
    for layer in ("engine", "baselines", "notebook"):
        for path in files(layer):
            if path.name == "__init__.py" or path.parent.name == "layouts":
                continue
            assert f"`{path.name}`" in sections.get(layer, ""), f"README layout table lacks dclip/{layer}/{path.name}"
