"""``make figures``: every notebook run (or skipped when current), whatever happens to the others, then one table.

For each notebook, in order (:func:`make_figures`):

1. **Skip what is current.** Its manifest entry (:mod:`dclip.dev.manifest`) says what its figures were made
   from; when nothing of that changed (:func:`dclip.dev.manifest.status`) and every file it wrote is still
   there, it is skipped (``force`` re-runs it anyway).
2. **Run it aside.** Its figures go to a staging folder (``$DCLIP_FIGURES_DIR``, which the notebooks honour) and
   its kernel writes down the files it read (:mod:`dclip.dev.figure_inputs`).
3. **Only a finished run replaces figures.** When the notebook ran to its end, its files are renamed into
   ``figures/<subdir>/`` (with Ctrl-C held off: :func:`dclip.runtime.atomic.interrupts_held`), the files of its
   previous run that it no longer writes are removed, its small copy for readers and its manifest entry are
   written. A notebook that fails leaves the previous figures as they were, and its executed copy (with the failing
   cell's output and papermill's note at the top) in ``.cache/executed/<profile>/``; the next notebooks still run.

Ctrl-C stops the run between two files: one line, exit status 130, no partial file and no notebook whose figures
mix two runs.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..notebook.outputs import format_table
from . import manifest
from .figure_inputs import recorded_inputs

__all__ = ["Outcome", "Interrupted", "make_figures", "report", "status_table"]


@dataclass
class Outcome:
    """What happened to one notebook: ``ran``, ``skipped: current`` or ``failed at cell N: <error's last line>``."""

    name: str
    status: str
    seconds: float = 0.0
    written: list[str] = field(default_factory=list)
    executed: Path | None = None

    @property
    def failed(self) -> bool:
        return self.status.startswith("failed")


class Interrupted(Exception):
    """Ctrl-C during notebook ``name``; ``done`` holds the outcomes of the notebooks before it."""

    def __init__(self, name: str, done: list[Outcome]):
        super().__init__(name)
        self.name, self.done = name, done


def _running_cell(executed: Path) -> str | None:
    """The source of the cell the executed copy ``executed`` was in when it stopped: the last one papermill
    started (a cell that timed out raises no error of its own that names it)."""
    import nbformat

    try:
        cells = nbformat.read(executed, as_version=4).cells
    except (OSError, ValueError):
        return None
    started = [c for c in cells if (c.metadata.get("papermill") or {}).get("start_time")]
    return started[-1].source if started else None


def _failure(err: Exception, nb, executed: Path) -> str:
    """``failed at cell N: <last line of the error>``; N counts the source notebook's cells from 0."""
    source = getattr(err, "source", None) or _running_cell(executed)
    cell = next((i for i, c in enumerate(nb.cells) if source is not None and c.source == source), None)
    name, text = (err.ename, err.evalue) if getattr(err, "ename", None) else (type(err).__name__, str(err))
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    last = f"{name}: {lines[-1]}"[:200] if lines else name
    return f"failed at cell {cell}: {last}" if cell is not None else f"failed: {last}"


def _interrupted(err: Exception) -> bool:
    """Whether a notebook's error is Ctrl-C reaching its kernel (a terminal sends it to the whole process group)."""
    return getattr(err, "ename", None) == "KeyboardInterrupt"


def _move_into(staged: Path, folder: Path, old: list[str]) -> list[str]:
    """Rename every file under ``staged`` to the same place under ``folder``; remove the files of ``old`` (the
    previous run's) it did not write again. Returns the files written, relative to ``folder``."""
    written = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
    for name in written:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (staged / name).replace(folder / name)
    for name in set(old) - set(written):
        (folder / name).unlink(missing_ok=True)
    return written


def _run_one(path: Path, profile, folder: Path, executed_dir: Path, staging: Path, entry: dict | None, *,
             kernel: str, timeout: int, repo: Path) -> Outcome:
    import nbformat

    from ..notebook.outputs import figures_dir
    from ..runtime.atomic import interrupts_held
    from ..runtime.cache import cache_root
    from ..runtime.environment import environment
    from .notebook_runs import parameters_of, run_notebook
    from .readable import write_readable

    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    staged = figures_dir(profile, staging / "figures")
    record = staging / "inputs.json"
    nb = nbformat.read(path, as_version=4)
    parameters = parameters_of(path, profile.name)
    made_by = manifest.provenance(repo)  # the commit and tree the run starts from
    started, start = datetime.now(timezone.utc), time.perf_counter()
    try:
        with environment(DCLIP_FIGURES_DIR=str(staging / "figures")):
            executed = run_notebook(path, profile.name, executed_dir, kernel=kernel, timeout=timeout, record=record)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # papermill's error for a failing cell; a timeout; a kernel that died
        if _interrupted(err):
            raise KeyboardInterrupt from None
        copy = executed_dir / path.name
        return Outcome(path.stem, _failure(err, nb, copy), time.perf_counter() - start, executed=copy)
    inputs = recorded_inputs(json.loads(record.read_text()), nb, parameters, repo, ignore=[staging, cache_root()])
    seconds = time.perf_counter() - start
    with interrupts_held():
        write_readable(executed, staged / "notebooks")
        written = _move_into(staged, folder, (entry or {}).get("outputs", []))
        manifest.write_entry(folder, path.stem, {
            "key": inputs.key(), "inputs": inputs.to_json(), **made_by, "profile": profile.name,
            "started": started.isoformat(timespec="seconds"), "duration_s": round(seconds, 1), "outputs": written})
    shutil.rmtree(staging, ignore_errors=True)
    return Outcome(path.stem, "ran", seconds, written, executed)


def make_figures(paths: list[Path], profile, *, folder: Path, executed_dir: Path, kernel: str, timeout: int,
                 force: bool = False, repo: Path, progress=print) -> list[Outcome]:
    """Run (or skip, when current) each notebook of ``paths`` at ``profile`` (a
    :class:`dclip.notebook.profiles.Profile`), its figures into ``folder``; one :class:`Outcome` each, in order.
    ``progress`` gets a line as each notebook ends. Raises :class:`Interrupted` on Ctrl-C."""
    import nbformat

    from .notebook_runs import check_kernel, parameters_of

    outcomes: list[Outcome] = []
    entries = manifest.read_manifest(folder)
    checked_kernel = False
    for path in paths:
        start = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        state = manifest.status(entries.get(path.stem), nb, parameters_of(path, profile.name), repo, folder)
        if state.state == "current" and not force:
            outcome = Outcome(path.stem, "skipped: current", time.perf_counter() - start)
        else:
            if not checked_kernel:
                check_kernel(kernel)
                checked_kernel = True
            staging = repo / ".cache" / "figures-staging" / path.stem
            try:
                outcome = _run_one(path, profile, folder, executed_dir, staging, entries.get(path.stem),
                                   kernel=kernel, timeout=timeout, repo=repo)
            except KeyboardInterrupt:
                shutil.rmtree(staging, ignore_errors=True)
                raise Interrupted(path.stem, outcomes) from None
            entries = manifest.read_manifest(folder)
        outcomes.append(outcome)
        progress(f"{outcome.name}: {outcome.status} ({outcome.seconds:.1f} s)")
    return outcomes


def report(outcomes: list[Outcome], folder: Path) -> str:
    """The table printed at the end: notebook, status, time, files written (and where a failure's copy is)."""
    rows = [[o.name, o.status, f"{o.seconds:.0f} s" if o.seconds >= 1 else f"{o.seconds:.2f} s",
             str(len(o.written)) if o.status == "ran" else "-"] for o in outcomes]
    header = ["notebook", "status", "time", "files written"]
    lines = [format_table([dict(zip(header, r)) for r in rows])]
    lines += [f"{o.name}: its executed copy, with the error, is {o.executed}" for o in outcomes if o.failed]
    lines.append(f"figures and manifest: {folder}")
    return "\n".join(lines)


def status_table(paths: list[Path], profile, folder: Path, repo: Path) -> str:
    """``--status``: each notebook's figures against today's files, without running anything."""
    import nbformat

    from .notebook_runs import parameters_of

    entries = manifest.read_manifest(folder)
    rows = []
    for path in paths:
        entry = entries.get(path.stem)
        state = manifest.status(entry, nbformat.read(path, as_version=4), parameters_of(path, profile.name), repo,
                                folder)
        made = f"{entry.get('commit', '?')[:10]}{' (dirty)' if entry.get('dirty') else ''}" if entry else "-"
        rows.append([path.stem, str(state), made])
    table = format_table([dict(zip(["notebook", "figures", "made at commit"], r)) for r in rows])
    return f"{table}\nmanifest: {folder / manifest.MANIFEST}"

