"""The live editor of notebook 06: pick, upload or draw an image, fine-tune on a text pair, then steer the edit.

Two layers, so everything a click does can be tested without a browser:

* :class:`~dclip.editor.editor.Editor` (:mod:`dclip.editor.editor`) holds the state (image, fine-tuned models, degree of change r, γ weights, the history of
  rendered edits) and does the work: fine-tuning (Sec. 3, eq. 10; stoppable after any update), inversion with
  the original model, generation with the noise mix ε = (1 − r)·ε_original + r·Σ_i γ_i ε_i (the degree of change
  of Sec. 3.2 and the multi-attribute mix of eq. 14, with constant γ; :mod:`dclip.editor.mix_edit`), undo/redo
  (:mod:`dclip.editor.history`), saving an edit with its settings (:mod:`dclip.editor.saved_edit`) and a
  drawing projected into the model's domain (eq. 1, K rounds; :mod:`dclip.editor.drawing`).
* :func:`build_ui` wires ipywidgets to the editor: each widget callback is a module-level function
  of (ui, ..., change) that tests call or trigger by setting a widget's value / clicking its button.

Fine-tuning runs in a background thread (:func:`on_finetune`, :func:`wait_for_finetune`): the kernel's main thread
stays free to handle clicks, so Stop ends training at the current update. Meanwhile the controls that would
compute with the models are disabled; compare, history, undo/redo and save (which only show or write what is
there) stay usable.

Under papermill (``interactive = False``) the notebook shows :func:`static_edit` instead.
"""
from __future__ import annotations

import threading
import traceback

from .editor import (PREVIEW_STEPS, PROJECT_T0, TOY_UPLOAD_NOTE, Editor, FinetuneProgress,  # noqa: F401
                     _Tuned, compare_png, png_bytes, static_edit)
from .history import Snapshot
from .ui_state import EditorUI, quiet, say, weights_text
from .pad_ui import (CANVAS_PX, build_pad, on_pad_blank, on_pad_over_image, on_pad_undo_stroke,  # noqa: F401
                     pad_down, pad_drawing, pad_move, pad_up, redraw_pad)

__all__ = ["Editor", "EditorUI", "FinetuneProgress", "build_ui", "static_edit", "launch", "png_bytes",
           "compare_png", "wait_for_finetune", "TOY_UPLOAD_NOTE"]

# ------------------------------------------------------------------------------------------------
# Widgets
# ------------------------------------------------------------------------------------------------

VIEW_PX = 192  # the side of the original and edited images on screen, whatever the model's size
THUMB_PX = 56  # the side of a history thumbnail

GAMMA_ONE = "γ mixes several fine-tuned models (eq. 14); with one model only r matters."
GAMMA_MANY = "γ: each fine-tuned model's share of the edit (normalised to sum to 1)."


def refresh(ui: EditorUI) -> None:
    """Render the edit for the current settings (recorded in the history) and show it, or say why not.

    When the settings changed, a preview (:meth:`Editor.preview`: :data:`~dclip.editor.editor.PREVIEW_STEPS`
    DDIM steps) is shown first: the widget's new value reaches the browser at once, while the full render
    (the profile's S_gen steps) computes."""
    editor = ui.editor
    if editor.image is None:
        say(ui, "pick or upload an image")
        return
    if not editor.is_rendered():
        show_preview(ui)
    editor.rendered()
    show(ui)
    say(ui, weights_text(editor))


def show_preview(ui: EditorUI) -> None:
    """Show the quick preview of the current settings in the edited view, and say that the full render follows."""
    editor = ui.editor
    preview = compare_png(editor.image, editor.preview(), ui.compare.value, height=VIEW_PX)
    # the status first: the browser never shows the preview image under the previous edit's status line
    say(ui, f"preview ({PREVIEW_STEPS} DDIM steps); rendering the full edit ({editor.ctx.profile.n_gen} steps) ...")
    ui.view.value = preview


def show(ui: EditorUI) -> None:
    """Show the history's current edit: original | edited (split by the compare slider), the strip, the buttons."""
    snapshot = ui.editor.history.current
    if snapshot is not None:
        ui.original.value = png_bytes([snapshot.image], height=VIEW_PX)
        ui.view.value = compare_png(snapshot.image, snapshot.output, ui.compare.value, height=VIEW_PX)
    _sync_history(ui)
    _sync_controls(ui)


def _sync_controls(ui: EditorUI) -> None:
    """Enable what can act now: while a fine-tune runs, only what needs no model (and Stop)."""
    history = ui.editor.history
    for control in (ui.button, ui.picker, ui.upload, ui.t0, ui.ratio, *_pad_controls(ui)):
        control.disabled = ui.busy
    ui.stop.disabled = not ui.busy
    for slider in ui.gamma_box.children:
        slider.disabled = ui.busy or len(ui.gamma_box.children) < 2
    ui.undo.disabled, ui.redo.disabled = not history.can_undo, not history.can_redo
    ui.save.disabled = history.current is None


def _pad_controls(ui: EditorUI) -> tuple:
    return (ui.pad.generate,) if ui.pad is not None else ()


def on_pick(ui: EditorUI, change) -> None:
    if change["new"] is None:  # cleared after an upload
        return
    ui.editor.load_sample(change["new"])
    ui.world_note.value = ""
    refresh(ui)


def on_upload(ui: EditorUI, change) -> None:
    """Load the uploaded file; a broken file or one that is not an image is an error on screen (the message of
    :class:`~dclip.runtime.errors.UnreadableFileError`: what is wrong, and the fix), the image stays. At the toy
    profile the note beside the picker says what an upload becomes there."""
    files = change["new"]
    if not files:
        return
    name = files[0]["name"]
    try:
        note = ui.editor.load_bytes(files[0]["content"], name=name)
    except ValueError as err:  # UnreadableFileError is one
        say(ui, f"error: {err}", error=True)
        return
    finally:
        ui.upload.value = ()  # so that uploading the same file again is a change too
    with quiet(ui):
        ui.picker.value = None  # the picker no longer names the image shown; any choice is a change again
    ui.world_note.value = ui.editor.world_note()
    refresh(ui)
    say(ui, f"{name}: {note}. " + ui.status.value)


def on_prompt(ui: EditorUI, change=None) -> None:
    """A prompt changed: at the toy profile the note under the prompts names the words the toy CLIP never saw."""
    ui.prompt_note.value = ui.editor.vocabulary_note(ui.source.value, ui.target.value)


def on_t0(ui: EditorUI, change) -> None:
    ui.editor.t0 = int(change["new"])
    refresh(ui)


def on_ratio(ui: EditorUI, change) -> None:
    ui.editor.ratio = float(change["new"])
    refresh(ui)


def on_gamma(ui: EditorUI, index: int, change) -> None:
    ui.editor.set_gamma(index, change["new"])
    refresh(ui)


def on_compare(ui: EditorUI, change) -> None:
    """Move the before | after split of the edited image (nothing is computed)."""
    show(ui)


def _gamma_slider(ui: EditorUI, index: int, tuned: _Tuned):
    import ipywidgets as w

    slider = w.FloatSlider(value=tuned.gamma, min=0.0, max=1.0, step=0.05, description=f"γ {tuned.label}",
                           tooltip=f"weight of '{tuned.label}' in the mix of fine-tuned models",
                           style={"description_width": "initial"}, continuous_update=False)
    slider.observe(_handler(ui, on_gamma, index), names="value")
    return slider


def _sync_gammas(ui: EditorUI) -> None:
    """One γ slider per fine-tuned model, showing its γ; they only act (and are enabled) with two or more models.
    Sliders whose models left the mix (a restored edit) are replaced."""
    sliders, tuned = list(ui.gamma_box.children), ui.editor.tuned
    keep = 0
    while keep < min(len(sliders), len(tuned)) and sliders[keep].description == f"γ {tuned[keep].label}":
        keep += 1
    sliders = sliders[:keep] + [_gamma_slider(ui, i, tuned[i]) for i in range(keep, len(tuned))]
    with quiet(ui):
        for slider, model in zip(sliders, tuned):
            slider.value = model.gamma
    ui.gamma_box.children = tuple(sliders)
    ui.gamma_note.value = "" if not sliders else GAMMA_ONE if len(sliders) == 1 else GAMMA_MANY
    _sync_controls(ui)


# -- fine-tuning in the background -----------------------------------------------------------------

def on_finetune(ui: EditorUI, _button=None) -> None:
    """Start fine-tuning the current texts at the current t0 in a background thread (:func:`wait_for_finetune`
    waits for it); the progress bar and the loss follow each update, Stop ends it at the current one."""
    if ui.busy:
        return
    source, target, t0 = ui.source.value, ui.target.value, ui.t0.value
    on_prompt(ui)
    ui.stop_requested.clear()
    ui.busy, ui.progress.value, ui.loss.value = True, 0.0, ""
    _sync_controls(ui)
    say(ui, f"fine-tuning '{source}' -> '{target}' ... (Stop keeps what it has learnt)")
    ui.training = threading.Thread(target=_finetune_in_background, args=(ui, source, target, t0),
                                   name="dclip-editor-finetune", daemon=True)
    ui.training.start()


def on_stop(ui: EditorUI, _button=None) -> None:
    """Ask the running fine-tune to end after its current update (it keeps what it has)."""
    if ui.busy:
        ui.stop_requested.set()
        ui.stop.disabled = True
        say(ui, "stopping after the current update ...")


def show_update(ui: EditorUI, update: FinetuneProgress) -> None:
    """The fine-tune's progress and its last loss beside the bar (called after each update, from its thread)."""
    ui.progress.value = update.fraction
    ui.loss.value = update.text()


def _finetune_in_background(ui: EditorUI, source: str, target: str, t0: int) -> None:
    """The fine-tune thread: train, then (holding the lock) add the model and show the edit; errors on screen."""
    editor = ui.editor
    try:
        reports = []
        tuned = editor.train(source, target, t0, progress=reports.append,
                             on_update=lambda update: show_update(ui, update), stop=ui.stop_requested.is_set)
        with ui.lock:
            added = editor.add(tuned)
            _sync_gammas(ui)
            refresh(ui)
            ui.progress.value = reports[-1] if reports else ui.progress.value
            _say_finetuned(ui, tuned, added, reused=reports == [1.0])
    except (ValueError, FileNotFoundError) as err:
        say(ui, f"error: {err}", error=True)
    except Exception as err:  # shown, with its traceback under the status line
        say(ui, f"error: {type(err).__name__}: {err} (traceback below)", error=True)
        ui.log.append_stderr(traceback.format_exc())
    finally:
        with ui.lock:
            ui.busy = False
            _sync_controls(ui)


def _say_finetuned(ui: EditorUI, tuned: _Tuned, added: bool, reused: bool) -> None:
    if tuned.result is not None and tuned.result.stopped:
        say(ui, f"stopped: '{tuned.label}' keeps its {len(tuned.result.history)} updates (not kept for the session: "
                f"fine-tune again to train it fully). " + ui.status.value)
    elif not added:
        say(ui, f"'{tuned.label}' is already in the mix (nothing new to train). " + ui.status.value)
    elif reused:  # only the final 1.0: no optimizer step ran
        say(ui, ui.status.value + f" ('{tuned.label}' was trained earlier in this session: reused)")


def wait_for_finetune(ui: EditorUI, timeout: float | None = None) -> None:
    """Wait until the fine-tune started by :func:`on_finetune` has ended (its model added, the edit shown)."""
    if ui.training is not None:
        ui.training.join(timeout)
        if ui.training.is_alive():
            raise TimeoutError(f"the fine-tune still runs after {timeout} s.")


# -- history, undo, redo, save ---------------------------------------------------------------------

def _show_restored(ui: EditorUI, snapshot: Snapshot) -> None:
    """Put the widgets to a restored edit's settings (without re-rendering) and show it."""
    editor = ui.editor
    with quiet(ui):
        ui.t0.value = snapshot.t0
        ui.ratio.value = snapshot.ratio
        ui.picker.value = snapshot.image_name if snapshot.image_name in ui.picker.options else None
    _sync_gammas(ui)
    show(ui)
    say(ui, f"edit #{editor.history.index() + 1} restored ({snapshot.settings()}). " + weights_text(editor))


def on_history(ui: EditorUI, snapshot: Snapshot, _button=None) -> None:
    """A thumbnail's button: back to that edit."""
    index = ui.editor.history.index(snapshot)
    if index is None:
        raise ValueError("that edit has left the history strip.")
    _show_restored(ui, ui.editor.go(index))


def on_undo(ui: EditorUI, _button=None) -> None:
    _show_restored(ui, ui.editor.undo())


def on_redo(ui: EditorUI, _button=None) -> None:
    _show_restored(ui, ui.editor.redo())


def on_save(ui: EditorUI, _button=None) -> None:
    """Save the edit shown with its settings; the status line says where and how to redo it."""
    saved = ui.editor.save(ui.save_to.value.strip() or None)
    say(ui, f"saved {saved.png} (settings in its text chunks and {saved.sidecar.name}; input {saved.input.name}; "
            f"{len(saved.models)} model file(s)). Redo it: python -m dclip edit --from-png {saved.png} --out again.png")


def _thumbnail(ui: EditorUI, number: int, snapshot: Snapshot):
    import ipywidgets as w

    settings = snapshot.settings()
    image = w.Image(value=png_bytes([snapshot.output], height=THUMB_PX), format="png",
                    layout=w.Layout(width=f"{THUMB_PX}px", height=f"{THUMB_PX}px"))
    button = w.Button(description=f"#{number}", tooltip=f"back to this edit: {settings}",
                      layout=w.Layout(width=f"{THUMB_PX + 40}px"))
    button.on_click(_handler(ui, on_history, snapshot))
    caption = w.HTML(f"<div style='font-size:10px;line-height:1.2;white-space:normal;overflow-wrap:anywhere;"
                     f"max-width:{THUMB_PX + 36}px'>{_escape(settings)}</div>",
                     tooltip=settings, layout=w.Layout(width=f"{THUMB_PX + 40}px"))
    box = w.VBox([image, button, caption], layout=w.Layout(width=f"{THUMB_PX + 44}px"))
    box.add_class("dclip-history-item")
    return box


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def _sync_history(ui: EditorUI) -> None:
    """The strip: one thumbnail per edit in the history, the one shown highlighted."""
    history = ui.editor.history
    serials = tuple(s.serial for s in history.entries)
    if serials != ui.strip:
        ui.history_box.children = tuple(_thumbnail(ui, i + 1, s) for i, s in enumerate(history.entries))
        ui.strip = serials
    for snapshot, item in zip(history.entries, ui.history_box.children):
        item.children[1].button_style = "info" if snapshot is history.current else ""


def _handler(ui: EditorUI, callback, *args):
    """``callback(ui, *args, change)`` as a widget handler whose errors show on screen.

    In a kernel, an exception inside ``with ui.log`` is printed in that Output widget (under the status
    line) instead of JupyterLab's log console; the status line says that it happened. While values are set
    for a restored edit (``ui.quiet``) the callback does nothing.
    """
    def handle(change=None):
        if ui.quiet:
            return
        with ui.lock:
            ui.log.clear_output()
            with ui.log:
                try:
                    callback(ui, *args, change)
                except Exception as err:
                    say(ui, f"error: {type(err).__name__}: {err} (traceback below)", error=True)
                    raise
    return handle


# -- the drawing pad (Fig. 7b live; dclip.editor.pad_ui) ----------------------------------------------

def on_pad_generate(ui: EditorUI, _button=None) -> None:
    """Project the drawing into the model's domain (eq. 1, K rounds) and edit it with the models in the mix."""
    pad = ui.pad
    ui.editor.draw(pad_drawing(ui), int(pad.rounds.value), int(pad.t0.value))
    with quiet(ui):
        ui.picker.value = None
    ui.world_note.value = ""
    refresh(ui)
    say(ui, f"drawing projected into the model's domain (K = {pad.rounds.value} rounds of eq. 1 to t0 = {pad.t0.value} "
            f"and {ui.editor.ctx.profile.project_steps} DDIM steps), then edited. " + ui.status.value)


# -- the editor's box --------------------------------------------------------------------------------

def build_ui(editor: Editor, *, sample: str = "grace_hopper", source: str = "face",
             target: str = "tanned face") -> EditorUI:
    """The editor's widgets, wired to ``editor``; shows ``sample`` (a picker entry, or a photo's name that
    stands for one: :meth:`Editor.sample_for`) at once."""
    import ipywidgets as w

    def image(caption: str):
        view = w.Image(format="png", layout=w.Layout(width=f"{VIEW_PX}px", height=f"{VIEW_PX}px"))
        return view, w.VBox([w.Label(caption), view])

    original, original_box = image("original")
    view, view_box = image("edited")
    toy = editor.is_toy
    ui = EditorUI(
        editor=editor,
        picker=w.Dropdown(options=editor.sample_names(), value=editor.sample_for(sample), description="image",
                          tooltip="a held-out toy face (the toy world's own test faces)" if toy else
                          "a sample photo shipped with matplotlib / scikit-image"),
        upload=w.FileUpload(accept="image/*", multiple=False, description="upload",
                            tooltip="edit your own image (PNG or JPEG)" +
                                    (f"; shrunk to {editor.ctx.profile.image_size} px into the toy world" if toy else "")),
        world_note=w.Label(value=""),
        source=w.Text(value=source, description="source", tooltip="text describing the image now"),
        target=w.Text(value=target, description="target", tooltip="text describing the edit"),
        prompt_note=w.Label(value=""),
        t0=w.IntSlider(value=editor.t0, min=100, max=900, step=1, description="t0", continuous_update=False,
                       tooltip="return step: larger t0 allows larger changes"),
        button=w.Button(description="fine-tune", button_style="primary",
                        tooltip="fine-tune a copy of the model on source -> target (eq. 10)"),
        stop=w.Button(description="stop", button_style="warning", disabled=True,
                      tooltip="end fine-tuning after the current update; the model keeps what it has learnt"),
        progress=w.FloatProgress(value=0.0, min=0.0, max=1.0, description="training",
                                 tooltip="fine-tuning progress"),
        loss=w.Label(value=""),
        ratio=w.FloatSlider(value=editor.ratio, min=0.0, max=1.0, step=0.05, description="change r",
                            continuous_update=False, tooltip="degree of change: 0 is the reconstruction"),
        gamma_note=w.Label(value=""),
        gamma_box=w.VBox([]),
        compare=w.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.01, description="before|after",
                              style={"description_width": "initial"},
                              tooltip="split the edited image: the original (before) left of the line, the edit right"),
        undo=w.Button(description="undo", icon="undo", tooltip="back to the edit shown before the last change"),
        redo=w.Button(description="redo", icon="repeat", tooltip="forward again to the edit an undo left"),
        save=w.Button(description="save", icon="save",
                      tooltip="write the edited PNG with its settings, its input and its models (redo it with "
                              "python -m dclip edit --from-png FILE)"),
        save_to=w.Text(value=str(editor.default_save_dir()), description="save to",
                       tooltip="the folder Save writes into"),
        status=w.Label(value=""),
        log=w.Output(),
        original=original,
        view=view,
        history_box=w.HBox([], layout=w.Layout(overflow_x="auto", width="100%")),
        pad=None,
        root=None,
    )
    build_pad(ui, _handler, on_pad_generate)
    for name in ("picker", "upload", "world_note", "source", "target", "prompt_note", "t0", "button", "stop", "progress", "loss",
                 "ratio", "gamma_note", "gamma_box", "compare", "undo", "redo", "save", "save_to", "status", "log",
                 "original", "view", "history_box"):
        getattr(ui, name).add_class(f"dclip-{name.replace('_', '-')}")  # stable hooks for the browser test
    ui.picker.observe(_handler(ui, on_pick), names="value")
    ui.upload.observe(_handler(ui, on_upload), names="value")
    ui.t0.observe(_handler(ui, on_t0), names="value")
    for text in (ui.source, ui.target):
        text.observe(_handler(ui, on_prompt), names="value")
    ui.ratio.observe(_handler(ui, on_ratio), names="value")
    ui.compare.observe(_handler(ui, on_compare), names="value")
    for button, callback in ((ui.button, on_finetune), (ui.stop, on_stop), (ui.undo, on_undo),
                             (ui.redo, on_redo), (ui.save, on_save)):
        button.on_click(_handler(ui, callback))
    ui.root = w.VBox([w.HBox([ui.picker, ui.upload]), ui.world_note, w.HBox([ui.source, ui.target]), ui.prompt_note, ui.t0,
                      w.HBox([ui.button, ui.stop, ui.progress, ui.loss]), ui.ratio, ui.gamma_note, ui.gamma_box,
                      w.HBox([ui.undo, ui.redo, ui.save, ui.save_to]), ui.status, ui.log,
                      w.HBox([original_box, w.VBox([view_box, ui.compare])]),
                      w.Label("history (click # to go back to an edit)"), ui.history_box,
                      *([ui.pad.root] if ui.pad is not None else [])])
    editor.load_sample(editor.sample_for(sample))
    on_prompt(ui)
    _sync_gammas(ui)
    refresh(ui)
    return ui


def launch(editor: Editor, interactive: bool, **kwargs):
    """The editor's widget box when ``interactive``; otherwise None and a note (papermill runs)."""
    if not interactive:
        print("non-interactive run: the static edit above stands in for the live editor.")
        return None
    return build_ui(editor, **kwargs).root
