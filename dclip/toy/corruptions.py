"""Images that are *not* well-formed toy faces: what the judge must refuse and the toy CLIP must not
mistake for an edit.

A fine-tune that games its CLIP produces such images (a teal blob scored as pixel art, a tint scored as
gray hair). Two disjoint sets of corruption *kinds*:

* :data:`TRAINING_KINDS` -- blur, colour cast, a blend of two faces, partial erasure, noise, colour
  blobs. The judge learns to refuse them and the toy CLIP sees them as hard negatives with their own
  captions ("a blurry image", ...).
* :data:`HELD_OUT_KINDS` -- a jigsaw of the face's tiles, the colour negative, a wavy warp, stripes over
  the face and a dissolve into a blob. Neither the judge nor the CLIP ever sees them in training, so the
  judge's false-accept rate on them (:func:`dclip.toy.judging.false_accept_rate`) measures refusal, not
  memory. The outputs of broken fine-tunes are measured there too.

Every function maps images in [-1, 1], (N, 3, H, W), to corrupted images of the same shape, drawing
from ``generator`` only (seeded, the same on every machine up to float rounding).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["TRAINING_KINDS", "HELD_OUT_KINDS", "CAPTIONS", "corrupt", "corrupt_mixed"]


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, *shape, generator=generator)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Each image blurred with its own σ (pixels), a separable 9-tap kernel."""
    taps = torch.arange(-4, 5, dtype=x.dtype)
    kernel = torch.exp(-taps.view(1, -1) ** 2 / (2 * sigma.view(-1, 1) ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)                      # (N, 9)
    out = []
    for image, k in zip(x, kernel):
        c = image.shape[0]
        h = F.conv2d(F.pad(image[None], (4, 4, 0, 0), mode="replicate"), k.view(1, 1, 1, 9).expand(c, 1, 1, 9),
                     groups=c)
        out.append(F.conv2d(F.pad(h, (0, 0, 4, 4), mode="replicate"), k.view(1, 1, 9, 1).expand(c, 1, 9, 1),
                            groups=c))
    return torch.cat(out)


def blur(x, generator):
    """A strong Gaussian blur, σ 1.2-3 px: the mouth and the glasses' rims are gone."""
    return _gaussian_blur(x, _uniform(len(x), 1.2, 3.0, generator))


def colour_cast(x, generator):
    """A strong global tint: each channel shifted by ±0.35-0.7 (on [-1, 1]), at least one strongly."""
    n = len(x)
    shift = _uniform(n, -0.7, 0.7, generator, 3)
    strong = torch.randint(0, 3, (n,), generator=generator)
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    shift[torch.arange(n), strong] = sign * _uniform(n, 0.35, 0.7, generator)
    return (x + shift.view(n, 3, 1, 1)).clamp(-1, 1)


def blend(x, generator):
    """Two faces in one image: each blended with another of the batch at 30-70 %."""
    n = len(x)
    other = x[torch.roll(torch.arange(n), 1 + int(torch.randint(0, max(1, n - 1), (1,), generator=generator)))]
    w = _uniform(n, 0.3, 0.7, generator, 1, 1, 1)
    return (1 - w) * x + w * other


def erase(x, generator):
    """A rectangle covering 20-50 % of the image filled with one flat colour."""
    n, _, h, w = x.shape
    out = x.clone()
    for i in range(n):
        area = float(_uniform(1, 0.2, 0.5, generator))
        ratio = float(_uniform(1, 0.5, 2.0, generator))
        eh, ew = min(h, max(4, round(h * math.sqrt(area * ratio)))), min(w, max(4, round(w * math.sqrt(area / ratio))))
        top = int(torch.randint(0, h - eh + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - ew + 1, (1,), generator=generator))
        out[i, :, top:top + eh, left:left + ew] = _uniform(1, -1, 1, generator, 3).view(3, 1, 1)
    return out


def noise(x, generator):
    """Strong pixel noise, σ 0.25-0.6 (on [-1, 1])."""
    sigma = _uniform(len(x), 0.25, 0.6, generator, 1, 1, 1)
    return (x + sigma * torch.randn(x.shape, generator=generator)).clamp(-1, 1)


def _smooth_field(n: int, size: int, cells: int, generator) -> torch.Tensor:
    """Random colour fields: ``cells``² random colours, bicubic-upsampled to ``size`` (values in [-1, 1])."""
    coarse = _uniform(n, -1, 1, generator, 3, cells, cells)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def blobs(x, generator):
    """Smooth colour blobs with no face in them (what a collapsed fine-tune draws), now and then laid over the
    image's own mean colour."""
    n, _, h, _ = x.shape
    cells = int(torch.randint(2, 5, (1,), generator=generator))
    field = _smooth_field(n, h, cells, generator)
    w = _uniform(n, 0.6, 1.0, generator, 1, 1, 1)
    return (w * field + (1 - w) * x.mean((2, 3), keepdim=True)).clamp(-1, 1)


# -- held out: never seen by the judge or the toy CLIP in training ------------------------------------

def jigsaw(x, generator):
    """The image cut into 4 x 4 tiles, shuffled."""
    n, c, h, w = x.shape
    t = h // 4
    tiles = x.unfold(2, t, t).unfold(3, t, t).reshape(n, c, 16, t, t)
    out = torch.empty_like(tiles)
    for i in range(n):
        out[i] = tiles[i][:, torch.randperm(16, generator=generator)]
    return out.reshape(n, c, 4, 4, t, t).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


def negative(x, generator):
    """The colour negative."""
    return -x


def warp(x, generator):
    """A wavy spatial warp: rows and columns displaced by a sine of 2-4 px amplitude."""
    n, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    amp = _uniform(n, 2.0, 4.0, generator, 1, 1) * 2 / w
    freq = _uniform(n, 1.5, 3.0, generator, 1, 1) * math.pi
    phase = _uniform(n, 0, 2 * math.pi, generator, 1, 1)
    gx = xs + amp * torch.sin(freq * ys + phase)
    gy = ys + amp * torch.sin(freq * xs + phase)
    return F.grid_sample(x, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border", align_corners=True)


def stripes(x, generator):
    """Opaque stripes of one colour across the face, 2 px wide every 4-6 px, horizontal or vertical."""
    n, _, h, w = x.shape
    out = x.clone()
    for i in range(n):
        period = int(torch.randint(4, 7, (1,), generator=generator))
        colour = _uniform(1, -1, 1, generator, 3).view(3, 1, 1)
        index = torch.arange(h) % period < 2
        if torch.rand(1, generator=generator) < 0.5:
            out[i][:, index, :] = colour
        else:
            out[i][:, :, index] = colour
    return out


def dissolve(x, generator):
    """The face dissolving into a blob: a 50-80 % mix with a fine random field (more cells than a blob)."""
    n, _, h, _ = x.shape
    field = _smooth_field(n, h, 8, generator)
    w = _uniform(n, 0.5, 0.8, generator, 1, 1, 1)
    return (1 - w) * x + w * field


TRAINING_KINDS: dict[str, Callable] = {"blur": blur, "colour cast": colour_cast, "blend": blend, "erasure": erase,
                                       "noise": noise, "blobs": blobs}
HELD_OUT_KINDS: dict[str, Callable] = {"jigsaw": jigsaw, "negative": negative, "warp": warp, "stripes": stripes,
                                       "dissolve": dissolve}

#: The toy CLIP's captions of the training corruptions (hard negatives: a broken image is not an edit).
CAPTIONS: dict[str, tuple[str, ...]] = {
    "blur": ("a blurry image", "a blurred picture", "an out of focus image"),
    "colour cast": ("an image with a colour cast", "a tinted image", "a discoloured picture"),
    "blend": ("two faces blended together", "a double exposure", "an overlay of two pictures"),
    "erasure": ("a partly erased image", "an image with a missing patch", "a covered picture"),
    "noise": ("a noisy image", "static noise", "a grainy picture"),
    "blobs": ("colour blobs", "a smudge of colours", "a blob"),
}


def corrupt(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """``x`` corrupted by ``kind`` (a key of :data:`TRAINING_KINDS` or :data:`HELD_OUT_KINDS`)."""
    kinds = {**TRAINING_KINDS, **HELD_OUT_KINDS}
    if kind not in kinds:
        raise ValueError(f"unknown corruption '{kind}'; kinds: {sorted(kinds)}.")
    return kinds[kind](x.float(), generator)


def corrupt_mixed(x: torch.Tensor, generator: torch.Generator, kinds=tuple(TRAINING_KINDS)) -> tuple[torch.Tensor, list[str]]:
    """Each image corrupted by one of ``kinds`` drawn at random; returns (images, the kind of each)."""
    chosen = [kinds[int(i)] for i in torch.randint(0, len(kinds), (len(x),), generator=generator)]
    out = x.clone().float()
    for kind in set(chosen):
        index = torch.tensor([i for i, k in enumerate(chosen) if k == kind])
        out[index] = corrupt(x[index], kind, generator)
    return out, chosen
