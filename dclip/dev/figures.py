"""``python -m dclip figures``: run the numbered notebooks end to end and collect their figures.

    python -m dclip figures --profile auto            # every notebook (make figures)
    python -m dclip figures --profile toy --only 01 03
    python -m dclip figures --status                  # which figures are current, and what changed
    python -m dclip figures --force                   # re-run all, current or not (make figures FORCE=1)
    python -m dclip figures --store-outputs           # refresh the outputs stored in the notebooks

Each notebook runs under papermill with the ``dclip`` Jupyter kernel (``make setup`` registers
it), the profile injected as a parameter and a per-cell time limit; the executed copies go to
``.cache/executed/<profile>/`` so the source notebooks stay clean. The notebooks themselves write
their figures and tables to ``figures/`` (``figures/toy/`` and ``figures/smoke/`` at those profiles).
Each executed copy is also written, with its figures and verdicts but made small
(:func:`dclip.dev.readable.readable_copy`: no widget state, long printed output shortened), beside them in ``figures/<subdir>/notebooks/``, where a reader
browsing the repository opens it; those are committed and exempt from the nbstripout filter
(``.gitattributes``), and the run warns when they take more than :data:`dclip.dev.readable.READABLE_BUDGET` in all.

A notebook whose figures are current (nothing it read has changed: ``figures/<subdir>/manifest.json``) is
skipped; one that fails leaves its previous figures and the others still run; the run ends with one table
(:mod:`dclip.dev.figure_runs`, :mod:`dclip.dev.manifest`).

``--store-outputs`` executes each notebook at :data:`CHECKED_PROFILE` in place and keeps only the
outputs of cells marked ``# NBVAL_CHECK_OUTPUT``: those are what ``make test`` (nbval) compares.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .notebook_runs import KERNEL, check_kernel, notebooks
from .readable import check_readable_size

__all__ = ["CHECK_MARK", "CHECKED_PROFILE", "NBSTRIPOUT_KEYS", "strip_outputs", "store_outputs", "main"]

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
#: The profile whose checked outputs the notebooks store and nbval compares (the Makefile's NBVAL_PROFILE).
#: "toy-check": the trained miniature models on fewer faces than the figures, so nbval checks numbers that mean
#: something (the method's edits, judged) in a few minutes.
CHECKED_PROFILE = "toy-check"


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
    p.add_argument("--force", action="store_true",
                   help="re-run every notebook, also those whose figures are current (make figures FORCE=1)")
    p.add_argument("--status", action="store_true",
                   help="say which notebooks' figures are current, and what changed for the others; run nothing")
    p.add_argument("--notebooks", default=None, help="notebook folder (default: the repository's notebooks/)")
    p.add_argument("--executed", default=None, help="where executed copies go (default: .cache/executed/<profile>)")
    p.add_argument("--kernel", default=KERNEL, help="Jupyter kernel name (default: %(default)s)")
    p.add_argument("--timeout", type=int, default=None,
                   help="seconds per cell, a guard against a hung kernel (default: 600 at smoke, 1800 at the "
                        "toy profiles, 7200 otherwise)")
    p.add_argument("--store-outputs", action="store_true",
                   help="execute at CHECKED_PROFILE in place and keep only the # NBVAL_CHECK_OUTPUT outputs")
    p.add_argument("--strip", action="store_true", help="only strip outputs in place (no execution)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Returns 0 when every notebook ran or was current, 1 when one failed, 130 on Ctrl-C."""
    import nbformat

    from ..notebook.outputs import figures_dir, repo_root
    from ..notebook.profiles import get_profile
    from .doc_blocks import DOC_BLOCKS
    from .doc_tables import write_doc_tables
    from .figure_runs import Interrupted, make_figures, report, status_table

    args = _parser().parse_args(argv)
    folder = Path(args.notebooks) if args.notebooks else repo_root() / "notebooks"
    paths = notebooks(folder, args.only)
    if args.strip:
        for path in paths:
            nbformat.write(strip_outputs(nbformat.read(path, as_version=4)), path)
            print(f"stripped {path.name}")
        return 0
    timeout = args.timeout or (600 if args.profile == "smoke" or args.store_outputs else
                               1800 if args.profile in ("toy", "toy-check") else 7200)
    if args.store_outputs:
        check_kernel(args.kernel)
        for path in paths:
            start = time.perf_counter()
            store_outputs(path, kernel=args.kernel, timeout=timeout)
            print(f"{path.name}: {time.perf_counter() - start:.1f} s, stored checked outputs", flush=True)
        return 0
    profile = get_profile(args.profile, verbose=not args.status)
    figures = figures_dir(profile)
    repo = repo_root()
    if args.status:
        print(status_table(paths, profile, figures, repo))
        return 0
    executed = Path(args.executed) if args.executed else repo_root() / ".cache" / "executed" / profile.name
    try:
        outcomes = make_figures(paths, profile, folder=figures, executed_dir=executed, kernel=args.kernel,
                                timeout=timeout, force=args.force, repo=repo,
                                progress=lambda line: print(line, flush=True))
    except Interrupted as stop:
        ran = ", ".join(o.name for o in stop.done) or "none"
        print(f"dclip figures: interrupted in {stop.name}; its figures and those after it are as they were "
              f"(done before it: {ran})", file=sys.stderr)
        return 130
    print(report(outcomes, figures))
    for doc in write_doc_tables(repo, DOC_BLOCKS):  # also when every notebook was current: the docs follow the CSVs
        print(f"rewrote the generated tables and numbers in {doc}")
    if (figures / "notebooks").is_dir():
        print(f"executed notebooks in {figures / 'notebooks'}: "
              f"{check_readable_size(figures / 'notebooks') / 1e6:.1f} MB in all")
    return 1 if any(o.failed for o in outcomes) else 0
