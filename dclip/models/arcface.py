"""ArcFace IR-SE50: the identity network of the paper's face loss (eq. 11) and Table 3's ID.

The network is InsightFace's ``Backbone(input_size=112, num_layers=50, mode='ir_se')`` (TreB1eN's
PyTorch port, the one the DiffusionCLIP authors load from ``model_ir_se50.pth``): the IR-SE50 trunk
(:mod:`dclip.models.ir_se`) on 112 px faces, then BN2d(512), dropout, flatten, Linear(512·7·7 -> 512),
BN1d(512) and L2 normalisation.

:func:`arcface_embedding` feeds it exactly as the authors' ``IDLoss.extract_feats``: crop rows 35:223
and columns 32:220 of the 256 px aligned face (:data:`dclip.data.faces.FACE_BOX`, in relative units so
other sizes frame the same region), adaptive average pooling to 112 px, no other normalisation
(the network takes [-1, 1] input).
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.faces import face_box
from . import ir_se
from .weights import resolve_file

__all__ = ["ARCFACE_FILE", "ARCFACE_URL", "ARCFACE_NAME", "ARCFACE_SIZE", "ArcFace", "load_arcface",
           "arcface_embedding"]

#: TreB1eN's IR-SE50 weights, as pSp / e4e / DiffusionCLIP distribute them (their READMEs link this file).
ARCFACE_FILE = "model_ir_se50.pth"
ARCFACE_URL = "https://drive.google.com/file/d/1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn/view"

#: How tables name this network.
ARCFACE_NAME = "ArcFace IR-SE50"

#: The backbone's input side in pixels.
ARCFACE_SIZE = 112


class ArcFace(nn.Module):
    """InsightFace ``Backbone(112, 50, 'ir_se')``: (N, 3, 112, 112) in [-1, 1] -> unit (N, 512) embeddings.

    ``stages`` and ``embedding`` are IR-SE50's by default; smaller values give test-sized networks.
    Dropout (0.6 in the authors' code) only matters in training mode.
    """

    def __init__(self, stages=ir_se.STAGES_50, embedding: int = 512, input_size: int = ARCFACE_SIZE,
                 drop_ratio: float = 0.6):
        super().__init__()
        width, side = stages[-1][0], input_size // 2 ** len(stages)
        self.input_size = input_size
        self.input_layer = ir_se.input_layer(stages[0][0])
        self.output_layer = nn.Sequential(nn.BatchNorm2d(width), nn.Dropout(drop_ratio), nn.Flatten(),
                                          nn.Linear(width * side * side, embedding), nn.BatchNorm1d(embedding))
        self.body = ir_se.body(stages)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.output_layer(self.body(self.input_layer(x))), dim=1)


def load_arcface(path: str | os.PathLike | None = None, *, device: str | torch.device = "cpu") -> ArcFace:
    """ArcFace IR-SE50 from ``model_ir_se50.pth`` (a plain state dict), in eval mode and frozen.

    The file is found with :func:`dclip.models.weights.resolve_file`: ``path`` if given, else
    ``$DCLIP_WEIGHTS/model_ir_se50.pth``; it is never downloaded automatically.

    Raises:
        WeightsNotFoundError: no such file on this machine (the message says where it is published).
        ValueError: the file is unreadable or not an IR-SE50 state dict (names the missing / unexpected keys).
    """
    path = resolve_file(path, filename=ARCFACE_FILE, url=ARCFACE_URL, what=f"{ARCFACE_NAME} identity network")
    what = f"{ARCFACE_NAME} ('{path}')"
    state = ir_se.read_weights(path, what)
    with torch.device("meta"):
        model = ArcFace()
    model = ir_se.load_strict(model, state, what)
    return model.to(device).eval().requires_grad_(False)


def arcface_embedding(model: ArcFace, x: Tensor) -> Tensor:
    """Unit identity embeddings (N, 512) of aligned faces ``x`` in [-1, 1], as ``IDLoss.extract_feats``.

    Crop :func:`dclip.data.faces.face_box`, adaptive-average-pool to the network's input size, embed. Differentiable
    w.r.t. ``x``.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected aligned faces of shape (N, 3, H, W) in [-1, 1], got {tuple(x.shape)}")
    device = next(model.parameters()).device
    crop = F.adaptive_avg_pool2d(face_box(x.to(device, torch.float32)), model.input_size)
    return model(crop)
