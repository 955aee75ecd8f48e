"""The live editor's edit in two steps, in one place so that a saved edit is redone exactly
(:mod:`dclip.editor.saved_edit`, ``python -m dclip edit --from-png``).

* :func:`invert_image`: x_t0 of an image under the original model (deterministic DDIM inversion, S_inv steps);
* :func:`generate_mix`: generation from x_t0 with the noise mix ε = (1 − r)·ε_original + r·Σ_i γ_i ε_i
  (the degree of change of Sec. 3.2 and eq. 14 with constant γ), S_gen steps.

:func:`quantised` puts an image on the 8-bit grid a PNG file holds, so that the image an edit starts from is the
one its saved input file reads back as.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..method.accelerated import generate_fast, invert_fast
from ..method.mixing import noise_mix
from ..runtime.fast import EDITING, RECONSTRUCTION, FastPath

__all__ = ["invert_image", "generate_mix", "quantised"]


def quantised(x: torch.Tensor) -> torch.Tensor:
    """``x`` (in [-1, 1]) rounded to 8 bits per channel: exactly what saving it as a PNG and reading it back gives
    (:func:`dclip.data.images.to_pil` then :func:`~dclip.data.images.to_tensor`)."""
    levels = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return levels / 127.5 - 1.0


def invert_image(original: torch.nn.Module, x: torch.Tensor, t0: int, n_inv: int) -> torch.Tensor:
    """x_t0 of ``x`` ((1, 3, H, W) in [-1, 1]) under ``original``, ``n_inv`` DDIM inversion steps (fp32)."""
    return invert_fast(original, x, int(t0), int(n_inv), fast=RECONSTRUCTION)


def generate_mix(original: torch.nn.Module, models: Sequence[torch.nn.Module], x_lat: torch.Tensor, t0: int,
                 n_gen: int, ratio: float, gammas: Sequence[float], *, fast: FastPath | str | None = EDITING
                 ) -> torch.Tensor:
    """The edited image from ``x_lat``: ``n_gen`` DDIM steps with the mix of ``original`` and ``models`` by the
    degree of change ``ratio`` and the weights ``gammas`` (one per model; the reconstruction without models).
    ``fast``: the fast path of the generation (:mod:`dclip.runtime.fast`; a saved edit records the mode it ran in)."""
    mix = noise_mix(original, list(models), ratio=float(ratio), gammas=[float(g) for g in gammas])
    with torch.no_grad():
        return generate_fast(mix, x_lat, int(t0), int(n_gen), fast=fast)
