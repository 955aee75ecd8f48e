"""dclip's disk cache: precomputed latents and fine-tuned models reused by later sessions.

* Where: ``$DCLIP_CACHE``, else ``$XDG_CACHE_HOME/dclip``, else ``~/.cache/dclip`` -- where caches
  live, never inside the source checkout. Entries sit in three folders, ``latents/``
  (``latents-<key>.pt``), ``finetuned/`` (``<key>.safetensors`` plus its ``<key>.json`` sidecar) and
  ``global_directions/`` (StyleCLIP's precomputed channel directions, the same pair of files).
  Nothing else under the root is touched (the default weights folder ``~/.cache/dclip/weights`` is
  not cache and is never evicted or cleared).
* Bounded: after a session writes an entry, :func:`enforce_limit` removes least-recently-used
  entries until the cache fits in ``$DCLIP_CACHE_MAX_GB`` (default 20 GB; a 256² fine-tune is
  about 455 MB). Reading an entry marks it used (:func:`touch`).
* Complete entries only: every file is written atomically (:mod:`dclip.runtime.atomic`), and a fine-tune
  counts only once both of its files exist (:func:`is_complete`); leftovers of an interrupted write
  are removed by eviction and by ``clear``.
* ``python -m dclip cache`` lists the entries with their sizes; ``python -m dclip cache clear`` empties it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SECTIONS", "Entry", "cache_root", "section", "max_bytes", "is_complete", "touch", "entries",
           "total_bytes", "enforce_limit", "clear", "describe", "main"]

#: The cache's folders (everything else under the root is left alone).
SECTIONS = ("latents", "finetuned", "global_directions")
#: Files a complete entry is made of, by section: (main file suffix, companion suffixes).
_FILES = {"latents": (".pt", ()), "finetuned": (".safetensors", (".json",)),
          "global_directions": (".safetensors", (".json",))}
_DEFAULT_MAX_GB = 20.0
#: A temporary file older than this is an interrupted write (a younger one may be another process's).
_STALE_TMP_S = 3600.0


def cache_root() -> Path:
    """The cache folder: ``$DCLIP_CACHE``, else ``$XDG_CACHE_HOME/dclip``, else ``~/.cache/dclip``."""
    explicit = os.environ.get("DCLIP_CACHE", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "dclip"


def section(name: str) -> Path:
    """The folder of one kind of entry (``latents`` or ``finetuned``)."""
    if name not in SECTIONS:
        raise ValueError(f"unknown cache section '{name}'; choose one of {SECTIONS}.")
    return cache_root() / name


def max_bytes() -> int:
    """The size limit in bytes: ``$DCLIP_CACHE_MAX_GB`` gigabytes (default 20)."""
    text = os.environ.get("DCLIP_CACHE_MAX_GB", "").strip()
    try:
        gb = float(text) if text else _DEFAULT_MAX_GB
    except ValueError:
        raise ValueError(f"DCLIP_CACHE_MAX_GB='{text}' is not a number of gigabytes (e.g. 20).") from None
    return int(gb * 1e9)


def is_complete(path: str | os.PathLike) -> bool:
    """True when the entry whose main file is ``path`` exists with all its companion files."""
    path = Path(path)
    companions = _FILES.get(path.parent.name, (path.suffix, ()))[1]
    return path.is_file() and all(path.with_suffix(s).is_file() for s in companions)


def touch(path: str | os.PathLike) -> None:
    """Mark an entry as just used (its files' modification time is the LRU clock)."""
    path = Path(path)
    companions = _FILES.get(path.parent.name, (path.suffix, ()))[1]
    for file in [path, *(path.with_suffix(s) for s in companions)]:
        try:
            os.utime(file)
        except OSError:  # a read-only cache still works, it just forgets the order of use
            pass


@dataclass(frozen=True)
class Entry:
    """One cache entry: its files, their total size, when it was last used and whether it is complete."""

    section: str
    key: str
    files: tuple[Path, ...]
    size: int
    last_used: float
    complete: bool

    @property
    def path(self) -> Path:
        """The entry's main file."""
        return self.files[0]


def _group(folder: Path, name: str) -> list[Entry]:
    main, companions = _FILES[name]
    groups: dict[str, list[Path]] = {}
    for file in folder.iterdir() if folder.is_dir() else ():
        if file.is_file():
            key = file.name if file.name.endswith(".tmp") else file.stem
            groups.setdefault(key, []).append(file)
    result = []
    for key, files in groups.items():
        files.sort(key=lambda f: (f.suffix != main, f.name))
        stats = [f.stat() for f in files]
        complete = not key.endswith(".tmp") and {f.suffix for f in files} >= {main, *companions}
        result.append(Entry(name, key, tuple(files), sum(s.st_size for s in stats),
                            max(s.st_mtime for s in stats), complete))
    return result


def entries() -> list[Entry]:
    """Every entry in the cache (complete or not), least recently used first."""
    found = [e for name in SECTIONS for e in _group(section(name), name)]
    return sorted(found, key=lambda e: e.last_used)


def total_bytes() -> int:
    """The cache's size on disk (its two folders)."""
    return sum(e.size for e in entries())


def _remove(entry: Entry) -> None:
    for file in entry.files:
        file.unlink(missing_ok=True)


def enforce_limit(limit: int | None = None, *, keep: tuple[str | os.PathLike, ...] = ()) -> list[Entry]:
    """Remove interrupted writes, then least-recently-used entries until the cache fits in ``limit``
    bytes (default :func:`max_bytes`). Entries whose main file is in ``keep`` stay. Returns the removed."""
    limit = max_bytes() if limit is None else int(limit)
    kept = {Path(k).resolve() for k in keep}
    now, removed = time.time(), []
    current = entries()
    for entry in current:
        if not entry.complete and now - entry.last_used > _STALE_TMP_S:
            _remove(entry)
            removed.append(entry)
    current = [e for e in current if e not in removed]
    total = sum(e.size for e in current)
    for entry in current:  # least recently used first
        if total <= limit:
            break
        if entry.path.resolve() in kept or not entry.complete:
            continue
        _remove(entry)
        removed.append(entry)
        total -= entry.size
    return removed


def clear() -> tuple[int, int]:
    """Remove every entry (complete or not); returns (entries removed, bytes freed)."""
    found = entries()
    for entry in found:
        _remove(entry)
    return len(found), sum(e.size for e in found)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def describe() -> str:
    """The cache's location, its entries (most recently used first) and its size against the limit."""
    found = entries()
    lines = [f"dclip cache: {cache_root()} (set DCLIP_CACHE to move it)"]
    for e in reversed(found):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
        state = "" if e.complete else "  (incomplete: removed by the next eviction or `clear`)"
        lines.append(f"  {e.section:<9} {e.key:<32} {_size(e.size):>9}  last used {when}{state}")
    lines.append(f"{len(found)} entries, {_size(sum(e.size for e in found))} of {_size(max_bytes())} "
                 "(DCLIP_CACHE_MAX_GB; least recently used entries are evicted beyond it)")
    return "\n".join(lines)


def main(action: str = "list") -> int:
    """``python -m dclip cache [list|clear]``."""
    if action == "list":
        print(describe())
    elif action == "clear":
        n, size = clear()
        print(f"removed {n} entries ({_size(size)}) from {cache_root()}")
    else:
        raise ValueError(f"unknown cache action '{action}'; use 'list' or 'clear'.")
    return 0
