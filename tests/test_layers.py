"""The floor plan of ``dclip/``, read from the source with ``ast`` (imports inside functions included).

Each folder is a floor; an import may go down or stay on its floor, never up::

    7  the front door: dclip/__init__.py, cli/, __main__.py, and dev/ (figures runner, portability, toy sheet)
    6  notebook/   a thin context, worlds, profiles, outputs   editor/  the live editor (notebook 06)
    5  studies/    each paper experiment, its claims, the paper's numbers, plots
    4  baselines/  the GAN comparators        toy/  the toy world (runtime: domain, nets, judging | train)
    3  method/     the paper, equation by equation
    2  models/     networks and their files
    1  data/       images, face alignment
    0  runtime/    fast path, CUDA graphs, distributed, cache, atomic writes, progress; version.py

On floor 4, the baselines and the toy world never import each other, and the toy world's runtime modules never
import its trainer. On floor 6, the notebook context never imports the editor (the editor is an application on
top of it). The graph of modules and the graph of folders have no circles.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dclip"

FLOORS = {"runtime": 0, "version": 0, "data": 1, "models": 2, "method": 3, "baselines": 4, "toy": 4,
          "studies": 5, "notebook": 6, "editor": 6, "dev": 7, "cli": 7, "__main__": 7, "": 7}
#: Neighbours on one floor that must not see each other: (importer folder, imported folder).
FORBIDDEN_SIDEWAYS = {("baselines", "toy"), ("toy", "baselines"), ("notebook", "editor")}
#: The toy world's runtime never imports its trainers (a trainer may build on another).
TOY_TRAINERS = ("dclip.toy.train", "dclip.toy.ddpm_training", "dclip.toy.clip_directions")

MAX_LINES = 500
MAX_METHODS = 15


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


def folder_of(name: str) -> str:
    """The top-level folder (or top-level module) of a dclip module: ``dclip.method.ddim`` -> ``method``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def all_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def module_graph(files: list[Path]) -> dict[str, set[str]]:
    """Module -> the dclip modules it imports (``from pkg import name`` resolved to ``pkg.name`` when that is a
    module, else to ``pkg``)."""
    modules = {module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported, _ in imports(path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
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
                out.append(sorted(component))

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def violations(path: Path) -> list[str]:
    """Each import of ``path`` that runs up a floor, sideways into a forbidden neighbour, or from the toy
    world's runtime into its trainer."""
    here = module_name(path)
    floor, folder = FLOORS[folder_of(here)], folder_of(here)
    bad = []
    for name, lazy in imports(path):
        other = folder_of(name)
        if other not in FLOORS:  # e.g. `from dclip import __version__` resolves to a name of the top level
            other = ""
        reason = None
        if FLOORS[other] > floor:
            reason = f"up from floor {floor} to {FLOORS[other]}"
        elif (folder, other) in FORBIDDEN_SIDEWAYS:
            reason = "sideways"
        elif folder == "toy" and here not in TOY_TRAINERS and any(name == t or name.startswith(t + ".")
                                                                  for t in TOY_TRAINERS):
            reason = "the toy runtime imports its trainer"
        if reason:
            bad.append(f"{path.relative_to(PACKAGE.parent)} imports {name}{' (inside a function)' if lazy else ''}"
                       f": {reason}")
    return bad


def test_every_folder_has_a_floor():
    folders = {folder_of(module_name(p)) for p in all_files()}
    assert folders <= set(FLOORS), f"folders without a floor: {sorted(folders - set(FLOORS))}"
    for folder in ("runtime", "data", "models", "method", "baselines", "toy", "studies", "notebook", "editor", "dev"):
        assert (PACKAGE / folder / "__init__.py").is_file(), f"dclip/{folder}/ is missing"


def test_no_import_runs_up_a_floor():
    bad = [v for path in all_files() for v in violations(path)]
    assert not bad, "floor rule broken:\n" + "\n".join(bad)


def test_no_circles_among_files():
    found = cycles(module_graph(all_files()))
    assert not found, "import circles among modules:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_circles_among_folders():
    graph: dict[str, set[str]] = {}
    for module, targets in module_graph(all_files()).items():
        here = module.split(".")[:2]
        graph.setdefault(".".join(here), set()).update(
            ".".join(t.split(".")[:2]) for t in targets if t.split(".")[:2] != here)
    found = cycles(graph)
    assert not found, "import circles among folders:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_method_does_not_know_the_fast_path():
    """The equations (ddim, mixing, losses, metrics) import nothing of the performance path."""
    for name in ("ddim", "mixing", "losses", "metrics"):
        path = PACKAGE / "method" / f"{name}.py"
        fast = [n for n, _ in imports(path) if n.startswith(("dclip.runtime.fast", "dclip.runtime.graphs"))]
        assert not fast, f"dclip/method/{name}.py imports {fast}"


def test_modules_and_classes_stay_small():
    long_files = [f"{p.relative_to(PACKAGE.parent)}: {n} lines" for p in all_files()
                  if (n := len(p.read_text().splitlines())) > MAX_LINES]
    big_classes = []
    for path in all_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                methods = sum(isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef)) for b in node.body)
                if methods > MAX_METHODS:
                    big_classes.append(f"{path.relative_to(PACKAGE.parent)}: {node.name} has {methods} methods")
    assert not long_files and not big_classes, "\n".join(long_files + big_classes)


def test_fine_tuning_lives_in_the_method():
    """Eq. 10's fine-tuning is in dclip/method/finetune.py, and the front door exports the paper's verbs."""
    import dclip

    assert "eq. 10" in (PACKAGE / "method" / "finetune.py").read_text().lower()
    for verb in ("invert", "generate", "precompute", "finetune", "edit", "load_unet", "load_clip"):
        assert callable(getattr(dclip, verb)), verb


# -- the checker itself -------------------------------------------------------------------------------------

@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    fake = tmp_path / "dclip"
    for folder in ("method", "runtime", "toy", "models"):
        (fake / folder).mkdir(parents=True)
        (fake / folder / "__init__.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    return fake


def test_the_checker_catches_an_upward_import(fake_package):
    module = fake_package / "method" / "m.py"
    module.write_text("from ..baselines.common import frozen\n"
                      "def f():\n    from ..notebook import context\n"
                      "from ..runtime.atomic import atomic_write\nfrom .ddim import invert\n")
    assert violations(module) == [
        "dclip/method/m.py imports dclip.baselines.common: up from floor 3 to 4",
        "dclip/method/m.py imports dclip.baselines.common.frozen: up from floor 3 to 4",
        "dclip/method/m.py imports dclip.notebook (inside a function): up from floor 3 to 6",
        "dclip/method/m.py imports dclip.notebook.context (inside a function): up from floor 3 to 6",
    ]


def test_the_checker_catches_the_toy_runtime_importing_its_trainer(fake_package):
    module = fake_package / "toy" / "nets.py"
    module.write_text("from .train import Judge\nfrom . import domain\n")
    assert violations(module) == [
        "dclip/toy/nets.py imports dclip.toy.train: the toy runtime imports its trainer",
        "dclip/toy/nets.py imports dclip.toy.train.Judge: the toy runtime imports its trainer",
    ]


def test_the_checker_finds_circles(fake_package):
    (fake_package / "models" / "a.py").write_text("def f():\n    from .b import g\n")
    (fake_package / "models" / "b.py").write_text("from .c import h\n")
    (fake_package / "models" / "c.py").write_text("from .a import f\n")
    (fake_package / "runtime" / "d.py").write_text("from ..models.a import f\n")
    files = sorted(fake_package.rglob("*.py"))
    assert cycles(module_graph(files)) == [["dclip.models.a", "dclip.models.b", "dclip.models.c"]]


def test_docs_layout_lists_every_module():
    """Each module of every folder has a row in the layout table (docs/layout.md), under its folder."""
    table = (PACKAGE.parent / "docs" / "layout.md").read_text()
    sections: dict[str, str] = {}
    current = None
    for line in table.splitlines():
        if line.startswith("| **`dclip/"):
            current = line.split("`")[1].strip("/").split("/")[1]
        elif line.startswith("| **"):
            current = None
        elif line.startswith("| `") and current:
            sections[current] = sections.get(current, "") + line.split("|")[1]
    for path in all_files():
        folder = folder_of(module_name(path))
        if path.name == "__init__.py" or path.parent.name == "layouts" or path.parent == PACKAGE:
            continue
        assert f"`{path.name}`" in sections.get(folder, ""), f"docs/layout.md lacks dclip/{folder}/{path.name}"
