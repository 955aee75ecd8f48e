"""The drawing pad's strokes as an image: what the editor's pad turns into the tensor it projects (Fig. 7b live).

A :class:`Stroke` is one press-drag-release of the brush: its colour, width and the points it passed, in canvas
pixels. :func:`strokes_to_tensor` paints them over a white canvas or over an image, the same way every time and
without a browser, and shrinks the result to the model's size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

__all__ = ["Stroke", "strokes_to_tensor", "parse_colour"]


@dataclass
class Stroke:
    """One brush stroke: ``colour`` ("#rrggbb"), ``width`` (canvas pixels) and the ``points`` (x, y) it passed."""

    colour: str
    width: float
    points: list[tuple[float, float]] = field(default_factory=list)


def parse_colour(colour: str) -> tuple[int, int, int]:
    """"#rrggbb" (or "#rgb") as an (r, g, b) triple; a clear error otherwise."""
    text = colour.strip().lstrip("#")
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    try:
        if len(text) != 6:
            raise ValueError
        return tuple(int(text[i: i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        raise ValueError(f"'{colour}' is not a colour: give it as #rrggbb, e.g. #c08060.") from None


def strokes_to_tensor(strokes: Sequence[Stroke], size: int, *, canvas_px: int,
                      background: torch.Tensor | None = None) -> torch.Tensor:
    """The strokes painted on a ``canvas_px``-pixel square, as a (1, 3, size, size) tensor in [-1, 1].

    Painted over ``background`` ((1, 3, H, W) in [-1, 1], scaled to the canvas) when given, else over white. Each
    stroke is a line through its points with round ends and joints, ``width`` canvas pixels wide (one point: a
    dot). The canvas is then shrunk to ``size`` by averaging (the colour blocks of a stroke painting, Fig. 4b)."""
    from PIL import Image, ImageDraw

    from ..data.images import to_pil, to_tensor

    if background is None:
        canvas = Image.new("RGB", (canvas_px, canvas_px), (255, 255, 255))
    else:
        canvas = to_pil(background.cpu())[0].resize((canvas_px, canvas_px), Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    for stroke in strokes:
        _paint(draw, stroke)
    return to_tensor(canvas.resize((size, size), Image.BOX))


def _paint(draw, stroke: Stroke) -> None:
    """One stroke on a PIL drawing: segments of the stroke's width, a disc at every point (round caps/joints)."""
    colour, radius = parse_colour(stroke.colour), max(float(stroke.width), 1.0) / 2
    points = [(float(x), float(y)) for x, y in stroke.points]
    if len(points) > 1:
        draw.line(points, fill=colour, width=max(1, round(stroke.width)))
    for x, y in points:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
