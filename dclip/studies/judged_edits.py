"""The toy world's edits against the truth: each edit by several independent fine-tunes on test faces that lack
its target, beside the untouched model (the control), with the true edit, a |Δ| map and the judge's reading
under every face.

Only the toy world knows the perfect edit of a face (:func:`dclip.toy.judging.true_edit`), so this study runs
at the toy profile only. Its rows carry 95 % bootstrap intervals over faces and fine-tunes
(:func:`dclip.method.metrics.bootstrap_interval`); :data:`TARGETS` are the toy world's quality targets.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..method.attributes import attribute
from .common import Study, judged

__all__ = ["TARGETS", "meets_targets", "judged_edits", "edit_panel", "face_rows", "delta_map", "reading_label"]

#: The toy world's quality targets for an edit (not a verdict on the paper): hit ≥ 0.8, kept ≥ 0.9, and the
#: edit nearer the true edit than the original is (the interval of its distance below the original's mean).
TARGETS = {"hit": 0.8, "kept": 0.9}


def meets_targets(row: dict) -> bool:
    """Whether a judged row meets :data:`TARGETS` (hit and kept as measured; the distance to the true edit
    below the original's with its whole interval)."""
    closer = row["judge_to_true_ci"][1] < row["original_judge_to_true"]
    return row["hit"] >= TARGETS["hit"] and row["kept"] >= TARGETS["kept"] and closer


def delta_map(original: torch.Tensor, edited: torch.Tensor, gain: float = 2.0) -> torch.Tensor:
    """|edited − original| per pixel (channel mean, ×``gain``) as a gray (3, H, W) image in [-1, 1]:
    black = unchanged, white = changed by half the range or more."""
    change = ((edited.float() - original.float()).abs().mean(0, keepdim=True) / 2 * gain).clamp(0, 1)
    return (change * 2 - 1).expand(3, -1, -1)


def reading_label(reading: dict, head: str) -> str:
    """What the judge reads on one panel: the edited head's value, or "refused" for a broken image."""
    return reading[head] if reading["well_formed"] else f"refused ({reading[head]})"


def face_rows(ctx, name: str, originals: torch.Tensor, edits: dict[str, torch.Tensor], n_show: int = 8,
              delta: str | None = None) -> tuple[list[list], list[str], list[list[str]]]:
    """Figure rows with ``n_show`` faces as columns: original, the true edit (toy profile), each of ``edits``
    (label → batch) and the |Δ| map of ``edits[delta]`` (default: the last); under every face panel the
    judge's reading of the edited attribute (toy profile). Returns (grid, row labels, notes)."""
    n = min(n_show, len(originals))
    rows = {"original": originals[:n].cpu()}
    records = ctx.world.records(originals)
    if records is not None:
        from ..toy.judging import true_edit

        rows["true edit"] = true_edit(records[:n], name)
    rows.update({label: e[:n].detach().cpu() for label, e in edits.items()})
    changed = rows[delta or list(edits)[-1]]
    notes = [_readings(ctx, name, batch) for batch in rows.values()] + [[""] * n]
    rows["|Δ|"] = torch.stack([delta_map(a, b) for a, b in zip(rows["original"], changed)])
    return [list(batch) for batch in rows.values()], list(rows), notes


def _readings(ctx, name: str, batch: torch.Tensor) -> list[str]:
    """The judge's reading of ``name``'s attribute on each image (toy profile; blank elsewhere)."""
    from ..toy.judging import JUDGE_TARGETS, judge_target

    if not ctx.profile.is_toy or name not in JUDGE_TARGETS:
        return [""] * len(batch)
    head, _ = judge_target(name)
    return [reading_label(r, head) for r in ctx.judge.predict(batch.cpu())]


def edit_panel(ctx, name: str, originals: torch.Tensor, edited: torch.Tensor, n_show: int = 8) -> Study:
    """One edit's figure: ``n_show`` faces as columns; rows original | true edit | DiffusionCLIP | |Δ|;
    the judge's reading of the edited attribute under every face panel ("refused" when it finds no
    well-formed toy face)."""
    from ..toy.judging import judge_target

    study = Study()
    study.grid, study.row_labels, study.notes = face_rows(ctx, name, originals, {"DiffusionCLIP": edited}, n_show)
    study.title = (f"'{name}': {len(study.grid[0])} test faces that lack the target; under each face the judge's "
                   f"reading of {judge_target(name)[0]}")
    return study


def judged_edits(ctx, names: Sequence[str], *, runs: int = 3, split: str = "test", n_show: int = 8
                 ) -> tuple[list[dict], dict[str, Study]]:
    """Each toy edit of ``names`` by ``runs`` independent fine-tunes (own training faces and seed), judged on
    the profile's ``n_test`` faces of ``split`` that lack its target, beside the untouched model (the
    control: inversion and generation with the original model). Returns the rows and one
    :func:`edit_panel` per edit (the first fine-tune's edits)."""
    if not ctx.profile.is_toy:
        raise ValueError("judged_edits needs the toy profile: only the toy world knows the true edit.")
    rows, panels = [], {}
    for name in names:
        attr = attribute(name)
        faces = ctx.world.edit_images(name, split=split)
        edits = [ctx.edit(ctx.finetune(attr, replicate=r), faces, attr.t0) for r in range(runs)]
        control = ctx.edit(ctx.unet(attr.domain), faces, attr.t0)
        row = {"edit": name, "model": "fine-tuned", "t0": attr.t0, **judged(ctx, faces, edits, name)}
        rows += [{**row, "targets met": meets_targets(row)},
                 {"edit": name, "model": "untouched (control)", "t0": attr.t0, **judged(ctx, faces, control, name)}]
        panels[name] = edit_panel(ctx, name, faces, edits[0], n_show)
    return rows, panels
