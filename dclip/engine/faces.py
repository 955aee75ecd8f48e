"""Face alignment (FFHQ framing) and the face-identity part of DiffusionCLIP's identity loss (eq. 11).

* Alignment: the CelebA-HQ diffusion model expects faces framed the way the FFHQ dataset script
  frames them (the authors' ``utils/align_utils.py``, which feeds it dlib's 68 landmarks). Here the
  same geometry is computed from MTCNN's five landmarks (facenet-pytorch, weights shipped inside
  its wheel): the eye centres are MTCNN's two eye points and the mouth centre is the mean of its
  two mouth corners -- exactly the three quantities the FFHQ rule uses.
* Identity: the paper's L_face is an ArcFace identity loss (Deng et al., 2019): 1 - cosine of the
  embeddings of a fixed face box of the aligned 256 px image. Two networks fill that role:
  ArcFace IR-SE50 (:mod:`dclip.engine.arcface`, ``model_ir_se50.pth``, the authors' network) and
  facenet-pytorch's InceptionResnetV1 trained on VGGFace2 (weights that are easier to obtain).
  :func:`load_identity_model` picks ArcFace when its file is on the machine; every identity
  function takes either network.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .weights import resolve_library_file

__all__ = [
    "NoFaceError", "VGGFACE2_FILE", "VGGFACE2_URL", "FACE_BOX", "detect_landmarks", "ffhq_quad",
    "align_face", "vggface2_file", "load_face_model", "face_box", "face_embedding", "identity_loss",
    "identity_similarity", "FACENET_NAME", "identity_name", "load_identity_model",
]

#: facenet-pytorch's VGGFace2 InceptionResnetV1 weights (the URL facenet-pytorch itself uses).
VGGFACE2_FILE = "20180402-114759-vggface2.pt"
VGGFACE2_URL = f"https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/{VGGFACE2_FILE}"

#: Face box of an aligned image as fractions (top, bottom, left, right) of its size. It is the
#: authors' ID-loss crop ``x[:, :, 35:223, 32:220]`` of a 256 px image (a 188 px square around
#: eyes, nose and mouth), kept in relative units so other sizes get the same framing. On aligned
#: 256 px faces MTCNN's own margin-free box is about x 58-192, y 57-230 (grace_hopper, astronaut),
#: so this box adds ~26 px at the sides and forehead, like facenet's usual crop margin, and trims
#: ~5 px of chin.
FACE_BOX = (35 / 256, 223 / 256, 32 / 256, 220 / 256)

_FACENET_SIZE = 160  # InceptionResnetV1's input size

#: How tables name the facenet network.
FACENET_NAME = "facenet VGGFace2"


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


# ----------------------------------------------------------------------------------------------
# Identity
# ----------------------------------------------------------------------------------------------

def _facenet_download(url: str, dest: Path) -> None:
    """facenet-pytorch's own download (``InceptionResnetV1(pretrained="vggface2")`` fetches the same way)."""
    from facenet_pytorch.models.utils.download import download_url_to_file

    from .progress import progress_enabled

    download_url_to_file(url, str(dest), progress=progress_enabled(None))


def vggface2_file(weights: str | os.PathLike | None = None) -> Path:
    """The VGGFace2 file: ``weights``, ``$DCLIP_WEIGHTS``, facenet-pytorch's cache
    (``$TORCH_HOME/checkpoints``, where ``InceptionResnetV1(pretrained="vggface2")`` keeps it), else
    downloaded there with facenet-pytorch's downloader when GitHub answers."""
    from facenet_pytorch.models.inception_resnet_v1 import get_torch_home

    return resolve_library_file(weights, filename=VGGFACE2_FILE, url=VGGFACE2_URL,
                                library_cache=Path(get_torch_home()) / "checkpoints" / VGGFACE2_FILE,
                                download=_facenet_download, what="face identity model (VGGFace2)")


def load_face_model(device: str | torch.device = "cpu", weights: str | os.PathLike | None = None,
                    pretrained: bool = True) -> torch.nn.Module:
    """facenet-pytorch InceptionResnetV1 (VGGFace2), eval mode, frozen; 512-d unit embeddings.

    The weight file ``20180402-114759-vggface2.pt`` is found with :func:`vggface2_file`: the
    ``weights`` path, ``$DCLIP_WEIGHTS``, facenet-pytorch's own cache ``$TORCH_HOME/checkpoints``,
    else downloaded there by facenet-pytorch's downloader. It is read with ``weights_only=True``.
    ``pretrained=False`` gives random weights (tests).

    Raises:
        WeightsNotFoundError: pretrained weights requested, the file is not on this machine and
            its host cannot be reached.
    """
    from facenet_pytorch import InceptionResnetV1

    path = vggface2_file(weights) if pretrained else None  # a missing file fails before any work
    model = InceptionResnetV1(pretrained=None, classify=False)
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        # The file also holds the 8631-way VGGFace2 classifier ("logits.*"), unused for embeddings.
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")})
    model.to(device).eval().requires_grad_(False)
    return model


def face_box(x: torch.Tensor) -> torch.Tensor:
    """The :data:`FACE_BOX` region of aligned faces (rows 35:223, columns 32:220 at 256 px)."""
    height, width = x.shape[-2:]
    top, bottom = round(FACE_BOX[0] * height), round(FACE_BOX[1] * height)
    left, right = round(FACE_BOX[2] * width), round(FACE_BOX[3] * width)
    return x[..., top:bottom, left:right]


def identity_name(face_model: torch.nn.Module) -> str:
    """The network's name for table columns: ``ArcFace IR-SE50`` or ``facenet VGGFace2``."""
    from .arcface import ARCFACE_NAME, ArcFace

    return ARCFACE_NAME if isinstance(face_model, ArcFace) else FACENET_NAME


def load_identity_model(device: str | torch.device = "cpu") -> tuple[torch.nn.Module, str]:
    """The identity network for the paper's ID numbers: ``(model, note)``.

    ArcFace IR-SE50 (:func:`dclip.engine.arcface.load_arcface`, the paper's network) when
    ``model_ir_se50.pth`` is on this machine, with ``note == ""``; otherwise facenet's VGGFace2
    model (:func:`load_face_model`) and a note saying so and how to get ArcFace.

    Raises:
        WeightsNotFoundError: neither file is on this machine (the message names both).
    """
    from .arcface import ARCFACE_FILE, ARCFACE_NAME, load_arcface
    from .weights import WeightsNotFoundError

    try:
        return load_arcface(device=device), ""
    except WeightsNotFoundError as arcface_missing:
        try:
            model = load_face_model(device)
        except WeightsNotFoundError as facenet_missing:
            raise WeightsNotFoundError(f"no identity network on this machine:\n\n{arcface_missing}\n\n"
                                       f"{facenet_missing}") from None
    return model, (f"identity (ID) is measured with {FACENET_NAME}, not the paper's {ARCFACE_NAME}: "
                   f"'{ARCFACE_FILE}' is not in the weights folder (see dclip.engine.arcface.load_arcface); its "
                   "similarities are on another scale than the paper's.")


def _face_crop(x: torch.Tensor) -> torch.Tensor:
    """The :data:`FACE_BOX` region of aligned images, resized to 160 px (bilinear, antialiased)."""
    return F.interpolate(face_box(x), size=(_FACENET_SIZE, _FACENET_SIZE), mode="bilinear",
                         align_corners=False, antialias=True)


def face_embedding(face_model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Unit identity embeddings (N, 512) of aligned faces ``x`` in [-1, 1], (N, 3, H, W).

    With an :class:`dclip.engine.arcface.ArcFace` model: :func:`dclip.engine.arcface.arcface_embedding` (the
    authors' crop and pooling). With facenet: crops :data:`FACE_BOX`, resizes to 160 px, applies
    facenet's fixed standardisation ((v - 127.5) / 128 on 0..255 values, i.e. ``x * 127.5 / 128``),
    embeds and L2-normalises.
    Differentiable w.r.t. ``x``.
    """
    from .arcface import ArcFace, arcface_embedding

    if isinstance(face_model, ArcFace):
        return arcface_embedding(face_model, x)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected aligned faces of shape (N, 3, H, W) in [-1, 1], got {tuple(x.shape)}")
    device = next(face_model.parameters()).device
    crop = _face_crop(x.to(device, torch.float32)) * (127.5 / 128.0)
    return F.normalize(face_model(crop), dim=-1)


def identity_loss(face_model: torch.nn.Module, x0: torch.Tensor, x: torch.Tensor,
                  lambda_l1: float = 0.3, lambda_face: float = 0.1) -> torch.Tensor:
    """Eq. (11): lambda_L1 * mean|x0 - x| + lambda_face * (1 - cos(emb(x0), emb(x))), shape (N,).

    ``x0`` is the reference (its embedding is not differentiated, as in the authors' ID loss);
    gradients flow to ``x``. Defaults are the paper's weights (0.3 and 0.1). With
    ``lambda_face=0`` the face model is not run, with ``lambda_l1=0`` no L1 is computed.
    """
    loss = 0.0
    if lambda_l1 != 0:
        loss = lambda_l1 * (x0.to(x) - x).abs().flatten(1).mean(dim=1)
    if lambda_face != 0:
        with torch.no_grad():
            reference = face_embedding(face_model, x0)
        face = 1.0 - (face_embedding(face_model, x) * reference).sum(dim=-1)
        loss = loss + lambda_face * face.to(x.device)
    if isinstance(loss, float):  # both weights 0
        return torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
    return loss


@torch.no_grad()
def identity_similarity(face_model: torch.nn.Module, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
    """Identity metric: cosine of the embeddings of two batches of aligned faces, shape (N,)."""
    return (face_embedding(face_model, x_a) * face_embedding(face_model, x_b)).sum(dim=-1)
