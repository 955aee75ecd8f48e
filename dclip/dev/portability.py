"""``python -m dclip portability``: do the stored checks hold on other CPUs?

The numbers ``make test`` compares (the tables in notebook cells marked ``# NBVAL_CHECK_OUTPUT``,
and unit tests with stored expectations) were produced on one machine. Another CPU runs other
kernels (AVX-512, AVX2, plain SSE; one thread or many) and rounds differently; training from
random weights can amplify that rounding into the second decimal. PyTorch and the BLAS libraries
can be told to use an older instruction set, which simulates those CPUs on this one:

    python -m dclip portability spread            # run the notebooks under each CPU; report what moved
    python -m dclip portability spread --only 02  # one notebook
    python -m dclip portability test              # `make test` under each simulated CPU (make test-portable)

``spread`` prints, per saved table and column, the largest change of a value between CPUs (at full
precision, from the JSON tables the notebook saves), and for every checked number that printed
differently the values it took, so that a table can be printed at the precision it is stable to
(or a chaotic quantity left out of the checked cells). It exits non-zero when a checked cell prints different text on different CPUs:
then the stored outputs would fail somewhere.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SIMULATED_CPUS", "CellSpread", "Run", "checked_texts", "compare_texts", "table_spread", "run_checked",
           "main"]

#: Environment settings that make PyTorch (ATen), MKL and oneDNN use another CPU's kernels.
#: "native" is this machine as it is.
SIMULATED_CPUS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "baseline": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                 "ONEDNN_MAX_CPU_ISA": "SSE41", "OMP_NUM_THREADS": "1"},
}

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def checked_texts(nb) -> list[str]:
    """The stdout printed by each cell marked ``# NBVAL_CHECK_OUTPUT``, in order."""
    from .figures import CHECK_MARK

    return ["".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
            for cell in nb.cells if cell.cell_type == "code" and CHECK_MARK in cell.source]


@dataclass
class CellSpread:
    """How one checked cell's text differs between runs."""

    cell: int
    identical: bool
    moved: list[tuple[str, str, list[str]]]  # (row label, column, the value printed in each run)
    other: list[str]                         # differing lines that are not number-for-number comparable

    def max_change(self) -> float:
        """The largest difference between two runs' values of one printed number (0 if none moved)."""
        spans = [max(map(float, v)) - min(map(float, v)) for _, _, v in self.moved]
        return max(spans, default=0.0)


def _fields(line: str, spans: list[tuple[int, int]] | None) -> list[str]:
    """A table row cut into its columns (by the dash rule's spans when known, else by whitespace)."""
    if spans:
        return [line[a:b].strip() for a, b in spans]
    return line.split()


def compare_texts(texts: list[str], cell: int = 0) -> CellSpread:
    """Compare one cell's text across runs, number by number, naming each number by row and column.

    Tables are the ones :func:`dclip.notebook.outputs.format_table` prints: a header line, a rule of dashes
    whose runs give each column's span, then rows; a row is named by its fields that are not numbers.
    """
    lines = [t.splitlines() for t in texts]
    moved, other = [], []
    header: list[str] = []
    spans: list[tuple[int, int]] | None = None
    previous = ""
    for line_runs in zip(*lines):
        first = line_runs[0]
        if first.strip() and set(first.strip()) <= {"-", " "} and len(set(line_runs)) == 1:
            spans = [m.span() for m in re.finditer(r"-+", first)]  # right-aligned cells sit over their dashes
            header = _fields(previous, spans)
            previous = first
            continue
        previous = first
        if len(set(line_runs)) == 1:
            if not first.strip():
                spans = None
            continue
        fields = [_fields(line, spans) for line in line_runs]
        if len({len(f) for f in fields}) != 1:
            other.append(" | ".join(line_runs))
            continue
        label = " ".join(f for f in fields[0] if f and not _NUMBER.match(f)) or fields[0][0]
        for i, values in enumerate(zip(*fields)):
            if len(set(values)) == 1:
                continue
            if all(_NUMBER.match(v) for v in values):
                column = header[i] if spans and i < len(header) else f"#{i}"
                moved.append((label, column, list(values)))
            else:
                other.append(" | ".join(line_runs))
                break
    if len({len(line) for line in lines}) != 1:
        other.append(f"the runs print {sorted({len(line) for line in lines})} lines")
    return CellSpread(cell, len(set(texts)) == 1, moved, other)


@dataclass
class Run:
    """One execution of a notebook: its checked cells' text and the full-precision tables it saved."""

    texts: list[str]
    tables: dict[str, list[dict]]


def run_checked(path: Path, env: dict[str, str], profile: str, *, kernel: str = "dclip",
                timeout: int = 600) -> Run:
    """Execute a copy of notebook ``path`` at ``profile`` with ``env`` added (figures to a temporary folder)."""
    import json

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as figures:
        run_env = {**os.environ, "DCLIP_PROFILE": profile, "DCLIP_PROGRESS": "0", "DCLIP_FIGURES_DIR": figures,
                   **env}
        client = NotebookClient(nb, kernel_name=kernel, timeout=timeout, record_timing=False,
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute(env=run_env)
        tables = {p.stem: json.loads(p.read_text())["rows"] for p in sorted(Path(figures).rglob("*.json"))}
    return Run(checked_texts(nb), tables)


def _group(row: dict) -> str:
    """A row's group in the spread report: its first text field (e.g. the method), else the whole table."""
    return next((v for v in row.values() if isinstance(v, str)), "")


def table_spread(tables: list[list[dict]]) -> dict[str, dict[str, float]]:
    """Per numeric column and row group (first text field), the largest difference between runs of one
    table's value, at full precision; inf where a value is NaN in some runs but not all."""
    spread: dict[str, dict[str, float]] = {}
    for rows in zip(*tables):
        for column in rows[0]:
            values = [row.get(column) for row in rows]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                finite = [float(v) for v in values if v == v]
                change = max(finite) - min(finite) if len(finite) == len(values) else float("inf")
                if not finite:
                    change = 0.0
                groups = spread.setdefault(column, {})
                groups[_group(rows[0])] = max(groups.get(_group(rows[0]), 0.0), change)
    return spread


def _report(name: str, cpus: list[str], runs: list[Run]) -> bool:
    """Print each saved table's full-precision spread and what moved in the checked cells.

    True when every checked cell printed identical text on every CPU.
    """
    for table in runs[0].tables:
        print(f"{name} table {table}: largest change between CPUs")
        for column, groups in table_spread([run.tables.get(table, []) for run in runs]).items():
            print(f"    {column:>12}: " + ", ".join(f"{g or 'all'} {v:.2g}" for g, v in groups.items()))
    stable = True
    for cell, texts in enumerate(zip(*(run.texts for run in runs)), start=1):
        spread = compare_texts(list(texts), cell)
        if spread.identical:
            print(f"{name} checked cell {cell}: identical on {', '.join(cpus)}")
            continue
        stable = False
        print(f"{name} checked cell {cell}: DIFFERS (largest printed change {spread.max_change():.3g})")
        for row, column, values in spread.moved:
            print(f"    {row:<40} {column:>10}: " + "  ".join(f"{c}={v}" for c, v in zip(cpus, values)))
        for line in spread.other:
            print(f"    {line}")
    return stable


def spread(only: list[str] | None, cpus: list[str], profile: str, kernel: str) -> int:
    """``spread``: run each notebook under every CPU setting and report which checked numbers move."""
    from .notebook_runs import notebooks
    from ..notebook.outputs import repo_root

    stable = True
    for path in notebooks(repo_root() / "notebooks", only):
        runs = []
        for cpu in cpus:
            start = time.perf_counter()
            runs.append(run_checked(path, SIMULATED_CPUS[cpu], profile, kernel=kernel))
            print(f"{path.stem} [{cpu}]: {time.perf_counter() - start:.0f} s", flush=True)
        stable &= _report(path.stem, cpus, runs)
    print("every checked output is identical across the CPUs" if stable else
          "some checked outputs differ across CPUs: print them at a precision they are stable to, or check "
          "what holds instead (a sign, an ordering, a bound)")
    return 0 if stable else 1


def test_under_cpus(cpus: list[str], target: str) -> int:
    """``test``: ``make <target>`` once per CPU setting; prints each run's wall time and result."""
    failed = []
    for cpu in cpus:
        start = time.perf_counter()
        print(f"== make {target} on simulated CPU '{cpu}' {SIMULATED_CPUS[cpu] or '(as is)'}", flush=True)
        code = subprocess.call(["make", "--no-print-directory", target], env={**os.environ, **SIMULATED_CPUS[cpu]})
        print(f"== '{cpu}': {'passed' if code == 0 else 'FAILED'} in {time.perf_counter() - start:.0f} s",
              flush=True)
        if code:
            failed.append(cpu)
    print(f"failed on: {', '.join(failed)}" if failed else f"passed on every CPU setting: {', '.join(cpus)}")
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dclip portability", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("spread", help="run the notebooks under each CPU setting and report what moved")
    s.add_argument("--only", nargs="+", default=None, metavar="NN", help="only these notebooks")
    s.add_argument("--profile", default=None, help="the profile the stored outputs are checked at (default: "
                   "the one `make test` uses)")
    s.add_argument("--kernel", default="dclip")
    t = sub.add_parser("test", help="make <target> under each CPU setting")
    t.add_argument("--target", default="test")
    for q in (s, t):
        q.add_argument("--cpus", nargs="+", default=list(SIMULATED_CPUS), choices=list(SIMULATED_CPUS))
    return p


def main(argv: list[str] | None = None) -> int:
    from .figures import CHECKED_PROFILE

    args = _parser().parse_args(argv)
    if args.command == "spread":
        return spread(args.only, args.cpus, args.profile or CHECKED_PROFILE, args.kernel)
    return test_under_cpus(args.cpus, args.target)
