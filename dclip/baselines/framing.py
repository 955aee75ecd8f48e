"""One face, two framings: the StyleGAN2 generator's FFHQ frame and the diffusion model's 256 px frame.

The comparison of Fig. 5 / Tables 1 and 3 edits the same faces with DiffusionCLIP (CelebA-HQ
model, 256 x 256) and with the GAN baselines (StyleGAN2 trained on FFHQ, 1024 x 1024). Both datasets
were framed by the same rule -- the FFHQ alignment script (Karras et al., 2019), which CelebA-HQ's
256 px images follow too -- so the two framings differ only in pixel count:

* photos are FFHQ-aligned at the generator's resolution by the engine's one photo rule
  (:func:`dclip.data.faces.photo_to_tensor`, MTCNN's five landmarks);
* :func:`to_diffusion_frame`: generator-resolution faces -> the 256 px frame, an antialiased
  (area) resize -- the FFHQ quad fills the whole square at every size, so nothing moves;
* :func:`to_generator_frame`: the inverse direction for faces that exist only at 256 px (bicubic);
* :func:`frame_photos`: photos or aligned tensors -> ``(faces at generator size, faces at 256)``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..data.faces import photo_to_tensor

__all__ = ["DIFFUSION_SIZE", "resize_faces", "to_diffusion_frame",
           "to_generator_frame", "frame_photos"]

#: Side of the CelebA-HQ diffusion model's images (the paper's 256 x 256).
DIFFUSION_SIZE = 256


def resize_faces(x: Tensor, size: int) -> Tensor:
    """Resize aligned faces ``(N, 3, H, W)`` to ``size`` px: area average down, bicubic up.

    Area averaging is what rosinality's projector and StyleCLIP's CLIP input use to shrink 1024 px
    renders (block means); it keeps the framing exact because pixel blocks stay aligned to the square.
    """
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"expected square faces of shape (N, 3, S, S), got {tuple(x.shape)}")
    if x.shape[-1] == size:
        return x
    if x.shape[-1] > size:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def to_diffusion_frame(x: Tensor, size: int = DIFFUSION_SIZE) -> Tensor:
    """Generator-framed faces -> the diffusion model's 256 px framing (same FFHQ frame, fewer pixels)."""
    return resize_faces(x, size)


def to_generator_frame(x: Tensor, size: int) -> Tensor:
    """256 px aligned faces -> the generator's resolution (same frame; bicubic adds no detail)."""
    return resize_faces(x, size)


def _as_faces(photos) -> tuple[Tensor | None, list[Image.Image]]:
    if isinstance(photos, Tensor):
        if photos.ndim == 3:
            photos = photos[None]
        return photos.float(), []
    if isinstance(photos, Image.Image):
        return None, [photos]
    photos = list(photos)
    if not photos or not all(isinstance(p, Image.Image) for p in photos):
        raise TypeError("photos must be an (N, 3, S, S) tensor of aligned faces in [-1, 1] or a list of "
                        "PIL photos")
    return None, photos


def frame_photos(photos: Tensor | Image.Image | Sequence[Image.Image], generator_size: int,
                 diffusion_size: int = DIFFUSION_SIZE) -> tuple[Tensor, Tensor]:
    """``(faces at generator_size, faces at diffusion_size)``, both ``(N, 3, S, S)`` in [-1, 1].

    ``photos`` is either a tensor of already aligned faces (any size; e.g. the very 256 px batch the
    diffusion notebook edits, returned unchanged as the second item) or PIL photos, which are
    FFHQ-aligned at ``generator_size`` first and then brought to ``diffusion_size``.
    """
    faces, pil = _as_faces(photos)
    if faces is None:
        faces = torch.cat([photo_to_tensor(p, generator_size)[0] for p in pil])
        return faces, to_diffusion_frame(faces, diffusion_size)
    return resize_faces(faces, generator_size), resize_faces(faces, diffusion_size)
