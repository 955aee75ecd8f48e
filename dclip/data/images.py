"""Images in and out: files, folders and the photos that ship inside installed packages.

dclip's tensors are float images in [-1, 1] of shape (N, 3, H, W); PIL images and files are the
outside world's. Every image file a user gives is read by :func:`read_image` (a broken one is an
:class:`~dclip.runtime.errors.UnreadableFileError` naming the file, what is wrong and the fix); in a folder,
an unreadable image is skipped with one warning line (:func:`load_each`). Nothing here downloads a dataset:
without a folder, the notebooks use photos that matplotlib and scikit-image install with themselves. :func:`stroke_paint` is the one piece of image
processing: the flat-colour "stroke" inputs of the paper's stroke-to-image application (Fig. 4b).
"""
from __future__ import annotations

import functools
import io
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..runtime.atomic import atomic_write
from ..runtime.errors import UnreadableFileError, warn

__all__ = ["to_tensor", "to_pil", "read_image", "load_image", "load_each", "load_folder", "no_readable_images",
           "image_files", "save_image", "sample_photo", "sample_photos", "SAMPLE_PHOTOS", "IMAGE_SUFFIXES",
           "stroke_paint"]

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


def read_image(source: str | os.PathLike | bytes, name: str | None = None) -> Image.Image:
    """The one reader of every image file dclip is given: an RGB, upright, fully decoded PIL image.

    ``source`` is a path or the file's bytes (an upload; ``name`` then names it in messages). Whatever a
    user may fairly give reads as the picture they see: RGBA and other transparent images on white,
    grayscale, 16-bit PNG (scaled to 8 bits, not clipped), CMYK JPEG, photos rotated by their EXIF
    orientation (:func:`PIL.ImageOps.exif_transpose`); any size (:func:`to_tensor` resizes).

    Raises:
        FileNotFoundError: no file at ``source``.
        UnreadableFileError: the file is empty, truncated, damaged or not an image; one line naming
            the file, what is wrong and what to do.
    """
    label, opened = _opened(source, name)
    try:
        with Image.open(opened) as image:
            image.load()  # decode it all now: a truncated file fails here, not later in a model
            return _rgb(_upright(image))
    except PermissionError:
        raise UnreadableFileError(label, "cannot be opened: permission denied",
                                  "Make it readable (chmod u+r), or copy it somewhere you can read.") from None
    except Exception as err:  # PIL reports a bad file with many exception types
        raise _unreadable(label, _head_and_tail(source), err) from None


def _opened(source, name: str | None) -> tuple[str, object]:
    """(name for messages, what ``Image.open`` takes) of a path or of a file's bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "the uploaded file"
        if not len(source):
            raise UnreadableFileError(label, "is empty (0 bytes)", "Upload the file again.")
        return label, io.BytesIO(bytes(source))
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no image at '{path}'.")
    if path.stat().st_size == 0:
        raise UnreadableFileError(path, "is empty (0 bytes)", "Copy it again from its source.")
    return name or str(path), path


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (a photo taken with the camera on its side)."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a damaged EXIF block: the pixels are still fine, as they are stored
        return image


def _rgb(image: Image.Image) -> Image.Image:
    """A new RGB image: 16/32-bit grey scaled to 8 bits, transparency composed on white."""
    if image.mode.startswith("I") or image.mode == "F":
        grey = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or grey.max() > 255:  # 16-bit samples: 0..65535
            grey = grey / 257.0
        elif image.mode == "F" and grey.max() <= 1.0:  # floats in [0, 1]
            grey = grey * 255.0
        image = Image.fromarray(grey.clip(0, 255).round().astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image.convert("RGB")


#: How image files begin and (where a format has one) end: (format, first bytes, last bytes).
_SIGNATURES = [("PNG", b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"), ("JPEG", b"\xff\xd8\xff", b"\xff\xd9"),
               ("GIF", b"GIF8", b";"), ("WebP", b"RIFF", None), ("BMP", b"BM", None), ("TIFF", b"II*\x00", None),
               ("TIFF", b"MM\x00*", None)]


def _head_and_tail(source, n: int = 64) -> tuple[bytes, bytes]:
    """The first and last ``n`` bytes of a file (path or bytes), to tell a truncated image from a non-image."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return data[:n], data[-n:]
    with open(source, "rb") as f:
        head = f.read(n)
        f.seek(max(0, os.fstat(f.fileno()).st_size - n))
        return head, f.read(n)


def _unreadable(label: str, ends: tuple[bytes, bytes], err: Exception) -> UnreadableFileError:
    """What is wrong with an image file PIL could not read, from its first and last bytes and PIL's error."""
    head, tail = ends
    again = "Copy it again from its source (or remove it)."
    known = next(((fmt, end) for fmt, start, end in _SIGNATURES if head.startswith(start)), None)
    if isinstance(err, Image.DecompressionBombError):
        return UnreadableFileError(label, f"is too large to decode safely ({err})",
                                   "Downscale it first, to a few thousand pixels a side.")
    if known is None:
        return UnreadableFileError(label, "is not an image: its content is none of the formats PIL reads "
                                          "(PNG, JPEG, WebP, BMP, GIF, TIFF, ...)", "Save it as a PNG or JPEG file.")
    fmt, end = known
    if isinstance(err, UnidentifiedImageError) and (end is None or end in tail):
        return UnreadableFileError(label, f"is a damaged {fmt} file: its header cannot be read", again)
    if "truncated" in str(err).lower() or (end is not None and end not in tail):
        return UnreadableFileError(label, f"is truncated: the {fmt} file ends before its image data does "
                                          "(an interrupted copy or download?)", again)
    if isinstance(err, ValueError) and ("mode" in str(err) or "conversion" in str(err)):
        return UnreadableFileError(label, f"is a {fmt} image in a colour mode dclip cannot turn into RGB ({err})",
                                   "Save it as an RGB PNG or JPEG file.")
    return UnreadableFileError(label, f"is a damaged {fmt} file: PIL cannot decode it ({type(err).__name__}: "
                                      f"{_without_buffer(err)})", again)


def _without_buffer(err: Exception) -> str:
    """PIL's message without the ``<_io.BytesIO object at 0x...>`` it names an in-memory file by."""
    text = str(err)
    return text.split(" <_io.")[0] if " <_io." in text else text


def load_image(path: str | os.PathLike, size: int | None = 256) -> torch.Tensor:
    """One image file as a (1, 3, size, size) tensor in [-1, 1] (read by :func:`read_image`, which raises
    :class:`~dclip.runtime.errors.UnreadableFileError` naming a broken file; centre crop and resize by
    :func:`to_tensor`)."""
    return to_tensor(read_image(path), size)


def load_each(loaders: Sequence[Callable[[], torch.Tensor]], size: int,
              prefix: str = "") -> tuple[torch.Tensor, list[int]]:
    """Call each loader (e.g. ``functools.partial(load_image, path, size)``) and keep what it reads; one that
    raises :class:`~dclip.runtime.errors.UnreadableFileError` is skipped with one warning line on stderr
    (``PREFIXwarning: skipped 'PATH': it ...``, :func:`dclip.runtime.errors.warn`).
    Returns the images read as one (N, 3, size, size) tensor (N may be 0) and their positions in ``loaders``."""
    images, kept = [], []
    for i, load in enumerate(loaders):
        try:
            images.append(load())
        except UnreadableFileError as err:
            warn(f"skipped '{err.path}': it {err.problem}.", prefix)
            continue
        kept.append(i)
    return (torch.cat(images) if images else torch.empty(0, 3, size, size)), kept


def no_readable_images(folder: str | os.PathLike, n: int) -> UnreadableFileError:
    """The error of a folder whose ``n`` image files were all skipped as unreadable."""
    return UnreadableFileError(folder, f"holds no image that can be read: all {n} image files were skipped "
                                       "(each is named in a warning above)",
                               "Replace the broken files, or point to another folder.")


def load_folder(folder: str | os.PathLike, size: int = 256, limit: int | None = None) -> torch.Tensor:
    """The images of a folder as one (N, 3, size, size) tensor: the first ``limit`` image files by name
    (:func:`image_files`: non-image files are skipped silently, by suffix).

    An image file that cannot be read (truncated, damaged, not an image) is skipped with one warning line
    on stderr, so N may be less than ``limit``. Raises
    :class:`~dclip.runtime.errors.UnreadableFileError` when none of them can be read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no image folder at '{folder}'. Point the notebook's image_dir at a folder "
                                "of images (e.g. CelebA-HQ test images), or leave it empty to use sample photos.")
    files = image_files(folder)[:limit]
    images, kept = load_each([functools.partial(load_image, p, size) for p in files], size)
    if not kept:
        raise no_readable_images(folder, len(files))
    return images


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a folder, sorted by name; an error if there are none.

    A file counts as an image by its suffix (:data:`IMAGE_SUFFIXES`, any case). Other files (notes, JSON,
    dclip's own temporary files) and hidden files (names starting with ".", such as macOS's ``._photo.jpg``)
    are skipped silently. Whether an image file can actually be read is only known when it is read
    (:func:`load_folder`, the command line: skipped with a warning).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no image folder at '{folder}'.")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
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
