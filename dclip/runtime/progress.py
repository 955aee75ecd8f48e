"""Progress bars: one switch for all of dclip. Off unless asked for, or ``DCLIP_PROGRESS=1``; under
torchrun only rank 0 draws them (N interleaved bars on one terminal are unreadable)."""
from __future__ import annotations

import os
from typing import Iterable


def progress_enabled(progress: bool | None) -> bool:
    """An explicit ``progress`` wins; ``None`` follows ``$DCLIP_PROGRESS`` (default off, so tests run quiet).
    Always off on ranks other than 0 of a torchrun job."""
    from .distributed import is_main

    if not is_main():
        return False
    return progress if progress is not None else os.environ.get("DCLIP_PROGRESS", "0") == "1"


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 progress: bool | None = None):
    """A tqdm.auto bar over ``iterable`` (or counting to ``total``), disabled unless :func:`progress_enabled`."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, disable=not progress_enabled(progress))
