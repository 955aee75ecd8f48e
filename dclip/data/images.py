"""Images in and out: files, folders and the photos that ship inside installed packages.

dclip's tensors are float images in [-1, 1] of shape (N, 3, H, W); PIL images and files are the
outside world's. Nothing here downloads a dataset: without a folder, the notebooks use photos that
matplotlib and scikit-image install with themselves. :func:`stroke_paint` is the one piece of image
processing: the flat-colour "stroke" inputs of the paper's stroke-to-image application (Fig. 4b).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..runtime.atomic import atomic_write

__all__ = ["to_tensor", "to_pil", "load_image", "load_folder", "image_files", "save_image", "sample_photo",
           "sample_photos", "SAMPLE_PHOTOS", "IMAGE_SUFFIXES", "stroke_paint"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def to_tensor(image: Image.Image, size: int | None = None) -> torch.Tensor:
    """PIL image → (1, 3, size, size) float tensor in [-1, 1] (centre crop to a square, bicubic resize)."""
    image = image.convert("RGB")
    if size is not None:
        w, h = image.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


def to_pil(x: torch.Tensor) -> list[Image.Image]:
    """(N, 3, H, W) tensor in [-1, 1] → list of PIL images (values clipped to the range)."""
    if x.dim() == 3:
        x = x[None]
    array = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [Image.fromarray(a.permute(1, 2, 0).cpu().numpy()) for a in array]


def load_image(path: str | os.PathLike, size: int | None = 256) -> torch.Tensor:
    """One image file as a (1, 3, size, size) tensor in [-1, 1]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image at '{path}'.")
    with Image.open(path) as image:
        return to_tensor(image, size)


def load_folder(folder: str | os.PathLike, size: int = 256, limit: int | None = None) -> torch.Tensor:
    """The images of a folder (sorted by name) as one (N, 3, size, size) tensor."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no image folder at '{folder}'. Point the notebook's image_dir at a folder "
                                "of images (e.g. CelebA-HQ test images), or leave it empty to use sample photos.")
    return torch.cat([load_image(p, size) for p in image_files(folder)[:limit]])


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a folder, sorted by name; an error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no image folder at '{folder}'.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"'{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return files


def save_image(x: torch.Tensor, path: str | os.PathLike) -> Path:
    """Save a (1, 3, H, W) or (3, H, W) tensor in [-1, 1] as an image file (atomically)."""
    fmt = (Path(path).suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG")
    return atomic_write(path, lambda tmp: to_pil(x)[0].save(tmp, format=fmt))


def _grace_hopper() -> Image.Image:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return Image.open(f).convert("RGB")


def _skimage(name: str):
    def load() -> Image.Image:
        import skimage.data

        return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")

    return load


# name -> (loader, what it shows). Faces first: the CelebA-HQ model's domain.
SAMPLE_PHOTOS = {
    "grace_hopper": (_grace_hopper, "portrait (matplotlib)"),
    "astronaut": (_skimage("astronaut"), "portrait (scikit-image)"),
    "chelsea": (_skimage("chelsea"), "cat (scikit-image)"),
    "coffee": (_skimage("coffee"), "cup of coffee (scikit-image)"),
}


def sample_photo(name: str) -> Image.Image:
    """A photo that ships with an installed package (see :data:`SAMPLE_PHOTOS`)."""
    if name not in SAMPLE_PHOTOS:
        raise ValueError(f"unknown sample photo '{name}'; choose from {sorted(SAMPLE_PHOTOS)}.")
    return SAMPLE_PHOTOS[name][0]()


def sample_photos(names=("grace_hopper", "astronaut"), size: int = 256) -> torch.Tensor:
    """Several shipped photos as one (N, 3, size, size) tensor in [-1, 1]."""
    return torch.cat([to_tensor(sample_photo(n), size) for n in names])


def stroke_paint(x: torch.Tensor, n_segments: int = 24, compactness: float = 20.0) -> torch.Tensor:
    """A stroke painting of each image: a few flat colour blocks (SLIC superpixels filled with their
    mean colour, scikit-image). Input and output in [-1, 1], shape (N, 3, H, W)."""
    from skimage.color import label2rgb
    from skimage.segmentation import slic

    out = []
    for image in x.detach().cpu().float():
        rgb = ((image.permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)
        labels = slic(rgb, n_segments=n_segments, compactness=compactness, start_label=1)
        flat = label2rgb(labels, rgb, kind="avg", bg_label=0)
        out.append(torch.from_numpy(flat).permute(2, 0, 1).float() * 2 - 1)
    return torch.stack(out).to(x.device)
