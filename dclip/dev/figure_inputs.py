"""What a notebook's figures were made from: the inputs ``python -m dclip figures`` keys a run on.

A notebook is re-run only when one of its inputs changed, as Make rebuilds a target only when one of its
prerequisites is newer, and as jupyter-cache re-executes a notebook only when its code changed. Its inputs are

- its cells (sources of every cell, outputs excluded: :func:`cells_hash`);
- the profile and the parameters papermill injects;
- the dclip modules its kernel imported (all of them: directly, indirectly, lazily);
- the data files it read (e.g. ``bench/results-recipes-cpu.json``) and the model files it loaded, each by a hash
  of its bytes (a toy model's sidecar ``hash`` names its domain, not its file).

The files are not declared by hand: two cells added around the notebook's own (:func:`recorder_cells`, removed
from every copy afterwards) listen to Python's audit events (PEP 578: ``open``, and
:data:`dclip.models.folder.READ_EVENT` for safetensors, which opens files outside Python) and write down what
the kernel read. Like a compiler's dependency file, the list is found by running, and the next run checks those
files' hashes (:func:`current`).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..models.folder import READ_EVENT

__all__ = ["RECORDER_TAG", "WEIGHT_SUFFIXES", "Inputs", "cells_hash", "file_hash", "recorder_cells",
           "without_recorder", "recorded_inputs", "current", "changes"]

#: The tag of the two cells :func:`recorder_cells` adds; :func:`without_recorder` drops them again.
RECORDER_TAG = "dclip-figures-recorder"
#: A file read with one of these suffixes is a model file (and so is a ``.json`` sidecar beside one).
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin", ".pkl")


@dataclass
class Inputs:
    """One notebook run's inputs; :meth:`key` is their hash. File maps go from a path (relative to the
    repository when inside it) to the sha256 of the file's bytes (``None``: the file is gone)."""

    cells: str
    parameters: dict
    sources: dict[str, str | None] = field(default_factory=dict)
    data: dict[str, str | None] = field(default_factory=dict)
    models: dict[str, str | None] = field(default_factory=dict)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Inputs":
        return cls(**{k: data.get(k, {}) for k in ("cells", "parameters", "sources", "data", "models")})


def cells_hash(nb) -> str:
    """sha256 of every cell's type and source, in order: what a person changes. Outputs, execution counts
    and metadata do not count (a re-saved notebook is the same notebook)."""
    cells = [[c.cell_type, c.source] for c in nb.cells]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def file_hash(path: str | os.PathLike) -> str | None:
    """sha256 of a file's bytes, read 1 MiB at a time; ``None`` when there is no such file."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


_LISTEN = f'''# python -m dclip figures: note which files this run reads (this cell is removed from every copy)
def _dclip_listen():
    import os, sys
    reads = set()
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def hook(event, args):
        try:
            if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
                mode, flags = args[1], args[2]
                if isinstance(mode, str) and not any(c in mode for c in "wax+") or mode is None and not flags & writing:
                    reads.add(os.path.abspath(os.fsdecode(args[0])))
            elif event == {READ_EVENT!r}:
                reads.add(args[0])
        except Exception:
            pass

    sys.addaudithook(hook)
    return reads


_dclip_reads = _dclip_listen()'''

_WRITE = '''# python -m dclip figures: write down what this run read (this cell is removed from every copy)
def _dclip_write(path):
    import json, sys
    modules = sorted({m.__file__ for n, m in list(sys.modules.items())
                      if (n == "dclip" or n.startswith("dclip.")) and getattr(m, "__file__", None)})
    with open(path, "w") as f:
        json.dump({"reads": sorted(_dclip_reads), "modules": modules,
                   "prefixes": sorted({sys.prefix, sys.base_prefix, sys.exec_prefix})}, f)


_dclip_write(RECORD_PATH)'''


def recorder_cells(record: Path) -> tuple:
    """The first and the last cell to add to a notebook so that its kernel writes what it read to ``record``
    (JSON: ``reads``, the absolute paths of files opened for reading; ``modules``, dclip's imported files;
    ``prefixes``, the Python installation's folders, whose files are not inputs)."""
    from nbformat.v4 import new_code_cell

    tags = {"tags": [RECORDER_TAG]}
    write = _WRITE.replace("RECORD_PATH", repr(str(record)))
    return new_code_cell(_LISTEN, metadata=tags), new_code_cell(write, metadata=tags)


def without_recorder(nb):
    """``nb`` without the cells :func:`recorder_cells` added (changed in place and returned)."""
    nb.cells = [c for c in nb.cells if RECORDER_TAG not in c.metadata.get("tags", [])]
    return nb


def _name(path: Path, repo: Path) -> str:
    """A path as the manifest writes it: relative to the repository when inside it (portable across clones)."""
    try:
        return path.relative_to(repo).as_posix()
    except ValueError:
        return str(path)


def _inside(path: Path, folders) -> bool:
    return any(path == f or f in path.parents for f in folders)


def _kind(path: Path, repo: Path) -> str | None:
    """``"sources"``, ``"models"`` or ``"data"`` for a file the kernel read; ``None`` for one that is not an input
    (outside the repository and not a model file: fonts, the user's configuration)."""
    if path.suffix in WEIGHT_SUFFIXES or path.suffix == ".json" and path.with_suffix(".safetensors").is_file():
        return "models"
    if not _inside(path, [repo]):
        return None
    if path.suffix == ".py" and _inside(path, [repo / "dclip"]):
        return "sources"
    return "data"


def recorded_inputs(record: dict, nb, parameters: dict, repo: Path, ignore: list[Path]) -> Inputs:
    """The :class:`Inputs` of a run from the recorder's ``record``: the notebook ``nb`` as it ran, its
    ``parameters``, and the files read, without those under ``ignore`` (the run's own outputs, dclip's disk
    cache: results it computed, not inputs), the Python installation, ``.git`` and ``/proc``-like folders."""
    repo = repo.resolve()
    skip = [Path(p).resolve() for p in [*ignore, *record.get("prefixes", []), repo / ".git", repo / ".cache",
                                        "/proc", "/sys", "/dev"]]
    inputs = Inputs(cells_hash(nb), dict(parameters))
    for raw in [*record.get("modules", []), *record.get("reads", [])]:
        path = Path(raw).resolve()
        if _inside(path, skip) or not path.is_file():
            continue
        kind = _kind(path, repo)
        if kind is not None:
            getattr(inputs, kind)[_name(path, repo)] = None
    for kind in ("sources", "data", "models"):
        files = getattr(inputs, kind)
        for name in files:
            files[name] = file_hash(repo / name)
    return inputs


def current(recorded: Inputs, nb, parameters: dict, repo: Path) -> Inputs:
    """The same inputs as today's files have them: the notebook ``nb`` and ``parameters`` now, and each file the
    recorded run read, hashed again (a new file a changed module reads is found because that module changed)."""
    now = Inputs(cells_hash(nb), dict(parameters))
    for kind in ("sources", "data", "models"):
        getattr(now, kind).update({name: file_hash(repo / name) for name in getattr(recorded, kind)})
    return now


def changes(old: Inputs, new: Inputs, kinds=("cells", "parameters", "sources", "data", "models")) -> list[str]:
    """What differs between two runs' inputs, in words a person reads: ``"its cells"``, ``"the parameters"``,
    ``"dclip/method/ddim.py"``, ``"bench/results-recipes-cpu.json (gone)"``."""
    found = []
    if "cells" in kinds and old.cells != new.cells:
        found.append("its cells")
    if "parameters" in kinds and old.parameters != new.parameters:
        found.append("the parameters")
    for kind in ("sources", "data", "models"):
        if kind not in kinds:
            continue
        before, after = getattr(old, kind), getattr(new, kind)
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                found.append(f"{name} (gone)" if after.get(name) is None and name in after else name)
    return found
