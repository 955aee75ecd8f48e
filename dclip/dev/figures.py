"""``python -m dclip figures``: run the numbered notebooks end to end and collect their figures.

    python -m dclip figures --profile auto            # every notebook (make figures)
    python -m dclip figures --profile toy --only 01 03
    python -m dclip figures --store-outputs           # refresh the outputs stored in the notebooks

Each notebook runs under papermill with the ``dclip`` Jupyter kernel (``make setup`` registers
it), the profile injected as a parameter and a per-cell time limit; the executed copies go to
``.cache/executed/<profile>/`` so the source notebooks stay clean. The notebooks themselves write
their figures and tables to ``figures/`` (``figures/toy/`` and ``figures/smoke/`` at those profiles).

``--store-outputs`` executes each notebook at :data:`CHECKED_PROFILE` in place and keeps only the
outputs of cells marked ``# NBVAL_CHECK_OUTPUT``: those are what ``make test`` (nbval) compares.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

__all__ = ["CHECK_MARK", "CHECKED_PROFILE", "NBSTRIPOUT_KEYS", "notebooks", "strip_outputs", "run_notebook",
           "store_outputs", "main"]

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
KERNEL = "dclip"
#: The profile whose checked outputs the notebooks store and nbval compares (the Makefile's NBVAL_PROFILE).
#: "toy": the trained miniature models, so nbval checks numbers that mean something (the method's edits, judged).
CHECKED_PROFILE = "toy"


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


def _check_kernel(kernel: str) -> None:
    from jupyter_client.kernelspec import find_kernel_specs

    if kernel not in find_kernel_specs():
        raise SystemExit(f"Jupyter kernel '{kernel}' is not registered; run `make setup` (it registers it), "
                         f"or pass --kernel python3.")


def run_notebook(path: Path, profile: str, out_dir: Path, *, kernel: str = KERNEL, timeout: int = 1800) -> Path:
    """Execute one notebook with papermill at ``profile``; returns the executed copy's path."""
    import papermill

    out = out_dir / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    parameters = {"profile": profile}
    if "interactive" in papermill.inspect_notebook(str(path)):
        parameters["interactive"] = False  # widgets would wait for a person; show the static result
    papermill.execute_notebook(str(path), str(out), parameters=parameters,
                               kernel_name=kernel, cwd=str(path.parent), execution_timeout=timeout,
                               progress_bar=False, log_output=False, request_save_on_cell_execute=False)
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
    p.add_argument("--profile", default="auto", choices=["auto", "paper", "toy", "smoke"],
                   help="run profile injected into every notebook (default: %(default)s)")
    p.add_argument("--only", nargs="+", default=None, metavar="NN", help="only these notebooks (number or name prefix)")
    p.add_argument("--notebooks", default=None, help="notebook folder (default: the repository's notebooks/)")
    p.add_argument("--executed", default=None, help="where executed copies go (default: .cache/executed/<profile>)")
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
    timeout = args.timeout or (600 if args.profile in ("toy", "smoke") or args.store_outputs else 7200)
    out_dir = Path(args.executed) if args.executed else repo_root() / ".cache" / "executed" / args.profile
    for path in paths:
        start = time.perf_counter()
        if args.store_outputs:
            store_outputs(path, kernel=args.kernel, timeout=timeout)
            done = "stored checked outputs"
        else:
            run_notebook(path, args.profile, out_dir, kernel=args.kernel, timeout=timeout)
            done = f"executed copy in {out_dir}"
        print(f"{path.name}: {time.perf_counter() - start:.1f} s, {done}", flush=True)
    return 0
