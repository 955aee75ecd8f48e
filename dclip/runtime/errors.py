"""What a user is told when a file or a run goes wrong: the error of a file that exists but cannot be used,
the one warning line of a skipped one, and what an interrupted command had written.

Every reader of a user's file (images: :func:`dclip.data.images.read_image`; weights and sidecars:
:func:`dclip.models.folder.read_tensors`, :func:`dclip.models.folder.read_sidecar`) turns a decoding or
format failure into :class:`UnreadableFileError`. Its message is one line naming the file, what is wrong
with it and what to do; ``python -m dclip`` prints it as its ``error:`` line, a notebook raises it as is.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

__all__ = ["UnreadableFileError", "warn", "Written"]


class UnreadableFileError(ValueError):
    """A file exists but cannot be read or used (truncated, damaged, not of its kind, a fine-tune of another
    base model): ``str(err)`` is ``'PATH' PROBLEM. FIX`` on one line.

    ``path``, ``problem`` (what is wrong, e.g. ``"is truncated (...)"``) and ``fix`` (what to do) are kept
    apart too, for messages that say it differently (a skipped image of a folder: :func:`warn`).
    A ``ValueError``, so that code catching bad input values catches it too.
    """

    def __init__(self, path: str | os.PathLike, problem: str, fix: str):
        self.path, self.problem, self.fix = str(path), problem, fix
        super().__init__(f"'{self.path}' {problem}. {fix}")

    def __reduce__(self):  # picklable with its three parts (the default would call cls(message))
        return type(self), (self.path, self.problem, self.fix)


def warn(message: str, prefix: str = "") -> None:
    """One warning line on stderr: ``PREFIXwarning: MESSAGE`` (e.g. an image of a folder that was skipped)."""
    print(f"{prefix}warning: {message}", file=sys.stderr, flush=True)


@dataclass
class Written:
    """How far a command got, for the one line ``python -m dclip`` prints when Ctrl-C stops it. Every file
    is written atomically (:mod:`dclip.runtime.atomic`): what is not counted here is not on disk either."""

    out: str                  # where the command writes: a file, or a folder (or cache) of one file per item
    total: int = 0            # the items written one by one
    done: int = 0             # of those, complete on disk (an earlier run's included)
    unit: str = "images"
    rest: str = "re-run to finish"

    def interrupted(self) -> str:
        """``interrupted; nothing written to OUT`` or ``interrupted after N of M images; re-run to finish``."""
        if not self.done:
            return f"interrupted; nothing written to {self.out}"
        return f"interrupted after {self.done} of {self.total} {self.unit}; {self.rest}"
