"""The toy world's images: procedural cartoon faces, seeded, with their ground-truth attributes.

A face is a :class:`Face` record (an *identity*: geometry and colour jitter; plus the attributes the
paper edits: skin tone, hair colour including gray, expression, glasses, background). :func:`render`
draws it in one of three styles:

* ``photo``  -- soft shading and anti-aliased edges: the only style the toy DDPM is trained on;
* ``sketch`` -- dark pencil lines on paper, no fill (an out-of-domain style, as the paper's "sketch");
* ``pixel art`` -- 2x2 blocks in a posterised palette (an out-of-domain style, as "Pixar"/"painting").

Drawing is done with PIL at 4x the size (integer coordinates only) and reduced by an integer box
filter (``Image.reduce``), so the same seed gives the same bytes on every machine. Seeds come from a
:class:`numpy.random.Generator` (PCG64) seeded with ``[seed, index]``: image ``i`` of a set does not
depend on how many images are drawn.

Seed ranges: training sets use seeds below :data:`HELD_OUT_SEED` (fine-tuning faces from
:data:`FINETUNE_SEED`); every evaluation (tests, notebooks, the bars in the models' sidecars) draws from
:data:`HELD_OUT_SEED` upwards, and settings are chosen on the validation faces from :data:`VALIDATION_SEED`.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from PIL import Image, ImageDraw

__all__ = ["SIZE", "ATTRIBUTES", "STYLES", "HELD_OUT_SEED", "FINETUNE_SEED", "VALIDATION_SEED", "DOMAIN_VERSION", "Face", "random_face", "render",
           "faces", "face_set", "evaluation_set", "to_tensor", "domain_hash", "with_attribute"]

SIZE = 32           # pixels per side of a rendered face
_SCALE = 4          # drawn at SIZE * _SCALE, then box-reduced
DOMAIN_VERSION = 1  # bump when drawing changes (the shipped models record it; see domain_hash)
HELD_OUT_SEED = 1_000_000
#: Fine-tuning faces (training seeds, never seen as test faces): independent fine-tunes start 1000 apart.
FINETUNE_SEED = HELD_OUT_SEED // 2
#: Validation faces: held out like the test faces (:data:`HELD_OUT_SEED` upwards) but from their own range,
#: where settings are chosen; the test faces never are.
VALIDATION_SEED = HELD_OUT_SEED + 500_000

#: Each attribute's values, in the order the classifiers use.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "skin": ("light", "tan", "dark"),
    "hair": ("black", "blond", "red", "gray"),
    "expression": ("neutral", "smiling", "frowning"),
    "glasses": ("no", "yes"),
    "background": ("blue", "green", "pink"),
}
STYLES: tuple[str, ...] = ("photo", "sketch", "pixel art")

_SKIN = {"light": (236, 200, 170), "tan": (198, 142, 92), "dark": (112, 72, 46)}
_HAIR = {"black": (30, 26, 26), "blond": (234, 200, 90), "red": (184, 62, 28), "gray": (160, 160, 164)}
_BACKGROUND = {"blue": (86, 136, 210), "green": (92, 170, 100), "pink": (226, 150, 186)}


@dataclass(frozen=True)
class Face:
    """One face: attributes (``skin`` ... ``background``) and identity (geometry and colour jitter, in
    units of the 4x drawing canvas)."""

    skin: str
    hair: str
    expression: str
    glasses: str
    background: str
    face_w: int        # half-width of the face ellipse
    face_h: int        # half-height
    dx: int            # horizontal offset of the face centre
    eye_gap: int       # half the distance between the eyes
    eye_y: int         # eye height relative to the face centre
    mouth_w: int       # half-width of the mouth
    hair_len: int      # how far the hair falls down the sides
    fringe: int        # fringe depth
    jitter: tuple[int, int, int]  # colour jitter added to skin/hair/background

    def attributes(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in ATTRIBUTES}


def _pick(rng: np.random.Generator, values: tuple[str, ...]) -> str:
    return values[int(rng.integers(len(values)))]


def random_face(rng: np.random.Generator, **fixed: str) -> Face:
    """A face with uniformly drawn attributes (those in ``fixed`` are set) and a random identity."""
    unknown = set(fixed) - set(ATTRIBUTES)
    if unknown:
        raise ValueError(f"unknown attribute(s) {sorted(unknown)}; attributes are {list(ATTRIBUTES)}.")
    attrs = {name: _pick(rng, values) for name, values in ATTRIBUTES.items()}
    geometry = dict(face_w=int(rng.integers(36, 45)), face_h=int(rng.integers(44, 52)), dx=int(rng.integers(-5, 6)),
                    eye_gap=int(rng.integers(13, 18)), eye_y=int(rng.integers(-10, -3)),
                    mouth_w=int(rng.integers(10, 15)), hair_len=int(rng.integers(0, 34)),
                    fringe=int(rng.integers(10, 22)),
                    jitter=tuple(int(v) for v in rng.integers(-12, 13, size=3)))
    for name, value in fixed.items():
        if value not in ATTRIBUTES[name]:
            raise ValueError(f"'{value}' is not a value of {name}; choose from {ATTRIBUTES[name]}.")
    return Face(**{**attrs, **fixed}, **geometry)


def _jitter(colour: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, c + amount))) for c in colour)


def _shade(colour, amount: int) -> tuple[int, int, int]:
    return _jitter(colour, -amount)


def _draw(face: Face, style: str) -> Image.Image:
    """The face on the 4x canvas (RGB)."""
    n = SIZE * _SCALE
    cx, cy = n // 2 + face.dx, n // 2 + 8
    skin = _jitter(_SKIN[face.skin], face.jitter[0])
    hair = _jitter(_HAIR[face.hair], face.jitter[1] // 2)
    background = _jitter(_BACKGROUND[face.background], face.jitter[2])
    line = (40, 40, 40)
    sketch = style == "sketch"
    if sketch:
        paper, ink = (244, 242, 236), (50, 50, 56)
        skin_fill = hair_fill = None
        background = paper
    image = Image.new("RGB", (n, n), background)
    draw = ImageDraw.Draw(image)
    w, h = face.face_w, face.face_h
    lw = _SCALE  # one output pixel
    # hair behind the face: a cap (ellipse) plus side curtains of hair_len
    cap = (cx - w - 6, cy - h - 8, cx + w + 6, cy + h // 3)
    sides = (cx - w - 6, cy - h // 2, cx + w + 6, cy - h // 2 + face.hair_len + 20)
    if sketch:
        draw.ellipse(cap, outline=ink, width=lw)
        draw.rectangle(sides, outline=ink, width=lw)
    else:
        draw.ellipse(cap, fill=hair)
        draw.rectangle(sides, fill=hair)
    # the face, with a darker rim in the photo style (shading)
    box = (cx - w, cy - h, cx + w, cy + h)
    if sketch:
        draw.ellipse(box, fill=paper, outline=ink, width=lw)
    else:
        draw.ellipse(box, fill=_shade(skin, 28) if style == "photo" else skin)
        if style == "photo":
            draw.ellipse((cx - w + 5, cy - h + 4, cx + w - 5, cy + h - 6), fill=skin)
            draw.ellipse((cx - w // 2, cy - h + 10, cx + w // 3, cy - h // 3), fill=_jitter(skin, 14))
    # fringe over the forehead
    fringe = (cx - w + 2, cy - h - 2, cx + w - 2, cy - h + face.fringe)
    if sketch:
        draw.chord(fringe, 0, 180, outline=ink, width=lw)
        draw.line((fringe[0], (fringe[1] + fringe[3]) // 2, fringe[2], (fringe[1] + fringe[3]) // 2), fill=ink, width=lw)
    else:
        draw.rectangle((fringe[0], fringe[1], fringe[2], (fringe[1] + fringe[3]) // 2), fill=hair)
    # eyes
    ey = cy + face.eye_y
    for ex in (cx - face.eye_gap, cx + face.eye_gap):
        draw.ellipse((ex - 5, ey - 5, ex + 5, ey + 5), fill=(ink if sketch else (245, 245, 245)))
        draw.ellipse((ex - 3, ey - 3, ex + 3, ey + 3), fill=(ink if sketch else (25, 25, 35)))
    # glasses: two rings and a bridge
    if face.glasses == "yes":
        frame = ink if sketch else (20, 20, 20)
        for ex in (cx - face.eye_gap, cx + face.eye_gap):
            draw.ellipse((ex - 11, ey - 10, ex + 11, ey + 10), outline=frame, width=lw)
        draw.line((cx - face.eye_gap + 11, ey, cx + face.eye_gap - 11, ey), fill=frame, width=lw)
    # mouth
    mw, my = face.mouth_w, cy + 24
    mouth = ink if sketch else (150, 30, 40)
    if face.expression == "smiling":
        draw.arc((cx - mw, my - 14, cx + mw, my + 8), 15, 165, fill=mouth, width=lw + 2)
    elif face.expression == "frowning":
        draw.arc((cx - mw, my + 2, cx + mw, my + 22), 200, 340, fill=mouth, width=lw + 2)
        draw.line((cx - face.eye_gap - 6, ey - 13, cx - face.eye_gap + 6, ey - 8), fill=line if not sketch else ink,
                  width=lw)
        draw.line((cx + face.eye_gap + 6, ey - 13, cx + face.eye_gap - 6, ey - 8), fill=line if not sketch else ink,
                  width=lw)
    else:
        draw.line((cx - mw, my, cx + mw, my), fill=mouth, width=lw + 2)
    return image


def _posterise(array: np.ndarray, levels: int = 4) -> np.ndarray:
    step = 256 // levels
    return (array // step) * step + step // 2


def render(face: Face, style: str = "photo") -> np.ndarray:
    """``face`` drawn in ``style`` as a (SIZE, SIZE, 3) uint8 array."""
    if style not in STYLES:
        raise ValueError(f"unknown style '{style}'; styles are {STYLES}.")
    image = _draw(face, style).reduce(_SCALE)
    if style == "pixel art":
        image = image.reduce(2).resize((SIZE, SIZE), Image.NEAREST)
        return _posterise(np.asarray(image)).astype(np.uint8)
    return np.asarray(image, dtype=np.uint8).copy()


def faces(start: int, n: int, *, seed: int = 0, **fixed: str) -> list[Face]:
    """``n`` faces: face ``i`` is drawn from ``Generator(PCG64([seed, start + i]))`` (attributes in ``fixed`` set)."""
    return [random_face(np.random.default_rng([seed, start + i]), **fixed) for i in range(n)]


def face_set(start: int, n: int, style: str = "photo", *, seed: int = 0, **fixed: str) -> tuple[torch.Tensor, list[Face]]:
    """``n`` faces rendered in ``style`` as a (n, 3, SIZE, SIZE) tensor in [-1, 1], with their records.

    ``face_set(HELD_OUT_SEED, 8)`` are eight held-out photo-style faces.
    """
    records = faces(start, n, seed=seed, **fixed)
    return to_tensor([render(f, style) for f in records]), records


def evaluation_set(n: int, style: str = "photo") -> tuple[torch.Tensor, list[Face]]:
    """The notebooks' ``n`` test faces: held-out faces (:data:`HELD_OUT_SEED` upwards) with glasses set
    to "no", "yes", "no", ... in turn, the rest as drawn.

    Glasses is the one two-valued attribute, and an edit can only be judged on faces that lack its
    target (:func:`dclip.toy.judging.judge_edit`); as drawn, the first nine held-out faces all wear
    glasses, which would leave a "glasses" edit nothing to be measured on.
    """
    records = [replace(f, glasses=ATTRIBUTES["glasses"][i % 2]) for i, f in enumerate(faces(HELD_OUT_SEED, n))]
    return to_tensor([render(f, style) for f in records]), records


def to_tensor(arrays) -> torch.Tensor:
    """uint8 (H, W, 3) arrays -> a float (N, 3, H, W) tensor in [-1, 1]."""
    stacked = torch.from_numpy(np.stack(list(arrays))).permute(0, 3, 1, 2).float()
    return stacked / 127.5 - 1.0


def domain_hash(n: int = 64) -> str:
    """A digest of the first ``n`` training faces in every style and their attributes: a shipped model's
    sidecar records it, and a test fails when the generator no longer draws what the model was trained on."""
    digest = hashlib.sha256(f"toy-domain-v{DOMAIN_VERSION}".encode())
    for face in faces(0, n):
        digest.update(repr(sorted(asdict(face).items())).encode())
        for style in STYLES:
            digest.update(render(face, style).tobytes())
    return digest.hexdigest()[:16]


def with_attribute(face: Face, **changes: str) -> Face:
    """The same identity with some attributes changed (the ground truth of an edit)."""
    return replace(face, **changes)
