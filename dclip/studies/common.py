"""What the studies share: the :class:`Study` a notebook shows, the :class:`EditSet` every manipulation
metric takes (Fig. 5, 7, 8b, 9; Table 3), the toy judge's verdict, the mean of a metric, and the one domain
of the GAN baselines (Fig. 5; Table 1's GAN rows)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..method.attributes import Attribute, attribute

__all__ = ["Study", "EditSet", "GAN_DOMAIN", "JUDGED_COLUMNS", "WITH_INTERVAL", "judged", "lacking_mask", "reconstruction_scores",
           "beside_paper", "mean"]


@dataclass
class Study:
    """A notebook's result: table rows (dicts of plain values), named image batches and its figure's grid."""

    rows: list[dict] = field(default_factory=list)
    images: dict[str, torch.Tensor] = field(default_factory=dict)
    extra: dict[str, list[dict]] = field(default_factory=dict)  # further tables by name
    panels: dict[str, "Study"] = field(default_factory=dict)  # further figures by name
    grid: list[list[torch.Tensor | None]] = field(default_factory=list)  # figure rows of (3, H, W) images
    row_labels: list[str] = field(default_factory=list)
    col_labels: list[str] = field(default_factory=list)
    captions: list[list[str]] = field(default_factory=list)  # per-cell titles where columns differ by row
    notes: list[list[str]] = field(default_factory=list)  # per-cell text under the image (a judge's reading)
    title: str = ""

    def figure(self, stamp: str = ""):
        """The study's image grid as a matplotlib figure, stamped with ``stamp`` (the profile's)."""
        from .plots import image_grid

        return image_grid(self.grid, row_labels=self.row_labels, col_labels=self.col_labels,
                          captions=self.captions, notes=self.notes, title=self.title, stamp_text=stamp)

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


#: The toy world's per-face outcomes that a judged row reports, with their column names (see
#: :func:`dclip.toy.judging.edit_outcomes`): the fraction that hit the target (accepted *and* target read),
#: kept the other attributes, were well-formed; the toy identity; the distances to the true edit.
JUDGED_COLUMNS = {"hit": "hit", "kept": "kept", "well_formed": "formed", "identity": "toy_id",
                  "mae_edit": "mae_to_true", "mae_original": "original_mae_to_true",
                  "judge_edit": "judge_to_true", "judge_original": "original_judge_to_true"}
#: Columns that carry a 95 % bootstrap interval beside their mean (``<column>_ci``).
WITH_INTERVAL = ("hit", "kept", "mae_to_true", "judge_to_true")


def _interval(values, digits: int = 4) -> list[float]:
    """The 95 % bootstrap interval of the mean of ``values`` (:func:`dclip.method.metrics.bootstrap_interval`)."""
    from ..method.metrics import bootstrap_interval

    return [round(v, digits) for v in bootstrap_interval(values)]


def judged(ctx, originals: torch.Tensor, edited, name: str) -> dict:
    """At the toy profile, the judge's verdict on an edit towards attribute ``name``
    (:func:`dclip.toy.judging.edit_outcomes`) as table columns (:data:`JUDGED_COLUMNS`, with 95 % bootstrap
    intervals for :data:`WITH_INTERVAL`) over the ``of`` originals that lack the target (a face that already
    wears glasses says nothing about a glasses edit; by their true attributes when known). ``edited`` is one batch, or a list of
    batches from independent fine-tunes of the same faces (then ``runs`` says how many, and the intervals
    resample runs and faces). The distances to the true edit need the faces' records
    (:meth:`ToyWorld.records`); test faces that came from elsewhere get none. ``{}`` at other profiles."""
    if not ctx.profile.is_toy:
        return {}
    from ..toy.judging import JUDGE_TARGETS, edit_outcomes

    if name not in JUDGE_TARGETS:
        return {"hit": None, "of": None, "kept": None}
    runs = edited if isinstance(edited, (list, tuple)) else [edited]
    records = ctx.world.records(originals)
    outcomes = [edit_outcomes(ctx.judge, originals, e.detach(), name, records) for e in runs]
    lacking = lacking_mask(records, name, outcomes[0]["lacking"])
    row = {}
    for key, column in JUDGED_COLUMNS.items():
        if key not in outcomes[0]:
            continue
        values = torch.stack([o[key] for o in outcomes])[:, lacking].numpy()
        if values.size == 0:
            row[column] = None
            continue
        row[column] = round(float(values.mean()), 4)
        if column in WITH_INTERVAL:
            row[f"{column}_ci"] = _interval(values)
    row["of"] = int(lacking.sum())
    if len(runs) > 1:
        row["runs"] = len(runs)
    return row


def lacking_mask(records, name: str, read_lacking: torch.Tensor) -> torch.Tensor:
    """Which originals lack the target of ``name`` (an edit can only be judged on those): by their true
    attributes when the toy world drew them (``records``), else as the judge read them (``read_lacking``,
    :func:`dclip.toy.judging.edit_outcomes`' ``lacking``)."""
    from ..toy.judging import judge_target

    head, value = judge_target(name)
    if head == "style":
        return torch.ones(len(read_lacking), dtype=torch.bool)
    if records is not None:
        return torch.tensor([getattr(f, head) != value for f in records])
    return read_lacking.bool()


def reconstruction_scores(ctx, originals: torch.Tensor, reconstructions: torch.Tensor) -> dict:
    """Table 1's scores of a reconstruction: MAE, LPIPS and SSIM (:func:`dclip.method.metrics.reconstruction_scores`).
    At the toy profile LPIPS would come from an untrained AlexNet, so the judge's perceptual distance
    (``judge_dist``, :func:`dclip.toy.nets.judge_distance`) stands in for it, and the MAE carries its 95 %
    bootstrap interval over the images."""
    from ..method import metrics

    if not ctx.profile.is_toy:
        return metrics.reconstruction_scores(ctx.lpips, originals, reconstructions)
    from ..toy.nets import judge_distance

    mae = metrics.mae(originals, reconstructions)
    return {"mae": float(mae.mean()), "mae_ci": _interval(mae.numpy()),
            "judge_dist": float(judge_distance(ctx.judge, originals.cpu(), reconstructions.cpu()).mean()),
            "ssim": float(metrics.ssim(originals, reconstructions).mean())}


def beside_paper(ctx, paper: dict) -> dict:
    """``paper_<key>`` columns of the paper's numbers, except at the toy profile: a 32 px toy number is never
    held against one measured on the paper's 256² datasets."""
    return {} if ctx.profile.is_toy else {f"paper_{k}": v for k, v in paper.items()}


def mean(values: torch.Tensor) -> float:
    """The mean of a metric's per-image values as a Python float."""
    return float(values.float().mean())


def _one_domain(items: Sequence[str]) -> list[Attribute]:
    attrs = [attribute(item) for item in items]
    if len({a.domain for a in attrs}) > 1:
        raise ValueError("run_baseline takes the attributes of one domain at a time.")
    return attrs
