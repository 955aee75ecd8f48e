"""Atomic file writes: write beside the target, then rename, so a crash never leaves half a file.

The temporary file is made by :func:`tempfile.mkstemp`, which always creates mode 0600; before the
rename it gets the mode any ordinary new file would have (0666 minus the user's umask), so figures,
tables and weights dclip writes are as readable as the user's other files.

Ctrl-C (``KeyboardInterrupt``) is a failure like any other: the temporary file is removed and the target
is left as it was. :func:`atomic_write_all` writes several files as one (a model and its sidecar): all
temporaries first, then the renames, during which Ctrl-C is held off (:func:`interrupts_held`).
"""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterator, Sequence

__all__ = ["atomic_write", "atomic_write_all", "interrupts_held", "new_file_mode"]


def new_file_mode() -> int:
    """The permission bits ``open(path, "w")`` would give a new file: 0o666 minus the current umask."""
    mask = os.umask(0)  # the only portable way to read the umask is to set it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) off for a few steps that must not be cut apart (renames, making a temporary
    file); one that arrives meanwhile is delivered when the block ends. A no-op outside the main thread (only
    it receives signals) and where the handler is not Python's."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:  # None: not Python's to set
        yield
        return
    caught = []
    signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        signal.raise_signal(signal.SIGINT)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file in the target's folder, then rename it to ``path``.

    The result has the umask's mode (see :func:`new_file_mode`), not ``mkstemp``'s 0600. Readers see
    either the old file or the complete new one, never a partial write.
    """
    return atomic_write_all([(path, write)])[0]


def atomic_write_all(writes: Sequence[tuple[str | os.PathLike, Callable[[Path], None]]]) -> list[Path]:
    """:func:`atomic_write` for several files that belong together, e.g. weights and their sidecar.

    Each ``write(tmp_path)`` fills a temporary file beside its target; only when all succeeded are they
    renamed, in order, with Ctrl-C held off. A failure or Ctrl-C before that removes every temporary file
    and leaves all targets as they were.
    """
    mode, temps = new_file_mode(), []
    try:
        for path, write in writes:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with interrupts_held():  # no temporary file without its entry in temps
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                temps.append((path, Path(tmp)))
                os.close(fd)
            write(Path(tmp))
            os.chmod(tmp, mode)
        with interrupts_held():
            for path, tmp in temps:
                os.replace(tmp, path)
            done, temps = [path for path, _ in temps], []
    except BaseException:
        for _, tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    return done
