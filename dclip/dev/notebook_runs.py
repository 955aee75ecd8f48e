"""One notebook run under papermill with the profile injected, and the numbered notebooks of a folder: what
``python -m dclip figures`` (:mod:`dclip.dev.figure_runs`) and the tests build on."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["KERNEL", "notebooks", "check_kernel", "run_notebook", "parameters_of"]

#: The Jupyter kernel ``make setup`` registers (the checkout's ``.venv``).
KERNEL = "dclip"


def notebooks(folder: str | os.PathLike, only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in ``folder`` (``NN_name.ipynb``), filtered by number or name prefix."""
    found = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if any(p.name.startswith(o) for o in only)]
        if not found:
            raise ValueError(f"no notebook in {folder} matches {only}.")
    return found


def check_kernel(kernel: str) -> None:
    from jupyter_client.kernelspec import find_kernel_specs

    if kernel not in find_kernel_specs():
        raise SystemExit(f"Jupyter kernel '{kernel}' is not registered; run `make setup` (it registers it), "
                         f"or pass --kernel python3.")


def _kernel_manager_logging_to(log):
    """A Jupyter kernel manager whose kernels write their own log (a stderr that is not a cell's output: ipykernel's
    warnings, its errors when it is stopped mid-cell, C libraries' messages) to the open file ``log`` instead of the
    terminal, so that ``make figures`` prints its own lines only."""
    from jupyter_client import AsyncKernelManager

    class KernelManagerWithLog(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            await super()._async_launch_kernel(kernel_cmd, **{"stdout": log, "stderr": log, **kw})

    return KernelManagerWithLog


def run_notebook(path: Path, profile: str, out_dir: Path, *, kernel: str = KERNEL, timeout: int = 1800,
                 readable_dir: Path | None = None, record: Path | None = None) -> Path:
    """Execute one notebook with papermill at ``profile``; returns the executed copy's path. With
    ``readable_dir``, also write its :func:`dclip.dev.readable.readable_copy` there (``make figures``:
    ``figures/<subdir>/notebooks``).
    With ``record``, the kernel writes there what it read (:func:`dclip.dev.figure_inputs.recorder_cells`; the
    cells that do it are removed from the copies again, also when the notebook fails). The copy is saved after every
    cell (and every 30 s within one), so that a cell that times out or a kernel that dies leaves it with the cells
    run so far. The kernel's own log goes to ``<out_dir>/<name>.kernel.log``."""
    import nbformat
    import papermill

    from .figure_inputs import recorder_cells, without_recorder
    from .readable import write_readable

    out = out_dir / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(path, as_version=4)
    if record is not None:
        first, last = recorder_cells(record)
        nb.cells = [first, *nb.cells, last]
    try:
        with open(out.with_suffix(".kernel.log"), "wb") as log:
            papermill.execute_notebook(nb, str(out), parameters=parameters_of(path, profile),
                                       kernel_name=kernel, cwd=str(path.parent), execution_timeout=timeout,
                                       progress_bar=False, log_output=False, request_save_on_cell_execute=True,
                                       kernel_manager_class=_kernel_manager_logging_to(log))
    finally:
        if record is not None and out.is_file():
            nbformat.write(without_recorder(nbformat.read(out, as_version=4)), str(out))
    if readable_dir is not None:
        write_readable(out, readable_dir)
    return out


def parameters_of(path: Path, profile: str) -> dict:
    """What papermill injects into notebook ``path``: the profile, and ``interactive=False`` where the notebook has
    that parameter (widgets would wait for a person; the static result is shown)."""
    import papermill

    parameters = {"profile": profile}
    if "interactive" in papermill.inspect_notebook(str(path)):
        parameters["interactive"] = False
    return parameters
