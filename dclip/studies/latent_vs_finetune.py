"""Notebook 04's Fig. 9: each prompt by optimising the latent x_t0 of a frozen model, and by fine-tuning
the model (eq. 10), side by side (S_dir, MAE to the input)."""
from __future__ import annotations

from typing import Sequence

from ..method import metrics
from ..method.attributes import attribute
from .common import Study, judged, mean
from .judged_edits import face_rows

__all__ = ["latent_vs_finetune"]


def latent_vs_finetune(ctx, attributes: Sequence[str], n_show: int = 8) -> Study:
    """Fig. 9: each prompt by optimising x_t0 of a frozen model, and by fine-tuning the model, on the test
    images its edit is measured on (:meth:`~dclip.notebook.worlds.PhotoWorld.edit_images`).

    Rows: attribute, method, S_dir, MAE to the input (and the judged columns at the toy profile). Images:
    ``original/<attribute>``, ``latent/<attribute>`` and ``finetune/<attribute>``. The figure: per attribute,
    ``n_show`` faces as columns; rows original | true edit (toy) | latent optimisation | fine-tuning | |Δ| of
    the fine-tuned edit, the judge's reading under each face (toy).
    """
    from ..method.edit import latent_optimisation

    p, study = ctx.profile, Study()
    for name in attributes:
        attr = attribute(name)
        originals = ctx.world.edit_images(name)
        study.images[f"original/{name}"] = originals.cpu()
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
        grid, labels, notes = face_rows(ctx, name, originals, {"latent optimisation": optimised,
                                                               "fine-tuning": tuned}, n_show)
        study.grid += grid
        study.notes += notes
        study.row_labels += [f"{name}: {label}" for label in labels]
    study.title = "Fig. 9: latent optimisation vs fine-tuning"
    return study
