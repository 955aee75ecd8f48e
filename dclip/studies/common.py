"""What the studies share: the :class:`Study` a notebook shows, the :class:`EditSet` every manipulation
metric takes (Fig. 5, 7, 8b, 9; Table 3), the toy judge's verdict, the mean of a metric, and the one domain
of the GAN baselines (Fig. 5; Table 1's GAN rows)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..method.attributes import Attribute, attribute

__all__ = ["Study", "EditSet", "GAN_DOMAIN", "judged", "mean"]


@dataclass
class Study:
    """A notebook's result: table rows (dicts of plain values), named image batches and its figure's grid."""

    rows: list[dict] = field(default_factory=list)
    images: dict[str, torch.Tensor] = field(default_factory=dict)
    extra: dict[str, list[dict]] = field(default_factory=dict)  # further tables by name
    grid: list[list[torch.Tensor | None]] = field(default_factory=list)  # figure rows of (3, H, W) images
    row_labels: list[str] = field(default_factory=list)
    col_labels: list[str] = field(default_factory=list)
    captions: list[list[str]] = field(default_factory=list)  # per-cell titles where columns differ by row
    title: str = ""

    def figure(self, stamp: str = ""):
        """The study's image grid as a matplotlib figure, stamped with ``stamp`` (the profile's)."""
        from .plots import image_grid

        return image_grid(self.grid, row_labels=self.row_labels, col_labels=self.col_labels,
                          captions=self.captions, title=self.title, stamp_text=stamp)

    def layout(self, keys: Sequence[str], col_labels: Sequence[str], *, n_rows: int | None = None,
               title: str = "", row_label: str = "image {}") -> None:
        """Grid = one row per image (up to ``n_rows``), one column per key of :attr:`images`."""
        n = min(len(self.images[keys[0]]), n_rows or len(self.images[keys[0]]))
        self.grid = [[self.images[k][i] for k in keys] for i in range(n)]
        self.row_labels = [row_label.format(i + 1) for i in range(n)]
        self.col_labels, self.title = list(col_labels), title


@dataclass
class EditSet:
    """(original, edited) pairs of one method for one prompt: the unit every manipulation metric takes."""

    method: str
    attribute: str
    domain: str
    source: str
    target: str
    originals: torch.Tensor
    edited: torch.Tensor


#: The one domain the GAN baselines apply to: the FFHQ StyleGAN2 generates faces only.
GAN_DOMAIN = "celeba_hq"


def judged(ctx, originals: torch.Tensor, edited: torch.Tensor, name: str) -> dict:
    """At the toy profile, the judge's verdict on an edit towards attribute ``name``
    (:func:`dclip.toy.judging.judge_edit`): ``hit`` (target seen, among the ``of`` originals that lacked it)
    and ``kept`` (other attributes kept); ``{}`` at other profiles or for edits the judge cannot read."""
    if not ctx.profile.is_toy:
        return {}
    from ..toy.judging import JUDGE_TARGETS, judge_edit

    if name not in JUDGE_TARGETS:
        return {"hit": None, "of": None, "kept": None}
    verdict = judge_edit(ctx.judge, originals, edited, name)
    return {"hit": verdict["hit"], "of": verdict["lacking"], "kept": verdict["kept"]}


def mean(values: torch.Tensor) -> float:
    """The mean of a metric's per-image values as a Python float."""
    return float(values.float().mean())


def _one_domain(items: Sequence[str]) -> list[Attribute]:
    attrs = [attribute(item) for item in items]
    if len({a.domain for a in attrs}) > 1:
        raise ValueError("run_baseline takes the attributes of one domain at a time.")
    return attrs
