"""The face-identity networks of DiffusionCLIP's identity loss (eq. 11, :func:`dclip.method.losses.identity_loss`),
on aligned faces.

The paper's L_face is an ArcFace identity loss (Deng et al., 2019): 1 - cosine of the embeddings of
a fixed face box of the aligned 256 px image (:mod:`dclip.data.faces` aligns photos). Two networks
fill that role: ArcFace IR-SE50 (:mod:`dclip.models.arcface`, ``model_ir_se50.pth``, the authors'
network) and facenet-pytorch's InceptionResnetV1 trained on VGGFace2 (weights that are easier to
obtain). :func:`load_identity_model` picks ArcFace when its file is on the machine; every identity
function takes either network.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.faces import face_box
from .folder import read_torch_file
from .weights import resolve_library_file

__all__ = [
    "VGGFACE2_FILE", "VGGFACE2_URL", "FACENET_NAME", "vggface2_file", "load_face_model",
    "face_embedding", "identity_similarity", "identity_name", "load_identity_model",
]

#: facenet-pytorch's VGGFace2 InceptionResnetV1 weights (the URL facenet-pytorch itself uses).
VGGFACE2_FILE = "20180402-114759-vggface2.pt"
VGGFACE2_URL = f"https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/{VGGFACE2_FILE}"

_FACENET_SIZE = 160  # InceptionResnetV1's input size

#: How tables name the facenet network.
FACENET_NAME = "facenet VGGFace2"



def _facenet_download(url: str, dest: Path) -> None:
    """facenet-pytorch's own download (``InceptionResnetV1(pretrained="vggface2")`` fetches the same way)."""
    from facenet_pytorch.models.utils.download import download_url_to_file

    from ..runtime.progress import progress_enabled

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
        state = read_torch_file(path, "facenet VGGFace2 weight file")
        # The file also holds the 8631-way VGGFace2 classifier ("logits.*"), unused for embeddings.
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")})
    model.to(device).eval().requires_grad_(False)
    return model


def identity_name(face_model: torch.nn.Module) -> str:
    """The network's name for table columns: ``ArcFace IR-SE50`` or ``facenet VGGFace2``."""
    from .arcface import ARCFACE_NAME, ArcFace

    return ARCFACE_NAME if isinstance(face_model, ArcFace) else FACENET_NAME


def load_identity_model(device: str | torch.device = "cpu") -> tuple[torch.nn.Module, str]:
    """The identity network for the paper's ID numbers: ``(model, note)``.

    ArcFace IR-SE50 (:func:`dclip.models.arcface.load_arcface`, the paper's network) when
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
                   f"'{ARCFACE_FILE}' is not in the weights folder (see dclip.models.arcface.load_arcface); its "
                   "similarities are on another scale than the paper's.")


def _face_crop(x: torch.Tensor) -> torch.Tensor:
    """The :data:`dclip.data.faces.FACE_BOX` region of aligned images, resized to 160 px (bilinear, antialiased)."""
    return F.interpolate(face_box(x), size=(_FACENET_SIZE, _FACENET_SIZE), mode="bilinear",
                         align_corners=False, antialias=True)


def face_embedding(face_model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Unit identity embeddings (N, 512) of aligned faces ``x`` in [-1, 1], (N, 3, H, W).

    With an :class:`dclip.models.arcface.ArcFace` model: :func:`dclip.models.arcface.arcface_embedding` (the
    authors' crop and pooling). With facenet: crops :data:`dclip.data.faces.FACE_BOX`, resizes to 160 px, applies
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


@torch.no_grad()
def identity_similarity(face_model: torch.nn.Module, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
    """Identity metric: cosine of the embeddings of two batches of aligned faces, shape (N,)."""
    return (face_embedding(face_model, x_a) * face_embedding(face_model, x_b)).sum(dim=-1)
