"""The live editor's drawing pad (notebook 06; Fig. 7b live): an ipycanvas Canvas to paint colour blocks on, over a
blank canvas or the image being edited, with brush colour, size, K (projection rounds) and the projection's t0. The strokes become an
image by :func:`dclip.editor.drawing.strokes_to_tensor`; generate (wired in by :mod:`dclip.editor.widgets`)
projects it into the model's domain and edits it.

The functions take the editor's :class:`~dclip.editor.ui_state.EditorUI` (``ui.pad`` is this pad) and never import
the widgets module, which builds the pad with its own handler.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

__all__ = ["CANVAS_PX", "DrawingPad", "build_pad", "pad_drawing", "redraw_pad", "pad_down", "pad_move", "pad_up",
           "on_pad_blank", "on_pad_over_image", "on_pad_undo_stroke"]

CANVAS_PX = 192  # the drawing pad's side, in canvas pixels


@dataclass
class DrawingPad:
    """The drawing pad's widgets (an ipycanvas Canvas and its controls) and what was drawn on it."""

    canvas: object
    colour: object
    brush: object
    rounds: object
    t0: object
    blank: object
    over_image: object
    undo_stroke: object
    generate: object
    root: object
    strokes: list = field(default_factory=list)
    background: torch.Tensor | None = None
    drawing: bool = False


def pad_drawing(ui) -> torch.Tensor:
    """What the pad shows, at the model's size (:func:`dclip.editor.drawing.strokes_to_tensor`)."""
    from .drawing import strokes_to_tensor

    pad = ui.pad
    return strokes_to_tensor(pad.strokes, ui.editor.ctx.profile.image_size, canvas_px=CANVAS_PX,
                             background=pad.background)


def redraw_pad(ui) -> None:
    """Paint the pad's canvas again from its background and strokes."""
    import numpy as np
    from ipycanvas import hold_canvas

    from ..data.images import to_pil

    pad = ui.pad
    with hold_canvas(pad.canvas):
        pad.canvas.clear()
        if pad.background is not None:
            from PIL import Image

            pixels = to_pil(pad.background.cpu())[0].resize((CANVAS_PX, CANVAS_PX), Image.NEAREST)
            pad.canvas.put_image_data(np.asarray(pixels), 0, 0)
        else:
            pad.canvas.fill_style = "#ffffff"
            pad.canvas.fill_rect(0, 0, CANVAS_PX, CANVAS_PX)
        for stroke in pad.strokes:
            _canvas_stroke(pad.canvas, stroke)


def _canvas_stroke(canvas, stroke) -> None:
    canvas.stroke_style = canvas.fill_style = stroke.colour
    canvas.line_width, canvas.line_cap, canvas.line_join = stroke.width, "round", "round"
    if len(stroke.points) > 1:
        canvas.stroke_lines(stroke.points)
    else:
        x, y = stroke.points[0]
        canvas.fill_circle(x, y, stroke.width / 2)


def pad_down(ui, x: float, y: float) -> None:
    """The brush touches the pad: a new stroke in the chosen colour and size."""
    from .drawing import Stroke

    pad = ui.pad
    pad.drawing = True
    pad.strokes.append(Stroke(pad.colour.value, float(pad.brush.value), [(float(x), float(y))]))
    _canvas_stroke(pad.canvas, pad.strokes[-1])


def pad_move(ui, x: float, y: float) -> None:
    """The brush moves: the stroke goes on (drawn at once on the canvas)."""
    pad = ui.pad
    if not pad.drawing:
        return
    stroke = pad.strokes[-1]
    stroke.points.append((float(x), float(y)))
    _canvas_stroke(pad.canvas, replace(stroke, points=stroke.points[-2:]))


def pad_up(ui, x: float = 0.0, y: float = 0.0) -> None:
    """The brush lifts (or leaves the pad): the stroke ends."""
    ui.pad.drawing = False


def on_pad_blank(ui, _button=None) -> None:
    ui.pad.strokes, ui.pad.background = [], None
    redraw_pad(ui)


def on_pad_over_image(ui, _button=None) -> None:
    """Start again over the image being edited (paint colour blocks onto it)."""
    if ui.editor.image is None:
        raise ValueError("no image to paint over yet: pick or upload one.")
    ui.pad.strokes, ui.pad.background = [], ui.editor.image.detach().cpu()
    redraw_pad(ui)


def on_pad_undo_stroke(ui, _button=None) -> None:
    if ui.pad.strokes:
        ui.pad.strokes.pop()
    redraw_pad(ui)


def _pad_handler(ui, handler, callback):
    """``callback(ui, x, y)`` as a canvas mouse handler, errors shown as ``handler`` shows them."""
    handle = handler(ui, lambda ui, change: callback(ui, *change))
    return lambda x, y: handle((x, y))


def build_pad(ui, handler, on_generate) -> DrawingPad | None:
    """The drawing pad, wired to ``ui`` (the editor's :class:`~dclip.editor.ui_state.EditorUI`): ``handler(ui,
    callback)`` makes a widget handler (the editor's, which shows errors on screen), ``on_generate(ui, button)`` is
    what generate does. None where ipycanvas is not installed."""
    try:
        from ipycanvas import Canvas
    except ImportError:
        return None
    import ipywidgets as w

    from .editor_images import PROJECT_T0

    # no tooltip: with one, ipycanvas 0.14's view fails to render in JupyterLab 4 (the label above says what to do)
    canvas = Canvas(width=CANVAS_PX, height=CANVAS_PX, layout=w.Layout(width=f"{CANVAS_PX}px", height=f"{CANVAS_PX}px"))
    pad = DrawingPad(
        canvas=canvas,
        colour=w.ColorPicker(value="#c08060", description="colour", concise=False,
                             tooltip="the brush colour: paint flat colour blocks (a stroke painting)"),
        brush=w.IntSlider(value=16, min=2, max=64, step=1, description="brush", tooltip="brush size, canvas pixels"),
        rounds=w.IntSlider(value=ui.editor.ctx.profile.project_repeats, min=1, max=20, step=1, description="K",
                           tooltip="projection rounds: noise to t0 with eq. 1 and denoise, K times"),
        t0=w.IntSlider(value=PROJECT_T0, min=100, max=900, step=10, description="t0",
                       tooltip="the projection's return step: larger keeps less of the drawing"),
        blank=w.Button(description="blank", tooltip="start again on a white canvas"),
        over_image=w.Button(description="over image", tooltip="start again over the image being edited"),
        undo_stroke=w.Button(description="undo stroke", tooltip="remove the last stroke"),
        generate=w.Button(description="generate", button_style="primary",
                          tooltip="project the drawing into the model's domain (K rounds), then edit it (Fig. 7b)"),
        root=None,
    )
    ui.pad = pad
    canvas.on_mouse_down(_pad_handler(ui, handler, pad_down))
    canvas.on_mouse_move(_pad_handler(ui, handler, pad_move))
    canvas.on_mouse_up(_pad_handler(ui, handler, pad_up))
    canvas.on_mouse_out(_pad_handler(ui, handler, pad_up))
    for button, callback in ((pad.blank, on_pad_blank), (pad.over_image, on_pad_over_image),
                             (pad.undo_stroke, on_pad_undo_stroke), (pad.generate, on_generate)):
        button.on_click(handler(ui, callback))
    for name in ("canvas", "colour", "brush", "rounds", "t0", "blank", "over_image", "undo_stroke", "generate"):
        getattr(pad, name).add_class(f"dclip-pad-{name.replace('_', '-')}")
    pad.root = w.VBox([w.Label("drawing pad: paint colour blocks (press, drag, release), then generate "
                               "(projection, then the edit)", tooltip="the brush paints on the white square"),
                       w.HBox([canvas, w.VBox([pad.colour, pad.brush, pad.rounds, pad.t0,
                                               w.HBox([pad.blank, pad.over_image]),
                                               w.HBox([pad.undo_stroke, pad.generate])])])])
    redraw_pad(ui)
    return pad
