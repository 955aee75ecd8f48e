"""Notebook 04's Fig. 9: each prompt by optimising the latent x_t0 of a frozen model, and by fine-tuning
the model (eq. 10), side by side (S_dir, MAE to the input)."""
from __future__ import annotations

from typing import Sequence

from ..method import metrics
from ..method.attributes import attribute
from .common import Study, judged, mean

__all__ = ["latent_vs_finetune"]


def latent_vs_finetune(ctx, attributes: Sequence[str]) -> Study:
    """Fig. 9: each prompt by optimising x_t0 of a frozen model, and by fine-tuning the model.

    Rows: attribute, method, S_dir, MAE to the input. Images: ``original_<domain>``,
    ``latent/<attribute>`` and ``finetune/<attribute>``.
    """
    from ..method.edit import latent_optimisation

    p, study = ctx.profile, Study()
    for name in attributes:
        attr = attribute(name)
        originals = ctx.world.images(attr.domain)
        study.images.setdefault(f"original_{attr.domain}", originals.cpu())
        optimised, _ = latent_optimisation(ctx.unet(attr.domain), ctx.clip, originals, attr.source, attr.target,
                                           attr.t0, n_inv=p.n_inv_train, n_gen=p.n_gen_train,
                                           iterations=p.latent_opt_iterations, lr=p.latent_opt_lr)
        tuned = ctx.edit(ctx.finetune(attr), originals, attr.t0, attr.domain)
        for key, method, edited in (("latent", "latent optimisation", optimised), ("finetune", "fine-tuning", tuned)):
            study.images[f"{key}/{name}"] = edited.detach().cpu()
            study.rows.append({"attribute": name, "method": method,
                               "s_dir": mean(metrics.directional_similarity(ctx.clip, originals, edited,
                                                                            attr.source, attr.target)),
                               "mae": mean(metrics.mae(originals, edited)),
                               **judged(ctx, originals, edited.detach(), name)})
    domain = attribute(attributes[0]).domain
    for i in range(min(2, len(study.images[f"original_{domain}"]))):
        for key, method in (("latent", "latent optimisation"), ("finetune", "fine-tuning")):
            study.grid.append([study.images[f"original_{domain}"][i]]
                              + [study.images[f"{key}/{name}"][i] for name in attributes])
            study.row_labels.append(f"{i + 1}: {method}")
    study.col_labels = ["original"] + list(attributes)
    study.title = "Fig. 9: latent optimisation vs fine-tuning"
    return study
