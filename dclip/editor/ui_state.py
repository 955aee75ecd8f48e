"""The live editor's widget state (:class:`EditorUI`) and its status line, for :mod:`dclip.editor.widgets`."""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

from .editor import Editor

__all__ = ["EditorUI", "say", "weights_text", "quiet"]


@dataclass
class EditorUI:
    """The editor's widgets; ``root`` is the box to display. ``busy`` while a fine-tune runs in ``training``
    (a thread); ``stop_requested`` is what Stop sets; ``lock`` keeps the callbacks of the kernel's thread and the
    end of a fine-tune apart."""

    editor: Editor
    picker: object
    upload: object
    world_note: object
    source: object
    target: object
    prompt_note: object
    t0: object
    button: object
    stop: object
    progress: object
    loss: object
    ratio: object
    gamma_note: object
    gamma_box: object
    compare: object
    undo: object
    redo: object
    save: object
    save_to: object
    status: object
    log: object
    original: object
    view: object
    history_box: object
    pad: object
    root: object
    busy: bool = False
    training: threading.Thread | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event)
    lock: threading.RLock = field(default_factory=threading.RLock)
    quiet: bool = False
    strip: tuple = ()


def say(ui: EditorUI, text: str, error: bool = False) -> None:
    """Show ``text`` in the status line (red when it is an error)."""
    ui.status.value = text
    ui.status.style.text_color = "#c62828" if error else None


def weights_text(editor: Editor) -> str:
    names = ["original"] + [t.label for t in editor.tuned]
    return "weights: " + " · ".join(f"{n} {w:.3g}" for n, w in zip(names, editor.weights()))


@contextlib.contextmanager
def quiet(ui: EditorUI):
    """Set widget values without their callbacks acting (showing a restored edit)."""
    was, ui.quiet = ui.quiet, True
    try:
        yield
    finally:
        ui.quiet = was
