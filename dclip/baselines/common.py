"""Small pieces shared by the GAN baselines (projector, StyleCLIP, StyleGAN-NADA)."""
from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..runtime.progress import progress_bar

__all__ = ["RAMPUP", "RAMPDOWN", "ramped_lr", "steps", "clip_view", "check_w_plus"]


#: The learning-rate ramp of rosinality's projector and StyleCLIP's ``run_optimization.py``: linear
#: warm-up over the first 5 % of the run, half-cosine decay over the last 25 %.
RAMPUP, RAMPDOWN = 0.05, 0.25


def ramped_lr(t: float, lr: float, rampup: float = RAMPUP, rampdown: float = RAMPDOWN) -> float:
    """The learning rate at progress ``t`` in [0, 1) of rosinality's projector and StyleCLIP.

    Linear warm-up over the first ``rampup`` of the run, flat, then a half-cosine decay to 0 over the
    last ``rampdown`` (:data:`RAMPUP` / :data:`RAMPDOWN` in both).
    At ``t = 0`` the rate is 0, so the first step leaves the parameters where they were.
    """
    down = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    up = min(1.0, t / rampup) if rampup > 0 else 1.0
    return lr * (0.5 - 0.5 * math.cos(down * math.pi)) * up


def steps(n: int, desc: str, progress: bool | None) -> Iterable[int]:
    """``range(n)``, with a tqdm.auto bar when ``progress`` (default: ``$DCLIP_PROGRESS == "1"``)."""
    return progress_bar(range(n), desc=desc, progress=progress)


def clip_view(x: Tensor, size: int) -> Tensor:
    """Generator images -> ``size`` px for CLIP by area averaging (bicubic when enlarging).

    StyleCLIP feeds CLIP ``avgpool(upsample_x7(image))`` with a ``size/32`` pool, i.e. 1024 px -> 224 px
    by averaging blocks of 32/7 px -- an area resize; adaptive average pooling computes nearly the same
    (whole-pixel bins) for any generator size.
    """
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if x.shape[-1] > size:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)


def check_w_plus(generator, w_plus: Tensor) -> Tensor:
    """``w_plus`` as float ``(N, n_latent, style_dim)`` on the generator's device (ValueError otherwise)."""
    shape = (generator.n_latent, generator.style_dim)
    if w_plus.ndim != 3 or tuple(w_plus.shape[1:]) != shape:
        raise ValueError(f"expected W+ codes of shape (N, {shape[0]}, {shape[1]}), got {tuple(w_plus.shape)}")
    return w_plus.detach().to(generator.input.input.device, torch.float32)
