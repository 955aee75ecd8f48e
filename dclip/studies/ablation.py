"""Notebook 03's Fig. 8b: the same manipulation fine-tuned and applied at each t0 (S_dir, MAE).
Fig. 8a, the S_inv x S_gen reconstruction ablation, is :func:`dclip.studies.reconstruction.step_ablation`."""
from __future__ import annotations

from typing import Sequence

import torch

from ..method import metrics
from ..method.attributes import attribute
from .common import Study, judged, mean
from .judged_edits import _readings

__all__ = ["t0_ablation"]


def t0_ablation(ctx, attributes: Sequence[str], t0s: Sequence[int] = (300, 500, 700), *,
                n_images: int | None = None, n_show: int = 4) -> Study:
    """Fig. 8b: fine-tune each attribute at every t0 and edit the test images its edit is measured on
    (:meth:`~dclip.notebook.worlds.PhotoWorld.edit_images`; ``n_images`` of them, default the profile's).

    Rows: attribute, t0, S_dir, MAE to the input and, at the toy profile, the judged columns with intervals.
    Images: ``original/<attribute>`` and ``<attribute>_<t0>``. The figure: ``n_show`` faces per attribute,
    one row each, its t0s side by side (the judge's reading of the edited attribute under each, at the toy
    profile).
    """
    study = Study()
    for name in attributes:
        attr = attribute(name)
        originals = ctx.world.edit_images(name, n_images)
        study.images[f"original/{name}"] = originals.cpu()
        for t0 in t0s:
            edited = ctx.edit(ctx.finetune(attr, int(t0)), originals, int(t0), attr.domain)
            study.images[f"{name}_{t0}"] = edited.cpu()
            s_dir = mean(metrics.directional_similarity(ctx.clip, originals, edited, attr.source, attr.target))
            study.rows.append({"attribute": name, "t0": int(t0), "s_dir": s_dir,
                               "mae": mean(metrics.mae(originals, edited)), **judged(ctx, originals, edited, name)})
        for i in range(min(n_show, len(originals))):
            cells = [originals[i].cpu()] + [study.images[f"{name}_{t0}"][i] for t0 in t0s]
            study.grid.append(cells)
            study.row_labels.append(f"{name} {i + 1}")
            study.notes.append(_readings(ctx, name, torch.stack(cells)))
    study.col_labels = ["original"] + [f"t0={t0}" for t0 in t0s]
    study.title = "Fig. 8b: the same manipulation fine-tuned and applied at each t0"
    return study
