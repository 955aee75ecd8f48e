"""The paper's evaluation metrics, one value per image pair.

* Reconstruction (Table 1): :func:`mae`, :func:`ssim` (torchmetrics) and :func:`lpips_distance`
  (the ``lpips`` package with its AlexNet trunk, as in the paper). MAE and SSIM are taken on images
  mapped to [0, 1]; LPIPS takes them in [-1, 1], its own convention.
* Manipulation (Table 3, Fig. 9): :func:`directional_similarity` S_dir = cos(ΔI, ΔT) in CLIP space
  and :func:`identity_similarity`, the cosine of face-recognition embeddings.
* Intervals: :func:`bootstrap_interval`, the 95 % percentile bootstrap of a mean over images (and over
  independent fine-tunes), which every table's ``[lo, hi]`` columns carry.

Every function takes two batches of the same shape, (N, 3, H, W) in [-1, 1], and returns a tensor
of shape (N,). Nothing here downloads: LPIPS' AlexNet weights come from
:func:`dclip.models.weights.resolve_file`, or a seeded random trunk is used (``pretrained=False``).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..models.lpips import BACKBONES

__all__ = ["ALEXNET_FILE", "ALEXNET_URL", "mae", "ssim", "load_lpips", "lpips_distance",
           "directional_similarity", "identity_similarity", "reconstruction_scores", "bootstrap_interval"]

#: torchvision's ImageNet AlexNet, the trunk LPIPS builds on (torchvision would download it).
ALEXNET_FILE, ALEXNET_URL = BACKBONES["alex"]


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"expected two image batches of the same shape (N, 3, H, W); got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}.")
    return a.detach().float(), b.detach().float().to(a.device)


def mae(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image on the [0, 1] scale (Table 1's MAE)."""
    a, b = _pair(a, b)
    return ((a - b).abs() / 2).flatten(1).mean(dim=1)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM per image on the [0, 1] scale (torchmetrics, 11-px Gaussian window; Table 1's SSIM)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b = _pair(a, b)
    to01 = lambda x: ((x + 1) / 2).clamp(0, 1)  # noqa: E731
    return structural_similarity_index_measure(to01(a), to01(b), data_range=1.0, reduction="none")


def load_lpips(pretrained: bool = True, *, weights: str | Path | None = None, device: str | torch.device = "cpu",
               seed: int = 0) -> torch.nn.Module:
    """LPIPS with the AlexNet trunk (v0.1, linear layers shipped in the ``lpips`` wheel), as in Table 1.

    ``pretrained=True`` loads the ImageNet AlexNet from ``weights``, the dclip weights folder
    (``$DCLIP_WEIGHTS``) or torch hub's cache and raises :class:`dclip.WeightsNotFoundError` when it
    is on none of them (see :func:`dclip.models.lpips.load_lpips`). ``pretrained=False`` uses a random
    trunk drawn from ``seed`` (smoke profile, tests): still 0 for identical images, otherwise meaningless.
    """
    from ..models.lpips import load_lpips as build

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build("alex", pretrained=pretrained, weights=weights, device=device)


@torch.no_grad()
def lpips_distance(model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS distance per image (inputs in [-1, 1], LPIPS' own convention)."""
    a, b = _pair(a, b)
    device = next(model.parameters()).device
    return model(a.to(device), b.to(device)).flatten().cpu()


def directional_similarity(clip, originals: torch.Tensor, edited: torch.Tensor, source: str, target: str
                           ) -> torch.Tensor:
    """S_dir = cos(E_I(edited) − E_I(original), E_T(target) − E_T(source)) per image (Table 3, Fig. 9)."""
    from .losses import directional_similarity as s_dir

    a, b = _pair(originals, edited)
    return s_dir(clip, a, b, source, target).cpu()


def identity_similarity(face_model: torch.nn.Module, originals: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
    """Identity similarity per image: cosine of the face embeddings (Table 3's ID)."""
    from ..models.identity import identity_similarity as id_sim

    a, b = _pair(originals, edited)
    return id_sim(face_model, a, b).cpu()


def reconstruction_scores(lpips_model, originals: torch.Tensor, reconstructions: torch.Tensor) -> dict[str, float]:
    """Mean MAE, LPIPS and SSIM over a batch (one row of Table 1)."""
    return {"mae": float(mae(originals, reconstructions).mean()),
            "lpips": float(lpips_distance(lpips_model, originals, reconstructions).mean()),
            "ssim": float(ssim(originals, reconstructions).mean())}


def bootstrap_interval(values, *, level: float = 0.95, n_boot: int = 4000, seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of ``values``.

    ``values`` is 1-D (one value per image) or 2-D (one row per independent run, e.g. a fine-tune, one
    column per image, the same images in every row). In 2-D both are resampled, rows and columns
    independently (a two-way bootstrap), so the interval covers the spread between runs as well as
    between images. NaNs (an image a run could not score) are left out of each mean. ``scipy.stats.bootstrap``
    resamples one axis only, hence this function.
    """
    import warnings

    import numpy as np

    data = np.asarray(values, dtype=float)
    if data.ndim == 1:
        data = data[None]
    if data.ndim != 2 or data.size == 0:
        raise ValueError(f"expected a non-empty 1-D or 2-D array of values; got shape {data.shape}.")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, data.shape[0], size=(n_boot, data.shape[0]))
    cols = rng.integers(0, data.shape[1], size=(n_boot, data.shape[1]))
    with warnings.catch_warnings():  # a resample of NaNs only has no mean: it is left out below
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.array([np.nanmean(data[r][:, c]) for r, c in zip(rows, cols)])
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(means, [tail, 100 - tail])
    return float(lo), float(hi)
