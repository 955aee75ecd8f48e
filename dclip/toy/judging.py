"""Scoring edits with the judge: did the target attribute appear, and did the others stay?

The judge (:class:`dclip.toy.nets.Judge`) reads every attribute and the style of the originals and of
the edits. For an edit towards ``attribute`` (a name of :data:`JUDGE_TARGETS`):

* **hit rate**: over the originals that did *not* show the target (judged), the fraction whose edit
  does; a face that already wore glasses says nothing about a "glasses" edit. ``None`` when every
  original already showed it (``lacking`` = 0);
* **kept rate**: over the attributes the edit does not name, the fraction of (image, attribute) whose
  judged value is the same before and after (colour heads are not read on sketches, which have no colour).
"""
from __future__ import annotations

import torch

from .nets import COLOUR_HEADS

__all__ = ["JUDGE_TARGETS", "judge_target", "judge_edit"]

#: attribute preset -> (judge head, value it should read after the edit)
JUDGE_TARGETS: dict[str, tuple[str, str]] = {
    "smiling": ("expression", "smiling"), "angry": ("expression", "frowning"), "tanned": ("skin", "tan"),
    "gray_hair": ("hair", "gray"), "glasses": ("glasses", "yes"), "sketch": ("style", "sketch"),
    "pixel_art": ("style", "pixel art"), "photo": ("style", "photo"),
}


def judge_target(name: str) -> tuple[str, str]:
    try:
        return JUDGE_TARGETS[name]
    except KeyError:
        raise ValueError(f"the judge has no target for '{name}'; judged edits: {sorted(JUDGE_TARGETS)}.") from None


def _kept_heads(head: str, value: str) -> list[str]:
    from .domain import ATTRIBUTES

    heads = [h for h in ATTRIBUTES if h != head]
    return [h for h in heads if not (value == "sketch" and h in COLOUR_HEADS)]


def judge_edit(judge, originals: torch.Tensor, edited: torch.Tensor, name: str) -> dict:
    """``{"hit": target rate after the edit among originals lacking it (None if none did), "lacking": how many
    originals lacked it, "kept": other attributes kept}``."""
    head, value = judge_target(name)
    before, after = judge.predict(originals.cpu()), judge.predict(edited.cpu())
    kept_heads = _kept_heads(head, value)
    hits = [a[head] == value for b, a in zip(before, after) if b[head] != value]
    kept = [b[h] == a[h] for b, a in zip(before, after) for h in kept_heads]
    return {"hit": sum(hits) / len(hits) if hits else None, "lacking": len(hits),
            "kept": sum(kept) / max(1, len(kept))}
