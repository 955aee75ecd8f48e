"""Progress bars: one switch for all of dclip. Off unless asked for, or ``DCLIP_PROGRESS=1``."""
from __future__ import annotations

import os
from typing import Iterable


def progress_enabled(progress: bool | None) -> bool:
    """An explicit ``progress`` wins; ``None`` follows ``$DCLIP_PROGRESS`` (default off, so tests run quiet)."""
    return progress if progress is not None else os.environ.get("DCLIP_PROGRESS", "0") == "1"


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 progress: bool | None = None):
    """A tqdm.auto bar over ``iterable`` (or counting to ``total``), disabled unless :func:`progress_enabled`."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, disable=not progress_enabled(progress))
