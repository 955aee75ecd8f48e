"""LPIPS (Zhang et al., 2018) with its ImageNet backbone found or downloaded the way torchvision does.

The ``lpips`` package ships its small linear calibration layers (``weights/v0.1/alex.pth``) in its
wheel, and builds its backbone with torchvision, which downloads the ImageNet weights
(``alexnet-owt-7be5be79.pth``, or ``vgg16-397923af.pth`` for ``net="vgg"``) into torch hub's
cache, ``$TORCH_HOME/hub/checkpoints``. Here the backbone is built with random weights and the file
is found with :func:`dclip.models.weights.resolve_library_file`: an explicit path, ``$DCLIP_WEIGHTS``, torch
hub's cache, else downloaded into that cache with torch hub's own downloader (SHA-256 prefix checked,
as torchvision does) when the host answers -- offline, a :class:`~dclip.models.weights.WeightsNotFoundError`
at once. It is read with ``weights_only=True``. ``pretrained=False`` keeps the random backbone.

:func:`perceptual_distance` wraps a model as the per-image callable the projector takes.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from .folder import read_torch_file
from .weights import resolve_library_file

__all__ = ["BACKBONES", "load_lpips", "perceptual_distance", "PerceptualFn"]

#: net name -> (torchvision ImageNet file, its download address): what lpips' backbones load.
BACKBONES = {
    "alex": ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
}

#: ``f(x, y) -> (N,)`` distances between two image batches in [-1, 1].
PerceptualFn = Callable[[Tensor, Tensor], Tensor]


def _torch_hub_download(url: str, dest: Path) -> None:
    """torchvision's download: ``torch.hub.load_state_dict_from_url`` into ``dest``'s folder, hash checked."""
    from ..runtime.progress import progress_enabled

    torch.hub.load_state_dict_from_url(url, model_dir=str(dest.parent), map_location="cpu",
                                       progress=progress_enabled(None), check_hash=True, file_name=dest.name,
                                       weights_only=True)


def _backbone_file(net: str, weights) -> Path:
    """The ImageNet backbone file: ``weights``, ``$DCLIP_WEIGHTS``, torch hub's checkpoint cache, else
    downloaded there (when the host answers)."""
    filename, url = BACKBONES[net]
    return resolve_library_file(weights, filename=filename, url=url,
                                library_cache=Path(torch.hub.get_dir()) / "checkpoints" / filename,
                                download=_torch_hub_download, what=f"LPIPS {net} backbone (ImageNet)")


def _load_backbone(model, net: str, path: Path) -> None:
    """Copy torchvision ``features.<i>.*`` weights into lpips' slices (which keep the indices as names)."""
    state = read_torch_file(path, f"torchvision {net} checkpoint")
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    target = {}
    for slice_name, block in model.net.named_children():
        for name, _ in block.named_parameters():
            target[f"{slice_name}.{name}"] = features.get(name)
    missing = [k for k, v in target.items() if v is None]
    if missing:
        raise ValueError(f"'{path}' is not a torchvision {net} checkpoint: no weights for {missing[:4]}")
    model.net.load_state_dict(target, strict=True)


def load_lpips(net: str = "alex", *, pretrained: bool = True, weights: str | os.PathLike | None = None,
               device: str | torch.device = "cpu"):
    """A frozen ``lpips.LPIPS`` model (eval mode, no gradients to its parameters).

    Args:
        net: ``"alex"`` (the usual LPIPS metric) or ``"vgg"`` (rosinality's projector uses VGG).
        pretrained: load the ImageNet backbone; ``False`` keeps it random (the linear layers,
            shipped inside the ``lpips`` wheel, are always the calibrated ones).
        weights: the backbone file, if not in ``$DCLIP_WEIGHTS`` or torch hub's cache (where it is
            otherwise downloaded).
        device: where the model lives.

    Raises:
        WeightsNotFoundError: ``pretrained``, the backbone file is nowhere on this machine and its
            host cannot be reached.
    """
    if net not in BACKBONES:
        raise ValueError(f"LPIPS net must be one of {sorted(BACKBONES)}, got '{net}'")
    path = _backbone_file(net, weights) if pretrained else None  # fail before building anything
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated" notice
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    if path is not None:
        _load_backbone(model, net, path)
    return model.to(device).eval().requires_grad_(False)


def perceptual_distance(model) -> PerceptualFn:
    """``f(x, y) -> (N,)``: LPIPS of each image pair (inputs in [-1, 1], differentiable)."""
    def distance(x: Tensor, y: Tensor) -> Tensor:
        return model(x, y, normalize=False).flatten()

    return distance
