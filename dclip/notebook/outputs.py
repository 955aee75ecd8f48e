"""Where the notebooks' results go, and how their numbers are printed and saved.

Figures land in ``figures/`` (paper profile) or ``figures/smoke/`` (smoke profile), so a smoke run
never overwrites a real figure. ``$DCLIP_FIGURES_DIR`` (or a notebook's ``output_dir``) moves the
root elsewhere, e.g. for test runs. Each notebook's numbers are saved next to its figure as CSV and
JSON; the same numbers are printed as a fixed-width table of rounded numbers (the form the notebook
checks compare, each column at the precision it is stable to across CPUs).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..runtime.atomic import atomic_write

__all__ = ["repo_root", "figures_dir", "format_table", "rows_without", "save_table", "save_figure", "round_value",
           "Outputs"]


def repo_root() -> Path:
    """The source checkout dclip runs from (an editable install), else the working directory."""
    root = Path(__file__).resolve().parents[2]  # dclip/notebook/outputs.py -> the checkout
    return root if (root / "notebooks").is_dir() else Path.cwd()


def figures_dir(profile, output_dir: str | os.PathLike = "") -> Path:
    """The folder a profile's figures and tables go to: <root>/<profile.figures_subdir>.

    <root> is ``output_dir`` when given, else ``$DCLIP_FIGURES_DIR``, else ``<repo>/figures``.
    """
    root = output_dir or os.environ.get("DCLIP_FIGURES_DIR", "") or repo_root() / "figures"
    return Path(root) / profile.figures_subdir


def round_value(value, digits: int = 3):
    """A float rounded to ``digits`` decimals with −0.0 turned into 0.0; other values unchanged."""
    if isinstance(value, float):
        if math.isnan(value):
            return value
        value = round(value, digits)
        return 0.0 if value == 0 else value
    return value


def _cell(value, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{round_value(value, digits):.{digits}f}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, float) for v in value):
        return "[" + ", ".join(_cell(v, digits) for v in value) + "]"  # an interval
    return str(value)


def format_table(rows: Sequence[dict], columns: Sequence[str] | None = None,
                 digits: int | Mapping[str, int] = 3) -> str:
    """Rows of dicts as a fixed-width text table; floats rounded, None as "-".

    ``digits`` is the number of decimals for every float, or a mapping column -> decimals (columns
    it does not name get 3). A checked notebook cell prints each column at the precision it is stable
    to across CPUs (``python -m dclip.dev.portability spread`` measures that).
    """
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    places = [digits.get(c, 3) if isinstance(digits, Mapping) else digits for c in columns]
    cells = [[_cell(row.get(c), d) for c, d in zip(columns, places)] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.rjust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def rows_without(rows: Iterable[dict], column: str, values: Sequence) -> list[dict]:
    """The rows whose ``column`` is none of ``values`` (e.g. a method a check leaves out)."""
    return [row for row in rows if row.get(column) not in values]


def _csv_text(rows: Sequence[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def save_table(rows: Iterable[dict], folder: str | os.PathLike, name: str, meta: dict | None = None) -> Path:
    """Write ``rows`` as ``<name>.csv`` and ``<name>.json`` (with ``meta``, e.g. the profile) in ``folder``.

    Returns the CSV path.
    """
    rows = [dict(r) for r in rows]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    folder = Path(folder)
    path = atomic_write(folder / f"{name}.csv", lambda tmp: tmp.write_text(_csv_text(rows, columns)))
    payload = json.dumps({"meta": meta or {}, "rows": rows}, indent=1, default=str)
    atomic_write(folder / f"{name}.json", lambda tmp: tmp.write_text(payload))
    return path


def save_figure(fig, folder: str | os.PathLike, name: str, dpi: int = 120) -> Path:
    """Save a matplotlib figure as ``<folder>/<name>.png`` (atomically)."""
    return atomic_write(Path(folder) / f"{name}.png",
                        lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))


class Outputs:
    """Where one notebook session's figures and tables go, with what produced them (saved beside each table)."""

    def __init__(self, folder: Path, profile, notes: list[str], image_dirs: dict, train_dirs: dict):
        self.folder, self.profile, self.notes = Path(folder), profile, notes
        self.image_dirs, self.train_dirs = image_dirs, train_dirs

    def meta(self) -> dict:
        """What produced a result: the profile's settings and the notes about its inputs."""
        from dataclasses import asdict

        return {"profile": asdict(self.profile), "notes": list(self.notes), "image_dirs": self.image_dirs,
                "train_dirs": self.train_dirs}

    def save_figure(self, fig, name: str) -> Path:
        """Save ``fig`` as ``<figures>/<name>.png`` and say where."""
        path = save_figure(fig, self.folder, name)
        print(f"wrote {path.name} to the figures folder")
        return path

    def save_table(self, rows, name: str) -> Path:
        """Save ``rows`` as ``<figures>/<name>.csv`` and ``.json`` and say where."""
        path = save_table(rows, self.folder, name, self.meta())
        print(f"wrote {path.name} and {path.with_suffix('.json').name} to the figures folder")
        return path
