"""Figures: labelled image grids (the layout of the paper's Figs. 1, 5, 7, 8 and 9) with a profile stamp.

Figures are built on ``matplotlib.figure.Figure`` (not pyplot) with a ``_repr_png_``, so a notebook
shows each one exactly once, by ending a cell with it, and nothing accumulates in pyplot's registry.
"""
from __future__ import annotations

import io
from typing import Sequence

import torch
from matplotlib.figure import Figure

__all__ = ["ShownFigure", "image_grid", "stamp"]


class ShownFigure(Figure):
    """A ``Figure`` that Jupyter shows as a PNG by itself (no pyplot, no backend to set up)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def _as_array(image: torch.Tensor):
    """(3, H, W) or (1, 3, H, W) in [-1, 1] → (H, W, 3) numpy in [0, 1]."""
    if image.dim() == 4:
        image = image[0]
    return ((image.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()


def stamp(fig, text: str) -> None:
    """Write ``text`` (e.g. the smoke-profile warning) in red under ``fig``; no-op when empty."""
    if text:
        fig.text(0.5, 0.0, text, ha="center", va="top", color="#b00000", fontsize=9, fontweight="bold",
                 bbox=dict(facecolor="#fff0f0", edgecolor="#b00000", boxstyle="round,pad=0.3"))


def image_grid(rows: Sequence[Sequence[torch.Tensor | None]], *, row_labels: Sequence[str] = (),
               col_labels: Sequence[str] = (), captions: Sequence[Sequence[str]] = (),
               notes: Sequence[Sequence[str]] = (), title: str = "", stamp_text: str = "", cell: float = 1.6):
    """A grid of images: ``rows[i][j]`` is a (3, H, W) tensor in [-1, 1] or None (left blank).

    ``col_labels`` title the first row's cells; ``captions[i][j]`` (optional) titles any cell and
    wins over the column label; ``notes[i][j]`` (optional) is written under a cell (e.g. what a judge reads
    in it). Images are enlarged with nearest-neighbour scaling (pixels stay square). Returns a ``matplotlib.figure.Figure`` of ``cell`` inches per image.
    """
    n_rows, n_cols = len(rows), max((len(r) for r in rows), default=0)
    if n_cols == 0:
        raise ValueError("image_grid needs at least one image.")
    fig = ShownFigure(figsize=(cell * n_cols, cell * n_rows + (0.35 if title else 0)))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            image = row[j] if j < len(row) else None
            if image is None:
                for spine in ax.spines.values():  # blank, but keeps the axes for a row label
                    spine.set_visible(False)
                if not (j == 0 and i < len(row_labels)):
                    ax.axis("off")
            else:
                ax.imshow(_as_array(image), interpolation="nearest")
            caption = captions[i][j] if i < len(captions) and j < len(captions[i]) else ""
            if not caption and i == 0 and j < len(col_labels):
                caption = col_labels[j]
            if caption:
                ax.set_title(caption, fontsize=8)
            if j == 0 and i < len(row_labels):
                ax.set_ylabel(row_labels[i], fontsize=8)
            note = notes[i][j] if i < len(notes) and j < len(notes[i]) else ""
            if note:
                ax.set_xlabel(note, fontsize=7, labelpad=2)
    if title:
        fig.suptitle(title, fontsize=10, y=0.995)
    fig.tight_layout()
    stamp(fig, stamp_text)
    return fig
