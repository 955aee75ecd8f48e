"""``python -m dclip figures``: run the numbered notebooks end to end and collect their figures.

    python -m dclip figures --profile auto            # every notebook (make figures)
    python -m dclip figures --profile toy --only 01 03
    python -m dclip figures --store-outputs           # refresh the outputs stored in the notebooks

Each notebook runs under papermill with the ``dclip`` Jupyter kernel (``make setup`` registers
it), the profile injected as a parameter and a per-cell time limit; the executed copies go to
``.cache/executed/<profile>/`` so the source notebooks stay clean. The notebooks themselves write
their figures and tables to ``figures/`` (``figures/toy/`` and ``figures/smoke/`` at those profiles).
Each executed copy is also written, with its figures and verdicts but made small (:func:`readable_copy`:
no widget state, long printed output shortened), beside them in ``figures/<subdir>/notebooks/``, where a reader
browsing the repository opens it; those are committed and exempt from the nbstripout filter
(``.gitattributes``), and the run warns when they take more than :data:`READABLE_BUDGET` in all.

``--store-outputs`` executes each notebook at :data:`CHECKED_PROFILE` in place and keeps only the
outputs of cells marked ``# NBVAL_CHECK_OUTPUT``: those are what ``make test`` (nbval) compares.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

__all__ = ["CHECK_MARK", "CHECKED_PROFILE", "NBSTRIPOUT_KEYS", "READABLE_BUDGET", "notebooks", "strip_outputs",
           "readable_copy", "write_readable", "check_readable_size", "run_notebook", "store_outputs", "main"]

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
KERNEL = "dclip"
#: The profile whose checked outputs the notebooks store and nbval compares (the Makefile's NBVAL_PROFILE).
#: "toy-check": the trained miniature models on fewer faces than the figures, so nbval checks numbers that mean
#: something (the method's edits, judged) in a few minutes.
CHECKED_PROFILE = "toy-check"


def notebooks(folder: str | os.PathLike, only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in ``folder`` (``NN_name.ipynb``), filtered by number or name prefix."""
    found = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if any(p.name.startswith(o) for o in only)]
        if not found:
            raise ValueError(f"no notebook in {folder} matches {only}.")
    return found


# The keys nbstripout strips by default (its command line's list); the git filter `make setup` installs
# runs `python -m nbstripout --keep-id` with them, so a stored notebook is what that filter writes.
NBSTRIPOUT_KEYS = ["metadata.signature", "metadata.widgets", "cell.metadata.collapsed", "cell.metadata.ExecuteTime",
                   "cell.metadata.execution", "cell.metadata.heading_collapsed", "cell.metadata.hidden",
                   "cell.metadata.scrolled"]


def strip_outputs(nb) -> object:
    """Clear every code cell's outputs except those marked ``# NBVAL_CHECK_OUTPUT``; drop run metadata.

    The checked cells get the cell metadata ``keep_output: true``, which is how nbstripout (the git filter
    ``make setup`` installs) knows to keep their outputs; then nbstripout strips the notebook as the filter
    does: no execution counts (``notebooks/conftest.py`` gives nbval the checked cells' back), no per-cell
    timings, no saved widget state; papermill's records go too. A stored notebook changes only when a
    checked number does, and a session in JupyterLab leaves ``git status`` clean.
    """
    from nbstripout import strip_output

    for cell in nb.cells:
        if cell.cell_type == "code" and CHECK_MARK in cell.source:
            cell.metadata["keep_output"] = True
        cell.metadata.pop("papermill", None)
    nb.metadata.pop("papermill", None)
    return strip_output(nb, keep_output=False, keep_count=False, keep_id=True, extra_keys=NBSTRIPOUT_KEYS)


#: The executed copies in ``figures/<subdir>/notebooks/`` are committed: together they stay under this many bytes.
READABLE_BUDGET = 5_000_000
#: A printed output (stdout, stderr, a plain-text result) longer than this keeps only its start and its end.
MAX_TEXT_CHARS = 4000
#: Saved widget state and views: only a running kernel can show them.
WIDGET_TYPES = ("application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json")
_RUN_METADATA = ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled")


def _shorten(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` within about ``limit`` characters: its first and last lines, and a line saying what was cut."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit // 2], text[-(limit // 2):]
    head, tail = head[: head.rfind("\n") + 1] or head, tail[tail.find("\n") + 1:] or tail
    cut = len(text) - len(head) - len(tail)
    return f"{head}[... {cut} characters cut here; the full executed copy has them ...]\n{tail}"


def _settled(text: str) -> str:
    """Printed text as a terminal ends up showing it: of a line rewritten with carriage returns (a progress
    bar), only its last state."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.replace("\r\n", "\n").split("\n"))


def _small_outputs(outputs: list) -> list:
    """A code cell's outputs as a reader needs them: consecutive prints to one stream as one output, settled and
    shortened; results and figures without widget views, long plain text shortened; errors as they are."""
    from nbformat.v4 import new_output

    kept: list = []
    for out in outputs:
        if out.output_type == "stream":
            if kept and kept[-1].output_type == "stream" and kept[-1].name == out.name:
                kept[-1].text += out.text
            else:
                kept.append(new_output("stream", name=out.name, text=out.text))
        elif out.output_type in ("display_data", "execute_result"):
            data = {k: v for k, v in out.get("data", {}).items() if k not in WIDGET_TYPES}
            if not data:
                continue
            if isinstance(data.get("text/plain"), str):
                data["text/plain"] = _shorten(data["text/plain"])
            out.data = data
            kept.append(out)
        else:
            kept.append(out)
    for out in kept:
        if out.output_type == "stream":
            out.text = _shorten(_settled(out.text))
    return [o for o in kept if o.output_type != "stream" or o.text.strip()]


def readable_copy(nb) -> object:
    """An executed notebook made small enough to commit, changed in place and returned: every figure, table and
    verdict kept; no saved widget state or widget views, no papermill or timing records, printed output settled
    (progress bars at their last state) and shortened to :data:`MAX_TEXT_CHARS` per output."""
    for key in ("widgets", "papermill"):
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in _RUN_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = _small_outputs(cell.outputs)
    return nb


def write_readable(executed: Path, folder: Path) -> Path:
    """Write :func:`readable_copy` of the executed notebook ``executed`` to ``folder`` (same name)."""
    import nbformat

    from ..runtime.atomic import atomic_write

    nb = readable_copy(nbformat.read(executed, as_version=4))
    folder.mkdir(parents=True, exist_ok=True)
    return atomic_write(folder / executed.name, lambda tmp: nbformat.write(nb, str(tmp)))


def check_readable_size(folder: Path, budget: int = READABLE_BUDGET) -> int:
    """The bytes the notebooks in ``folder`` take; over ``budget``, a warning on stderr says which are largest."""
    import sys

    sizes = {p.name: p.stat().st_size for p in sorted(Path(folder).glob("*.ipynb"))}
    total = sum(sizes.values())
    if total > budget:
        largest = ", ".join(f"{n} {b / 1e6:.1f} MB" for n, b in sorted(sizes.items(), key=lambda i: -i[1])[:3])
        print(f"warning: the executed notebooks in {folder} take {total / 1e6:.1f} MB, over the "
              f"{budget / 1e6:.0f} MB they may take in the repository (largest: {largest}); show fewer or smaller "
              "figures in them", file=sys.stderr)
    return total


def _check_kernel(kernel: str) -> None:
    from jupyter_client.kernelspec import find_kernel_specs

    if kernel not in find_kernel_specs():
        raise SystemExit(f"Jupyter kernel '{kernel}' is not registered; run `make setup` (it registers it), "
                         f"or pass --kernel python3.")


def run_notebook(path: Path, profile: str, out_dir: Path, *, kernel: str = KERNEL, timeout: int = 1800,
                 readable_dir: Path | None = None) -> Path:
    """Execute one notebook with papermill at ``profile``; returns the executed copy's path. With
    ``readable_dir``, also write its :func:`readable_copy` there (``make figures``: ``figures/<subdir>/notebooks``)."""
    import papermill

    out = out_dir / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    parameters = {"profile": profile}
    if "interactive" in papermill.inspect_notebook(str(path)):
        parameters["interactive"] = False  # widgets would wait for a person; show the static result
    papermill.execute_notebook(str(path), str(out), parameters=parameters,
                               kernel_name=kernel, cwd=str(path.parent), execution_timeout=timeout,
                               progress_bar=False, log_output=False, request_save_on_cell_execute=False)
    if readable_dir is not None:
        write_readable(out, readable_dir)
    return out


def store_outputs(path: Path, *, kernel: str = KERNEL, timeout: int = 600) -> None:
    """Run ``path`` at :data:`CHECKED_PROFILE` (no progress bars) in place and keep only the checked outputs."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "DCLIP_PROFILE": CHECKED_PROFILE, "DCLIP_PROGRESS": "0"}
    client = NotebookClient(nb, kernel_name=kernel, timeout=timeout, record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)  # the kernel gets these settings; this process's environment is untouched
    nbformat.write(strip_outputs(nb), path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dclip figures", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="auto", choices=["auto", "paper", "toy", "toy-check", "smoke"],
                   help="run profile injected into every notebook (default: %(default)s)")
    p.add_argument("--only", nargs="+", default=None, metavar="NN", help="only these notebooks (number or name prefix)")
    p.add_argument("--notebooks", default=None, help="notebook folder (default: the repository's notebooks/)")
    p.add_argument("--executed", default=None, help="where executed copies go (default: .cache/executed/<profile>)")
    p.add_argument("--readable", default=None, help="where their small copies for readers go (default: the "
                   "profile's figures folder's notebooks/, e.g. figures/toy/notebooks)")
    p.add_argument("--kernel", default=KERNEL, help="Jupyter kernel name (default: %(default)s)")
    p.add_argument("--timeout", type=int, default=None,
                   help="seconds per cell (default: 600 at the toy and smoke profiles, 7200 otherwise)")
    p.add_argument("--store-outputs", action="store_true",
                   help="execute at CHECKED_PROFILE in place and keep only the # NBVAL_CHECK_OUTPUT outputs")
    p.add_argument("--strip", action="store_true", help="only strip outputs in place (no execution)")
    return p


def main(argv: list[str] | None = None) -> int:
    import nbformat

    from ..notebook.outputs import repo_root

    args = _parser().parse_args(argv)
    folder = Path(args.notebooks) if args.notebooks else repo_root() / "notebooks"
    paths = notebooks(folder, args.only)
    if args.strip:
        for path in paths:
            nbformat.write(strip_outputs(nbformat.read(path, as_version=4)), path)
            print(f"stripped {path.name}")
        return 0
    _check_kernel(args.kernel)
    timeout = args.timeout or (600 if args.profile in ("toy", "toy-check", "smoke") or args.store_outputs else 7200)
    out_dir = Path(args.executed) if args.executed else repo_root() / ".cache" / "executed" / args.profile
    readable = None if args.store_outputs else _readable_dir(args)
    for path in paths:
        start = time.perf_counter()
        if args.store_outputs:
            store_outputs(path, kernel=args.kernel, timeout=timeout)
            done = "stored checked outputs"
        else:
            run_notebook(path, args.profile, out_dir, kernel=args.kernel, timeout=timeout, readable_dir=readable)
            done = f"executed copy in {out_dir}, a small one in {readable}"
        print(f"{path.name}: {time.perf_counter() - start:.1f} s, {done}", flush=True)
    if readable is not None:
        print(f"executed notebooks in {readable}: {check_readable_size(readable) / 1e6:.1f} MB in all")
    return 0


def _readable_dir(args) -> Path:
    """``--readable``, else ``notebooks/`` in the figures folder of the profile the notebooks run at."""
    from ..notebook.outputs import figures_dir
    from ..notebook.profiles import get_profile

    return Path(args.readable) if args.readable else figures_dir(get_profile(args.profile, verbose=False)) / "notebooks"
