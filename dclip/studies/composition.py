"""Null edits and composition (beyond the paper; issue 33): an edit applied to faces that already have its target
should change nothing, once or many times in a row.

Counterfactual image-editing benchmarks call this *composition* (Melistas et al., NeurIPS 2024): intervening on an
attribute a face already has must give the face back. Per toy edit, the faces that have its target
(:func:`dclip.toy.judging.having_faces`) are edited once and then ``repeats`` times in a row (each edit starts from
the last one's output as a picture, clamped to [-1, 1], and inverted again), by each of the edit's fine-tunes;
reported after one application and after ``repeats``: *kept*, the share of the judge's readings (every attribute,
the style, well-formedness) unchanged from the original (:func:`dclip.studies.toy_table3.attribute_agreement`), and
the distance to the original on the judge's features (:func:`dclip.toy.nets.judge_distance`), each with its 95 %
bootstrap interval over fine-tunes and faces. Toy profile only: elsewhere nothing knows which faces have a target.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from ..method.attributes import attribute
from .common import Study, _interval

__all__ = ["null_edit_outcomes", "null_edit_row", "null_edits"]


def null_edit_outcomes(judge, faces: torch.Tensor, apply: Callable[[torch.Tensor], torch.Tensor],
                       repeats: int) -> dict[int, dict[str, torch.Tensor]]:
    """Per face, after 1 and after ``repeats`` applications of ``apply`` in a row: ``kept`` and ``distance`` to
    ``faces`` (tensors of length N), keyed by the number of applications."""
    from ..toy.nets import judge_distance
    from .toy_table3 import attribute_agreement

    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1; got {repeats}.")
    out, x = {}, faces
    for k in range(1, repeats + 1):
        x = apply(x)
        if k in (1, repeats):
            out[k] = {"kept": attribute_agreement(judge, faces, x), "distance": judge_distance(judge, faces, x)}
    return out


def null_edit_row(name: str, runs: Sequence[dict[int, dict[str, torch.Tensor]]], repeats: int) -> dict:
    """One table row for edit ``name`` from each fine-tune's :func:`null_edit_outcomes` (the same faces in each)."""
    row = {"edit": name}
    for k, label in ((1, "once"), (repeats, f"{repeats}×")):
        for key in ("kept", "distance"):
            values = np.stack([r[k][key].numpy() for r in runs])
            row[f"{key} {label}"] = round(float(values.mean()), 4)
            row[f"{key} {label}_ci"] = _interval(values)
    row["of"], row["runs"] = len(runs[0][1]["kept"]), len(runs)
    return row


def null_edits(ctx, names: Sequence[str], *, runs: int = 1, repeats: int = 10, n_faces: int | None = None) -> Study:
    """Notebook 02's composition table: each toy edit in ``names``, by ``runs`` fine-tunes, applied once and
    ``repeats`` times in a row to ``n_faces`` (default: the profile's ``n_test``) test faces that already have its
    target. ``rows``: one per edit (:func:`null_edit_row`)."""
    from ..toy.judging import having_faces

    study = Study(title=f"null edits: each edit on faces that already have its target, once and {repeats}× in a row")
    n = n_faces or ctx.profile.n_test
    for name in names:
        attr = attribute(name)
        faces = having_faces(name, n)[0].to(ctx.device)
        outcomes = []
        for r in range(runs):
            model = ctx.finetune(attr, replicate=r)
            # each application starts from the picture the last one made: its output clamped to [-1, 1]
            outcomes.append(null_edit_outcomes(
                ctx.judge, faces, lambda x: ctx.edit(model, x, attr.t0, attr.domain).clamp(-1, 1), repeats))
        study.rows.append(null_edit_row(name, outcomes, repeats))
    return study
