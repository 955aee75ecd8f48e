"""The live editor's history: every edit it rendered, with its settings, and undo / redo over what was shown.

A :class:`Snapshot` is one rendered edit: the image it started from, t0, the degree of change r, the fine-tuned
models in the mix with their γ, and the edited image. :class:`History` keeps them in the order they were made
(the editor's thumbnail strip) and moves between them as a browser moves between pages: *undo* goes back to
the edit shown before the last change or restore, *redo* forward again; a new edit after an undo ends the redo
trail (the strip keeps every edit, up to :data:`HISTORY_LIMIT`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import count

import torch

__all__ = ["Snapshot", "History", "Navigation", "HISTORY_LIMIT", "describe_settings"]

#: The most edits the strip keeps (the oldest go first).
HISTORY_LIMIT = 30

_serials = count()


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One rendered edit and everything it was made from.

    ``tuned``: the fine-tuned models of the mix, each with ``label``, ``model``, ``gamma`` and ``result`` (its
    :class:`~dclip.method.finetune.FinetuneResult`), as they were then. ``origin``: how a drawn image was made
    (``{"strokes": tensor, "K": rounds, "t0": ..., "steps": ..., "seed": ...}``), None for a picked or uploaded
    one."""

    image: torch.Tensor
    image_name: str
    t0: int
    ratio: float
    tuned: tuple
    output: torch.Tensor
    origin: dict | None = None
    serial: int = field(default_factory=lambda: next(_serials))

    def settings_key(self) -> tuple:
        """What decides the edit: two snapshots with the same key show the same image."""
        return (id(self.image), self.t0, self.ratio, tuple((id(t.model), t.gamma) for t in self.tuned))

    def settings(self) -> str:
        """One line: prompt pair(s), t0, r and γ, e.g. ``face → tanned face · t0 201 · r 0.5 · γ 1``."""
        return describe_settings(self.tuned, self.t0, self.ratio)


def describe_settings(tuned, t0: int, ratio: float) -> str:
    """Prompt pair(s), t0, r and γ of an edit on one line."""
    pairs = " + ".join(_pair(t) for t in tuned) or "reconstruction"
    gammas = f" · γ {', '.join(f'{t.gamma:g}' for t in tuned)}" if tuned else ""
    return f"{pairs} · t0 {t0} · r {ratio:g}{gammas}"


def _pair(tuned) -> str:
    config = getattr(getattr(tuned, "result", None), "config", None)
    pair = f"{config.source} → {config.target}" if config is not None else tuned.label
    stopped = getattr(getattr(tuned, "result", None), "stopped", False)
    return f"{pair} (stopped)" if stopped else pair


class History:
    """The rendered edits, oldest first, and where undo and redo lead."""

    def __init__(self, limit: int = HISTORY_LIMIT):
        self.limit = limit
        self.entries: list[Snapshot] = []
        self.cursor: Snapshot | None = None
        self._back: list[Snapshot] = []
        self._forward: list[Snapshot] = []

    @property
    def current(self) -> Snapshot | None:
        """The edit shown now (None before the first)."""
        return self.cursor

    def record(self, snapshot: Snapshot) -> Snapshot:
        """Add ``snapshot`` and show it; the edit shown now when it has the same settings (nothing added)."""
        if self.cursor is not None and self.cursor.settings_key() == snapshot.settings_key():
            return self.cursor
        self.entries.append(snapshot)
        self._move_to(snapshot)
        self._forget_beyond_limit()
        return snapshot

    def go(self, index: int) -> Snapshot:
        """Show the strip's entry ``index`` (undo comes back to the edit shown before)."""
        self._move_to(self.entries[index])
        return self.cursor

    def undo(self) -> Snapshot:
        """Back to the edit shown before the last change; an error at the first."""
        if not self.can_undo:
            raise ValueError("nothing to undo: this is the first edit shown.")
        return self._step(self._back, self._forward)

    def redo(self) -> Snapshot:
        """Forward again to the edit an undo left; an error when none did."""
        if not self.can_redo:
            raise ValueError("nothing to redo: no undo since the last change.")
        return self._step(self._forward, self._back)

    def _step(self, source: list, other: list) -> Snapshot:
        """The cursor moves to the last entry of ``source``; the one it leaves goes onto ``other``."""
        other.append(self.cursor)
        self.cursor = source.pop()
        return self.cursor

    @property
    def can_undo(self) -> bool:
        return bool(self._back)

    @property
    def can_redo(self) -> bool:
        return bool(self._forward)

    def index(self, snapshot: Snapshot | None = None) -> int | None:
        """The strip position of ``snapshot`` (default: the one shown), None when it is not in the strip."""
        snapshot = self.cursor if snapshot is None else snapshot
        return next((i for i, s in enumerate(self.entries) if s is snapshot), None)

    def _move_to(self, snapshot: Snapshot) -> None:
        if snapshot is self.cursor:
            return
        if self.cursor is not None:
            self._back.append(self.cursor)
        self._forward.clear()
        self.cursor = snapshot

    def _forget_beyond_limit(self) -> None:
        dropped = self.entries[:-self.limit] if len(self.entries) > self.limit else []
        if dropped:
            self.entries = self.entries[-self.limit:]
            gone = {s.serial for s in dropped}
            self._back = [s for s in self._back if s.serial not in gone]
            self._forward = [s for s in self._forward if s.serial not in gone]


class Navigation:
    """Going back and forth in the editor's history (a base class of :class:`~dclip.editor.editor.Editor`, whose
    ``history``, image, t0, r and models it sets)."""

    def restore(self, snapshot: Snapshot) -> Snapshot:
        """Take the image, t0, r and models (with their γ) of ``snapshot``, a history entry."""
        self.image, self.image_name, self.origin = snapshot.image, snapshot.image_name, snapshot.origin
        self.t0, self.ratio = snapshot.t0, snapshot.ratio
        self.tuned = [replace(t) for t in snapshot.tuned]
        return snapshot

    def go(self, index: int) -> Snapshot:
        """Back to the history strip's entry ``index``."""
        return self.restore(self.history.go(index))

    def undo(self) -> Snapshot:
        """Back to the edit shown before the last change (:meth:`History.undo`)."""
        return self.restore(self.history.undo())

    def redo(self) -> Snapshot:
        return self.restore(self.history.redo())
