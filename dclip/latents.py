"""Precomputing the training latents: DDIM inversion of each image to t0, and its reconstruction.

Fine-tuning (Sec. 3) starts every update from an image's latent x_{t0}; inverting the training set
once, before training, is the paper's speed trick. The S_inv-step reconstruction is kept as well
(it shows how faithful the inversion is and is the "reconstruction" column of the figures).

Results are cached on disk under a key derived from the model's weights, the images, t0, S_inv and
the inversion variant, so a cache is never reused for another model or image set.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import atomic_write
from .ddim import generate, invert

__all__ = ["Latents", "precompute", "cache_key", "fingerprint"]

_CACHE_VERSION = "1"


@dataclass
class Latents:
    """Images ``x0``, their latents ``x_lat`` at ``t0`` and reconstructions ``x_rec`` (CPU tensors)."""

    x0: torch.Tensor
    x_lat: torch.Tensor
    x_rec: torch.Tensor
    t0: int
    steps: int

    def __len__(self) -> int:
        return self.x0.shape[0]

    def to_dict(self) -> dict:
        return {"x0": self.x0, "x_lat": self.x_lat, "x_rec": self.x_rec,
                "t0": torch.tensor(self.t0), "steps": torch.tensor(self.steps)}

    @classmethod
    def from_dict(cls, d: dict) -> "Latents":
        return cls(d["x0"], d["x_lat"], d["x_rec"], int(d["t0"]), int(d["steps"]))


def fingerprint(tensors) -> str:
    """A short hash of tensors' dtypes, shapes and bytes (a model's state dict or an image batch)."""
    h = hashlib.blake2b(digest_size=16)
    items = tensors.items() if isinstance(tensors, dict) else enumerate(tensors)
    for name, t in items:
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cache_key(model, images: torch.Tensor, t0: int, steps: int, exact: bool = False) -> str:
    """The cache key: model weights, images, t0, S_inv and the inversion variant."""
    weights = fingerprint(model.state_dict()) if hasattr(model, "state_dict") else repr(model)
    parts = [_CACHE_VERSION, weights, fingerprint([images]), str(int(t0)), str(int(steps)), str(bool(exact))]
    return hashlib.blake2b("|".join(parts).encode(), digest_size=12).hexdigest()


def _device_of(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def _compute(model, images, t0, steps, batch_size, exact, progress) -> Latents:
    device = _device_of(model)
    lats, recs = [], []
    for batch in images.split(batch_size):
        x0 = batch.to(device)
        x_lat = invert(model, x0, t0, steps, exact=exact, progress=progress)
        with torch.no_grad():
            x_rec = generate(model, x_lat, t0, steps, progress=progress)
        lats.append(x_lat.cpu())
        recs.append(x_rec.cpu())
    return Latents(images.cpu(), torch.cat(lats), torch.cat(recs), int(t0), int(steps))


def precompute(model, images: torch.Tensor, t0: int, steps: int = 40, *, cache_dir: str | os.PathLike | None = None,
               batch_size: int = 8, exact: bool = False, progress: bool | None = None) -> Latents:
    """Invert ``images`` to ``t0`` with ``steps`` (S_inv) DDIM steps and reconstruct them (no gradients).

    With ``cache_dir``, a previous result for the same model weights, images, t0, S_inv and variant
    is read back instead of recomputed; new results are written atomically.
    """
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"latents-{cache_key(model, images, t0, steps, exact)}.pt"
        if path.is_file():
            return Latents.from_dict(torch.load(path, map_location="cpu", weights_only=True))
    latents = _compute(model, images, t0, steps, batch_size, exact, progress)
    if path is not None:
        atomic_write(path, lambda tmp: torch.save(latents.to_dict(), tmp))
    return latents
