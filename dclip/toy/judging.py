"""Scoring edits in the toy world, against the truth: did the target appear, did the rest stay, and how far
is the edit from the perfect one?

The toy world knows the perfect edit of every face: :func:`true_edit` draws the same identity with the
target attribute (or in the target style). The judge (:class:`dclip.toy.nets.Judge`) reads every attribute,
the style, the identity parameters and whether the image is a well-formed toy face at all. For an edit
towards ``name`` (a key of :data:`JUDGE_TARGETS`), per test face:

* **hit**: the judge accepts the edit as well-formed *and* reads the target;
* **kept**: the fraction of the other attributes the judge reads as before (0 for a refused edit: a broken
  image keeps nothing; colour heads are not read on sketches, which have no colour);
* **well-formed**: the judge accepts the edit;
* **distance to the true edit**: pixel MAE ([0, 1] scale) and :func:`dclip.toy.nets.judge_distance`, for
  the edit and, as the reference, for the unedited original;
* **identity**: 1 − the mean difference of the identity parameters read back from the original and the
  edit, over that of two random faces (1: same identity, 0: a stranger's).

Test faces are chosen by their true attributes: only faces that lack the target are edited.
"""
from __future__ import annotations

import numpy as np
import torch

from . import domain
from .corruptions import HELD_OUT_KINDS, TRAINING_KINDS, corrupt
from .nets import COLOUR_HEADS, identity_vector, judge_distance

__all__ = ["identity_loss", "JUDGE_TARGETS", "TOY_EDITS", "judge_target", "lacks", "lacking_faces", "having_faces", "true_edit", "judge_edit", "edit_outcomes",
           "refusal_report", "STRANGER_IDENTITY_GAP"]

#: attribute preset -> (judge head, value it should read after the edit)
JUDGE_TARGETS: dict[str, tuple[str, str]] = {
    "smiling": ("expression", "smiling"), "angry": ("expression", "frowning"), "tanned": ("skin", "tan"),
    "gray_hair": ("hair", "gray"), "glasses": ("glasses", "yes"), "sketch": ("style", "sketch"),
    "pixel_art": ("style", "pixel art"), "photo": ("style", "photo"),
}


#: The seven toy edits (every judged target but "photo"), in the order the toy CLIP's direction training draws them.
TOY_EDITS = ("angry", "smiling", "glasses", "tanned", "gray_hair", "sketch", "pixel_art")


def judge_target(name: str) -> tuple[str, str]:
    try:
        return JUDGE_TARGETS[name]
    except KeyError:
        raise ValueError(f"the judge has no target for '{name}'; judged edits: {sorted(JUDGE_TARGETS)}.") from None


def _stranger_gap(n: int = 4000) -> float:
    """The mean |Δ| of the scaled identity parameters between two independent random faces."""
    a, b = domain.faces(0, n, seed=99), domain.faces(n, n, seed=99)
    return float(torch.stack([(identity_vector(x) - identity_vector(y)).abs().mean() for x, y in zip(a, b)]).mean())


#: :func:`_stranger_gap`, the identity measure's zero (computed once; ≈ 0.35).
STRANGER_IDENTITY_GAP = _stranger_gap()


def lacks(face: domain.Face, name: str) -> bool:
    """Whether ``face``'s true attributes lack the target of edit ``name`` (every photo lacks a style)."""
    head, value = judge_target(name)
    return head == "style" or getattr(face, head) != value


def lacking_faces(names: str | tuple[str, ...], n: int, start: int = domain.HELD_OUT_SEED, style: str = "photo"
                  ) -> tuple[torch.Tensor, list[domain.Face]]:
    """The first ``n`` faces from seed ``start`` on whose *true* attributes lack the target of ``names`` (one
    edit's name, or several: faces lacking every target; every photo lacks a style), rendered in ``style``."""
    names = (names,) if isinstance(names, str) else names
    records, index = [], start
    while len(records) < n:
        batch = domain.faces(index, 4 * n)
        records += [f for f in batch if all(lacks(f, name) for name in names)][: n - len(records)]
        index += 4 * n
    return domain.to_tensor([domain.render(f, style) for f in records]), records


def having_faces(name: str, n: int, start: int = domain.HELD_OUT_SEED) -> tuple[torch.Tensor, list[domain.Face]]:
    """The first ``n`` faces from seed ``start`` on whose true attributes already have the target of edit ``name``
    (a style edit: the first ``n`` faces, drawn in its style): what a null edit is applied to."""
    head, value = judge_target(name)
    records, index = [], start
    while len(records) < n:
        batch = domain.faces(index, 4 * n)
        records += [f for f in batch if head == "style" or getattr(f, head) == value][: n - len(records)]
        index += 4 * n
    style = value if head == "style" else "photo"
    return domain.to_tensor([domain.render(f, style) for f in records]), records


def true_edit(records, name: str) -> torch.Tensor:
    """The perfect edit of each face towards ``name``: the same identity with the target attribute in the
    photo style, or the same face in the target style (images in [-1, 1])."""
    head, value = judge_target(name)
    if head == "style":
        return domain.to_tensor([domain.render(f, value) for f in records])
    return domain.to_tensor([domain.render(domain.with_attribute(f, **{head: value}), "photo") for f in records])


def _kept_heads(head: str, value: str) -> list[str]:
    heads = [h for h in domain.ATTRIBUTES if h != head]
    return [h for h in heads if not (value == "sketch" and h in COLOUR_HEADS)]


def _mae(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a.float() - b.float()).abs() / 2).flatten(1).mean(1)


def edit_outcomes(judge, originals: torch.Tensor, edited: torch.Tensor, name: str, records=None) -> dict:
    """Per-face outcomes of an edit towards ``name`` (tensors of length N; see the module docstring):
    ``lacking`` (1 where the judge reads the original without the target), ``hit``, ``kept``, ``well_formed``,
    ``identity``, and with ``records`` (the originals' faces) the
    distances ``mae_edit`` / ``mae_original`` and ``judge_edit`` / ``judge_original`` to the true edit."""
    head, value = judge_target(name)
    originals, edited = originals.cpu().float(), edited.cpu().float()
    before, after = judge.predict(originals), judge.predict(edited)
    heads = _kept_heads(head, value)
    formed = torch.tensor([a["well_formed"] for a in after], dtype=torch.float)
    out = {
        "lacking": torch.tensor([float(b[head] != value) for b in before]),  # as the judge reads the originals
        "hit": torch.tensor([float(a["well_formed"] and a[head] == value) for a in after]),
        "kept": torch.tensor([float(a["well_formed"]) * np.mean([b[h] == a[h] for h in heads])
                              for b, a in zip(before, after)]),
        "well_formed": formed,
        "identity": torch.tensor([1 - float((b["identity"] - a["identity"]).abs().mean()) / STRANGER_IDENTITY_GAP
                                  for b, a in zip(before, after)]),
    }
    if records is not None:
        truth = true_edit(records, name)
        out.update(mae_edit=_mae(edited, truth), mae_original=_mae(originals, truth),
                   judge_edit=judge_distance(judge, edited, truth), judge_original=judge_distance(judge, originals, truth))
    return out


def judge_edit(judge, originals: torch.Tensor, edited: torch.Tensor, name: str, records=None) -> dict:
    """The means of :func:`edit_outcomes`, with ``lacking``: how many originals the judge reads as lacking
    the target (the hit rate is over those; ``None`` when none do) and ``n``: how many faces."""
    outcomes = edit_outcomes(judge, originals, edited, name, records)
    lacking = outcomes.pop("lacking").bool()
    result = {k: float(v.mean()) for k, v in outcomes.items()}
    result["hit"] = float(outcomes["hit"][lacking].mean()) if lacking.any() else None
    return {**result, "lacking": int(lacking.sum()), "n": len(originals)}


def refusal_report(judge, n: int = 96, start: int = domain.HELD_OUT_SEED + 200_000, seed: int = 0) -> dict:
    """How the judge's form head does on held-out faces: ``accept_well_formed`` (clean faces in every style
    accepted), ``false_accept`` per corruption kind (broken images accepted), and the held-out kinds'
    overall rate ``false_accept_held_out`` (the kinds neither the judge nor the toy CLIP saw in training)."""
    generator = torch.Generator().manual_seed(seed)
    records = domain.faces(start, n)
    styles = [domain.STYLES[i % len(domain.STYLES)] for i in range(n)]
    clean = domain.to_tensor([domain.render(f, s) for f, s in zip(records, styles)])

    def accepted(x):
        return float(np.mean([p["well_formed"] for p in judge.predict(x)]))

    rates = {kind: accepted(corrupt(clean, kind, generator)) for kind in (*TRAINING_KINDS, *HELD_OUT_KINDS)}
    return {"accept_well_formed": accepted(clean), "false_accept": rates,
            "false_accept_held_out": float(np.mean([rates[k] for k in HELD_OUT_KINDS])), "n": n}


def identity_loss(judge):
    """The toy identity measure as a differentiable loss ``f(reference, image) -> (N,)``: the mean |Δ| of the
    identity parameters the judge reads back, over that of two random faces (0: the same face, 1: a stranger's);
    1 − it is :func:`edit_outcomes`' ``toy_id``. What StyleCLIP's identity term uses in the toy world."""
    def loss(reference: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = judge(reference.clamp(-1, 1))["identity"]
        return (judge(image.clamp(-1, 1))["identity"] - target).abs().mean(1) / STRANGER_IDENTITY_GAP

    return loss
