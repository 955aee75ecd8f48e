"""The executed notebooks a reader opens in the repository (``figures/<subdir>/notebooks/``): their figures,
tables and verdicts, without what only a running kernel can show (widget state), long printed output cut to its
start and end, and under a size budget in all."""
from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["READABLE_BUDGET", "MAX_TEXT_CHARS", "readable_copy", "write_readable", "check_readable_size"]


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
    sizes = {p.name: p.stat().st_size for p in sorted(Path(folder).glob("*.ipynb"))}
    total = sum(sizes.values())
    if total > budget:
        largest = ", ".join(f"{n} {b / 1e6:.1f} MB" for n, b in sorted(sizes.items(), key=lambda i: -i[1])[:3])
        print(f"warning: the executed notebooks in {folder} take {total / 1e6:.1f} MB, over the "
              f"{budget / 1e6:.0f} MB they may take in the repository (largest: {largest}); show fewer or smaller "
              "figures in them", file=sys.stderr)
    return total
