"""Atomic file writes: write beside the target, then rename, so a crash never leaves half a file.

The temporary file is made by :func:`tempfile.mkstemp`, which always creates mode 0600; before the
rename it gets the mode any ordinary new file would have (0666 minus the user's umask), so figures,
tables and weights dclip writes are as readable as the user's other files.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["atomic_write", "new_file_mode"]


def new_file_mode() -> int:
    """The permission bits ``open(path, "w")`` would give a new file: 0o666 minus the current umask."""
    mask = os.umask(0)  # the only portable way to read the umask is to set it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file in the target's folder, then rename it to ``path``.

    The result has the umask's mode (see :func:`new_file_mode`), not ``mkstemp``'s 0600. Readers see
    either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
