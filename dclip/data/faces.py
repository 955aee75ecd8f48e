"""Face alignment: photos framed the way the FFHQ dataset script frames them.

The CelebA-HQ diffusion model expects faces framed the way the FFHQ dataset script frames them
(the authors' ``utils/align_utils.py``, which feeds it dlib's 68 landmarks). Here the same geometry
is computed from MTCNN's five landmarks (facenet-pytorch, weights shipped inside its wheel): the eye
centres are MTCNN's two eye points and the mouth centre is the mean of its two mouth corners --
exactly the three quantities the FFHQ rule uses.

The identity networks that embed these aligned faces are in :mod:`dclip.models.identity`; the identity
loss (eq. 11) is :func:`dclip.method.losses.identity_loss`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from PIL import Image

__all__ = ["NoFaceError", "detect_landmarks", "ffhq_quad", "align_face", "photo_to_tensor", "FACE_BOX", "face_box"]


class NoFaceError(ValueError):
    """No face was found in an image."""


# ----------------------------------------------------------------------------------------------
# Landmarks
# ----------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _mtcnn():
    from facenet_pytorch import MTCNN

    # select_largest=False: faces come back sorted by detection probability.
    return MTCNN(select_largest=False, keep_all=True, device="cpu")


def detect_landmarks(image: Image.Image) -> np.ndarray:
    """MTCNN's five landmarks of the most confident face, shape (5, 2) as (x, y) pixels.

    Order: left eye, right eye, nose, left mouth corner, right mouth corner ("left" = image left).

    Raises:
        NoFaceError: MTCNN finds no face in the image.
    """
    boxes, probs, points = _mtcnn().detect(image.convert("RGB"), landmarks=True)
    if boxes is None or len(boxes) == 0:
        raise NoFaceError(
            f"no face found in the {image.width}x{image.height} image (MTCNN). Use a photo with a "
            f"clearly visible, roughly frontal face, or pass an already aligned face image.")
    best = int(np.argmax(np.asarray(probs, dtype=np.float64)))
    return np.asarray(points[best], dtype=np.float64)


def _eyes_and_mouth(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left eye centre, right eye centre, mouth centre) from 5 MTCNN or 68 dlib landmarks."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape == (5, 2):
        return lm[0], lm[1], (lm[3] + lm[4]) / 2
    if lm.shape == (68, 2):  # dlib: eye contours 36-41 / 42-47, outer mouth corners 48 and 54
        return lm[36:42].mean(0), lm[42:48].mean(0), (lm[48] + lm[54]) / 2
    raise ValueError(f"expected 5 (MTCNN) or 68 (dlib) landmarks of shape (K, 2), got {lm.shape}")


# ----------------------------------------------------------------------------------------------
# FFHQ alignment
# ----------------------------------------------------------------------------------------------

def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ oriented crop square, shape (4, 2): top-left, bottom-left, bottom-right, top-right.

    Its half side is max(2 |eye-to-eye|, 1.8 |eye-to-mouth|); its x axis is the eye-to-eye vector
    blended with the eye-to-mouth vector turned by 90 degrees; its centre sits 10 % of the way
    from the eye midpoint to the mouth centre.
    """
    eye_left, eye_right, mouth = _eyes_and_mouth(landmarks)
    eye_mid = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = mouth - eye_mid
    axis_x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    axis_x *= max(2.0 * np.hypot(*eye_to_eye), 1.8 * np.hypot(*eye_to_mouth)) / np.hypot(*axis_x)
    axis_y = np.array([-axis_x[1], axis_x[0]])
    centre = eye_mid + 0.1 * eye_to_mouth
    return np.stack([centre - axis_x - axis_y, centre - axis_x + axis_y,
                     centre + axis_x + axis_y, centre + axis_x - axis_y])


def _shrink(img: Image.Image, quad: np.ndarray, out_size: int):
    """Downscale by an integer factor while the quad stays >= 2x the output size."""
    factor = int(np.floor(np.hypot(*(quad[3] - quad[0])) / out_size * 0.5))
    if factor <= 1:
        return img, quad
    new_size = (int(np.rint(img.width / factor)), int(np.rint(img.height / factor)))
    return img.resize(new_size, Image.LANCZOS), quad / factor


def _crop(img: Image.Image, quad: np.ndarray, border: int):
    """Crop to the quad's bounding box plus ``border`` (clipped to the image)."""
    low, high = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    box = (max(low[0] - border, 0), max(low[1] - border, 0),
           min(high[0] + border, img.width), min(high[1] + border, img.height))
    if box[2] - box[0] < img.width or box[3] - box[1] < img.height:
        img, quad = img.crop(box), quad - np.array(box[:2])
    return img, quad


def _pad(img: Image.Image, quad: np.ndarray, border: int, qsize: float):
    """Where the quad leaves the image: reflect-pad, blur and fade the padding to the median colour."""
    from scipy.ndimage import gaussian_filter

    low, high = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    pad = np.array([max(border - low[0], 0), max(border - low[1], 0),
                    max(high[0] - img.width + border, 0), max(high[1] - img.height + border, 0)])
    if pad.max() <= border - 4:
        return img, quad
    pad = np.maximum(pad, max(int(np.rint(qsize * 0.3)), 1))
    arr = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
    height, width, _ = arr.shape
    yy, xx = np.ogrid[:height, :width]
    edge = np.maximum(1.0 - np.minimum(xx / pad[0], (width - 1 - xx) / pad[2]),
                      1.0 - np.minimum(yy / pad[1], (height - 1 - yy) / pad[3]))[..., None]
    blur = qsize * 0.02
    arr += (gaussian_filter(arr, [blur, blur, 0]) - arr) * np.clip(edge * 3.0 + 1.0, 0.0, 1.0)
    arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(edge, 0.0, 1.0)
    img = Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")
    return img, quad + pad[:2]


def align_face(image: Image.Image, size: int = 256, landmarks: np.ndarray | None = None,
               transform_size: int | None = None) -> Image.Image:
    """FFHQ-style aligned ``size`` x ``size`` RGB face crop (the CelebA-HQ model's framing).

    Args:
        image: any photo with a face.
        size: output side in pixels.
        landmarks: 5 MTCNN or 68 dlib points; detected with :func:`detect_landmarks` when omitted.
        transform_size: side of the quad resampling before the final resize; defaults to ``size``
            as in the authors' script (the FFHQ script itself used 4096 for 1024 px).

    Raises:
        NoFaceError: no landmarks given and no face found.
    """
    img = image.convert("RGB")
    quad = ffhq_quad(detect_landmarks(img) if landmarks is None else landmarks)
    transform_size = transform_size or size
    img, quad = _shrink(img, quad, size)
    qsize = float(np.hypot(*(quad[3] - quad[0])))
    border = max(int(np.rint(qsize * 0.1)), 3)
    img, quad = _crop(img, quad, border)
    img, quad = _pad(img, quad, border, qsize)
    # quad is in pixel-index coordinates; PIL samples at pixel centres, hence +0.5.
    img = img.transform((transform_size, transform_size), Image.QUAD, (quad + 0.5).flatten(),
                        Image.BILINEAR)
    if size < transform_size:
        img = img.resize((size, size), Image.LANCZOS)
    return img


def photo_to_tensor(photo: Image.Image, size: int = 256, *, align: bool = True, landmarks: np.ndarray | None = None,
                    crop_without_face: bool = False) -> tuple[torch.Tensor, str]:
    """A photo as the (1, 3, size, size) tensor in [-1, 1] a model takes -- the one rule for every entry point.

    ``align``: FFHQ-aligned with MTCNN (:func:`align_face`; the CelebA-HQ framing), else centre-cropped
    (:func:`dclip.data.images.to_tensor`). A photo without a face raises :class:`NoFaceError`, or
    with ``crop_without_face`` is centre-cropped instead. Returns (tensor, how it was framed:
    ``"face aligned"``, ``"centre-cropped"`` or ``"no face found; centre-cropped"``).
    """
    from .images import to_tensor

    how = "centre-cropped"
    if align:
        try:
            photo, how = align_face(photo, size, landmarks=landmarks), "face aligned"
        except NoFaceError:
            if not crop_without_face:
                raise
            how = "no face found; centre-cropped"
    return to_tensor(photo, size), how


#: Face box of an aligned image as fractions (top, bottom, left, right) of its size. It is the
#: authors' ID-loss crop ``x[:, :, 35:223, 32:220]`` of a 256 px image (a 188 px square around
#: eyes, nose and mouth), kept in relative units so other sizes get the same framing. On aligned
#: 256 px faces MTCNN's own margin-free box is about x 58-192, y 57-230 (grace_hopper, astronaut),
#: so this box adds ~26 px at the sides and forehead, like facenet's usual crop margin, and trims
#: ~5 px of chin.
FACE_BOX = (35 / 256, 223 / 256, 32 / 256, 220 / 256)


def face_box(x: torch.Tensor) -> torch.Tensor:
    """The :data:`FACE_BOX` region of aligned faces (rows 35:223, columns 32:220 at 256 px)."""
    height, width = x.shape[-2:]
    top, bottom = round(FACE_BOX[0] * height), round(FACE_BOX[1] * height)
    left, right = round(FACE_BOX[2] * width), round(FACE_BOX[3] * width)
    return x[..., top:bottom, left:right]
