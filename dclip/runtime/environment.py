"""Environment variables set for the length of a block, then given back as they were."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

__all__ = ["environment"]


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set the variables ``values`` (inherited by the processes started meanwhile: a Jupyter kernel, a rank)
    while the block runs; afterwards each has its earlier value again, or is unset if it was."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
