"""Notebook 03's Fig. 8b: the same manipulation fine-tuned and applied at each t0 (S_dir, MAE).
Fig. 8a, the S_inv x S_gen reconstruction ablation, is :func:`dclip.studies.reconstruction.step_ablation`."""
from __future__ import annotations

from typing import Sequence

from ..method import metrics
from ..method.attributes import attribute
from .common import Study, judged, mean

__all__ = ["t0_ablation"]


def t0_ablation(ctx, attributes: Sequence[str], t0s: Sequence[int] = (300, 500, 700), *,
                n_images: int = 1) -> Study:
    """Fig. 8b: fine-tune each attribute at every t0 and edit the first ``n_images`` test images.

    Rows: attribute, t0, S_dir. Images: ``original_<domain>`` and ``<attribute>_<t0>``.
    """
    study = Study()
    for name in attributes:
        attr = attribute(name)
        originals = ctx.world.images(attr.domain, n_images)
        study.images.setdefault(f"original_{attr.domain}", originals.cpu())
        for t0 in t0s:
            edited = ctx.edit(ctx.finetune(attr, int(t0)), originals, int(t0), attr.domain)
            study.images[f"{name}_{t0}"] = edited.cpu()
            s_dir = mean(metrics.directional_similarity(ctx.clip, originals, edited, attr.source, attr.target))
            study.rows.append({"attribute": name, "t0": int(t0), "s_dir": s_dir,
                               "mae": mean(metrics.mae(originals, edited)), **judged(ctx, originals, edited, name)})
        study.grid.append([originals[0].cpu()] + [study.images[f"{name}_{t0}"][0] for t0 in t0s])
        study.row_labels.append(name)
    study.col_labels = ["original"] + [f"t0={t0}" for t0 in t0s]
    study.title = "Fig. 8b: the same manipulation fine-tuned and applied at each t0"
    return study
