"""Tables in the docs that are written from the figures' CSVs, never by hand.

A generated table sits in a Markdown file between ``<!-- NAME -->`` and ``<!-- /NAME -->``; :func:`write_doc_tables`
rewrites what is between them from its CSV in ``figures/<subdir>/``. ``python -m dclip figures`` calls it at the end
of every run, also when every notebook was skipped as current, so a doc never lags behind the committed CSVs; a
test (``tests/test_doc_tables.py``) fails when a committed doc disagrees with them.

Each :class:`DocTable` names its file, marker, CSV and the columns it shows. A profile's tables only come from its
own figures folder (the toy tables from ``figures/toy/``), so a run at another profile never overwrites them.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["DocTable", "DocBlock", "DOC_TABLES", "markdown_table", "render", "write_doc_tables", "stale_doc_tables",
           "read_rows"]


@dataclass(frozen=True)
class DocTable:
    """``doc``'s table between the ``marker`` comments, from ``source`` (a CSV under ``figures/``): one row per CSV
    row, ``columns`` maps a header to the CSV column (or ``a ± b``-joined columns, see :func:`_cell`)."""

    doc: str
    marker: str
    source: str
    columns: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DocBlock:
    """``doc``'s text between the ``marker`` comments, written by ``write(root)`` from files under ``root``
    (``None`` when they are missing): a table with computed columns, or a sentence with measured numbers."""

    doc: str
    marker: str
    write: Callable[[Path], str | None]


def read_rows(path: Path) -> list[dict] | None:
    """The rows of a CSV (strings), or None when the file is not there."""
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


#: The generated tables. Column specs: ``col`` prints the CSV value, ``col [col_ci]`` the value and its interval.
DOC_TABLES: tuple[DocTable, ...] = (
    DocTable("docs/toy.md", "edit-failures", "figures/toy/02_edit_failures.csv", (
        ("edit", "edit"), ("t0", "t0"),
        ("true edit's eq. 9 loss", "true_loss [true_loss_ci]"),
        ("best attack in the ball", "attack_loss [attack_loss_ci]"),
        ("pixel descent: loss", "descent_loss"), ("pixel descent: hit", "descent_hit"),
        ("fine-tune's loss, training faces", "train_loss [train_loss_ci]"),
        ("fine-tune's loss, test faces", "test_loss [test_loss_ci]"),
        ("round trip of the true edit: hit", "round_trip_hit"), ("round trip: MAE", "round_trip_mae"),
        ("fine-tuned on the true edit: hit", "truth_hit [truth_hit_ci]"), ("its kept", "truth_kept"),
        ("its targets met", "truth_met"), ("targets met", "targets met"), ("stands in the way", "stands in the way"),
    )),
)


def _number(text: str, digits: int) -> str:
    try:
        value = float(text)
    except ValueError:
        return text
    return text if value.is_integer() and "." not in text else f"{value:.{digits}f}"


def _cell(row: dict, spec: str, digits: int = 2) -> str:
    """One table cell: ``"col"`` -> the value; ``"col [col_ci]"`` -> ``value [lo, hi]``; numbers at ``digits``."""
    match = re.fullmatch(r"(.+?) \[(.+)\]", spec)
    if match is None:
        return _number(row.get(spec, ""), digits) or "–"
    value, interval = row.get(match[1], ""), row.get(match[2], "")
    bounds = [b.strip() for b in interval.strip("[]").split(",") if b.strip()]
    if len(bounds) != 2:
        return _number(value, digits) or "–"
    return f"{_number(value, digits)} [{_number(bounds[0], digits)}, {_number(bounds[1], digits)}]"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table (every column named)."""
    if any(not h for h in header):
        raise ValueError(f"every column needs a header; got {header!r}")
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def render(table: DocTable | DocBlock, root: Path) -> str | None:
    """The Markdown of ``table`` from its CSV under ``root`` (a :class:`DocBlock`: what it writes), or None when the
    files it reads are not there."""
    if isinstance(table, DocBlock):
        return table.write(root)
    rows = read_rows(root / table.source)
    if rows is None:
        return None
    body = markdown_table([h for h, _ in table.columns], [[_cell(r, spec) for _, spec in table.columns] for r in rows])
    return f"{body}\n\n*Written by `python -m dclip figures` from `{table.source}`; do not edit by hand.*"


def _marked(text: str, marker: str) -> re.Match | None:
    return re.search(rf"(<!-- {re.escape(marker)} -->)(.*?)(<!-- /{re.escape(marker)} -->)", text, re.S)


def _replaced(table: DocTable | DocBlock, root: Path) -> tuple[Path, str, str] | None:
    """(doc, its text now, its text with the table rewritten), or None when the CSV is missing."""
    body = render(table, root)
    if body is None:
        return None
    doc = root / table.doc
    text = doc.read_text(encoding="utf-8")
    match = _marked(text, table.marker)
    if match is None:
        what = f"the table from {table.source}" if isinstance(table, DocTable) else "its generated text"
        raise ValueError(f"{table.doc} has no '<!-- {table.marker} -->' ... '<!-- /{table.marker} -->' pair: add the "
                         f"two lines where {what} belongs.")
    inline = "\n" not in match[2] and "\n" not in body  # a phrase inside a sentence stays on its line
    body = body if inline else "\n" + body + "\n"
    return doc, text, text[:match.start(2)] + body + text[match.end(2):]


def write_doc_tables(root: Path, tables: tuple[DocTable | DocBlock, ...] = DOC_TABLES) -> list[str]:
    """Rewrite every table of ``tables`` whose CSV exists (atomically, :func:`dclip.runtime.atomic.atomic_write`);
    returns the docs that changed."""
    from ..runtime.atomic import atomic_write

    changed = []
    for table in tables:
        replaced = _replaced(table, root)
        if replaced is not None and replaced[1] != replaced[2]:
            atomic_write(replaced[0], lambda tmp, text=replaced[2]: tmp.write_text(text, encoding="utf-8"))
            changed.append(table.doc)
    return list(dict.fromkeys(changed))


def stale_doc_tables(root: Path, tables: tuple[DocTable | DocBlock, ...] = DOC_TABLES) -> list[str]:
    """``doc (marker)`` for each table that disagrees with its CSV (a missing CSV counts as stale)."""
    stale = []
    for table in tables:
        replaced = _replaced(table, root)
        if replaced is None or replaced[1] != replaced[2]:
            stale.append(f"{table.doc} ({table.marker})")
    return stale
