"""``figures/<subdir>/manifest.json``: where each notebook's figures came from, and whether they are current.

One entry per notebook that ran to its end (a failed run leaves the previous entry and the previous figures):

- ``key`` and ``inputs``: :class:`dclip.dev.figure_inputs.Inputs` (cells, parameters, and each dclip module,
  data file and model file it read, with the sha256 of its bytes);
- ``commit`` and ``dirty``: the git commit the run started from, and whether the tree had changes;
- ``profile`` (the one the notebook ran at), ``device`` (the CPU or GPU), ``torch`` and ``python`` versions;
- ``started`` (UTC), ``duration_s``, and ``outputs``: the files it wrote, relative to the manifest's folder.

:func:`status` compares an entry with today's files; :func:`stale_inputs` is what the repository's test fails on
(a notebook, data file or model file changed since the committed figures were made; a changed dclip module alone
is only reported, so that a code change does not force a 21-minute re-run).
"""
from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .figure_inputs import Inputs, changes, current

__all__ = ["MANIFEST", "read_manifest", "write_entry", "provenance", "Status", "status", "stale_inputs"]

MANIFEST = "manifest.json"


def read_manifest(folder: Path) -> dict:
    """The manifest's notebook entries, by notebook name (``{}`` when there is none yet). A damaged manifest is
    a one-line error: it only tells what can be skipped, so deleting it (re-running all) is always safe."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))["notebooks"]
    except (ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"'{path}' is not a figures manifest ({err}); delete it, and the next run re-makes "
                         "every figure (and the manifest)") from None


def write_entry(folder: Path, name: str, entry: dict) -> Path:
    """Set notebook ``name``'s entry in ``folder``'s manifest (atomically; the other entries as they were)."""
    from ..runtime.atomic import atomic_write

    entries = {**read_manifest(folder), name: entry}
    text = json.dumps({"notebooks": dict(sorted(entries.items()))}, indent=1, sort_keys=True) + "\n"
    return atomic_write(Path(folder) / MANIFEST, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _device() -> str:
    """The GPU that ran the notebooks (CUDA visible to this process), else the CPU's name."""
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"CPU: {name} ({os.cpu_count()} cores)"


def provenance(repo: Path) -> dict:
    """What made a run, besides its inputs: the commit and whether the tree was dirty (changes to tracked files
    outside ``figures/``, which ``make figures`` itself rewrites), the device, versions."""
    import torch

    commit = _git(repo, "rev-parse", "HEAD")
    dirty = _git(repo, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)figures")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None, "device": _device(),
            "torch": torch.__version__, "python": platform.python_version()}


@dataclass
class Status:
    """A notebook's figures against today's files: ``"current"``, ``"stale"`` (with what changed),
    ``"missing outputs"`` (a file it wrote is gone) or ``"never run"``."""

    state: str
    changed: list[str]

    def __str__(self) -> str:
        return f"{self.state}: {', '.join(self.changed)}" if self.changed else self.state


def status(entry: dict | None, nb, parameters: dict, repo: Path, folder: Path) -> Status:
    """Where notebook ``nb``'s figures stand, from its manifest ``entry`` (``None``: never run here)."""
    if not entry:
        return Status("never run", [])
    recorded = Inputs.from_json(entry["inputs"])
    changed = changes(recorded, current(recorded, nb, parameters, repo))
    if changed:
        return Status("stale", changed)
    gone = [name for name in entry.get("outputs", []) if not (Path(folder) / name).is_file()]
    return Status("missing outputs", gone) if gone else Status("current", [])


def stale_inputs(entry: dict, nb, repo: Path) -> list[str]:
    """What changed since ``entry`` was made, of what must not change under committed figures: the notebook's
    cells, the data files and the model files it read (the parameters and dclip's modules are left out)."""
    recorded = Inputs.from_json(entry["inputs"])
    return changes(recorded, current(recorded, nb, recorded.parameters, repo), kinds=("cells", "data", "models"))
