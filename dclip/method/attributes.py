"""Attribute presets: the paper's edits as (source text, target text, t0, identity losses).

Texts follow the authors' ``utils/text_dic.py``; t0 follows the paper (Sec. 4.3 / Fig. 8b: skin colour
needs little, t0 ≈ 200-300; shape changes such as Pixar need t0 ≈ 500-700). The authors advise a t0
that the step count does not divide (201, 301, 401, 601). The identity loss is used for in-domain
face edits, where the person must stay recognisable; style changes use the L1 term only.
Free text always works too: :func:`attribute` returns a preset, :class:`Attribute` makes one.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Attribute", "ATTRIBUTES", "attribute", "preset_name", "TOY_STAND_INS", "toy_stand_in"]


@dataclass(frozen=True)
class Attribute:
    """One edit: CLIP source and target texts, the return step t0, the domain and the identity terms."""

    source: str
    target: str
    t0: int
    domain: str = "celeba_hq"
    use_id: bool = False
    use_l1: bool = True


ATTRIBUTES: dict[str, Attribute] = {
    # Human face, in domain (identity kept)
    "tanned": Attribute("face", "tanned face", 201, use_id=True),
    "makeup": Attribute("person", "person with makeup", 301, use_id=True),
    # the authors' table maps grey_hair to "person with red hair" (a slip); this is the intended text
    "gray_hair": Attribute("person", "person with gray hair", 301, use_id=True),
    "angry": Attribute("face", "angry face", 301, use_id=True),
    "smiling": Attribute("face", "smiling face", 301, use_id=True),
    "curly_hair": Attribute("person", "person with curly hair", 401, use_id=True),
    "old": Attribute("person", "old person", 401, use_id=True),
    # Human face, out of domain
    "pixar": Attribute("Human", "3D render in the style of Pixar", 601),
    "neanderthal": Attribute("Human", "Neanderthal", 601),
    "super_saiyan": Attribute("Human", "Super saiyan", 601),
    "gogh": Attribute("photo", "painting by Gogh", 601),
    "sketch": Attribute("photo", "sketch", 601),
    # The toy world's own (dclip.toy: synthetic cartoon faces; the toy CLIP knows these words)
    "glasses": Attribute("person", "person with glasses", 301, use_id=True),
    "pixel_art": Attribute("photo", "pixel art", 601),
    # Dog face (AFHQ)
    "dog_bear": Attribute("Dog", "Bear", 501, domain="afhq_dog"),
    "dog_fox": Attribute("Dog", "Fox", 501, domain="afhq_dog"),
    # Church (LSUN)
    "church_golden": Attribute("Church", "Golden Church", 401, domain="lsun_church"),
    "church_red_brick": Attribute("Church", "Red brick wall Church", 401, domain="lsun_church"),
    "church_sunset": Attribute("Church", "Church at sunset", 401, domain="lsun_church"),
    # Bedroom (LSUN)
    "bedroom_golden": Attribute("Bedroom", "Golden Bedroom", 401, domain="lsun_bedroom"),
}


#: At the toy profile each paper attribute is replaced by the toy world's closest edit (the toy faces have
#: no makeup, curls or churches): same kind of change -- a local in-domain edit, a colour, a new style.
#: Attributes missing here (other domains) are left out at the toy profile.
TOY_STAND_INS: dict[str, str] = {
    "smiling": "smiling", "angry": "angry", "tanned": "tanned", "gray_hair": "gray_hair", "glasses": "glasses",
    "makeup": "glasses", "curly_hair": "gray_hair", "old": "gray_hair",
    "sketch": "sketch", "pixel_art": "pixel_art", "pixar": "pixel_art", "gogh": "sketch", "neanderthal": "angry",
    "super_saiyan": "pixel_art",
}


def toy_stand_in(name: str) -> str | None:
    """The toy world's stand-in for the paper attribute ``name`` (``None``: nothing like it at the toy profile)."""
    return TOY_STAND_INS.get(name)


def preset_name(attr: Attribute) -> str | None:
    """The name of the preset ``attr`` is (``None``: free text, or a preset with changed fields)."""
    return next((name for name, preset in ATTRIBUTES.items() if preset == attr), None)


def attribute(name: str) -> Attribute:
    """The preset called ``name`` (see :data:`ATTRIBUTES`)."""
    try:
        return ATTRIBUTES[name]
    except KeyError:
        raise ValueError(f"unknown attribute '{name}'; presets: {', '.join(sorted(ATTRIBUTES))}. "
                         "For free text use Attribute(source, target, t0).") from None
