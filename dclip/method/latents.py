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

from ..runtime.atomic import atomic_write
from ..runtime.cache import touch
from .ddim import DEFAULT_SCHEDULE, check_images, generation_loop, inversion_loop
from .accelerated import grid_key
from ..runtime.fast import FastPath, device_of, model_token, resolve, session
from ..runtime.progress import progress_enabled

__all__ = ["Latents", "precompute", "precompute_each", "cache_key", "fingerprint"]

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


def cache_key(model, images: torch.Tensor, t0: int, steps: int, exact: bool = False,
              autocast: str | None = None, weights: str | None = None) -> str:
    """The cache key: model weights, images, t0, S_inv, the inversion variant and (when not fp32) the
    autocast precision the latents were computed in. ``weights``: the model's :func:`fingerprint`,
    when the caller already has it (hashing a 256² UNet's weights takes about half a second)."""
    if weights is None:
        weights = fingerprint(model.state_dict()) if hasattr(model, "state_dict") else repr(model)
    parts = [_CACHE_VERSION, weights, fingerprint([images]), str(int(t0)), str(int(steps)), str(bool(exact))]
    if autocast is not None:
        parts.append(f"autocast={autocast}")
    return hashlib.blake2b("|".join(parts).encode(), digest_size=12).hexdigest()


def _compute(model, images, t0, steps, batch_size, exact, progress, fast: FastPath) -> Latents:
    """Invert and reconstruct ``images`` in batches: one copy to the device, one back, no sync between."""
    check_images(images, t0, steps)
    device = device_of(model)
    lats, recs = [], []
    with session(model, fast=fast, device=device) as s:
        runner = s.runner(model)

        def both(x0):
            x_lat = inversion_loop(runner, x0, t0, steps, exact=exact, progress=progress)
            return x_lat, generation_loop(runner, x_lat, t0, steps, progress=progress)

        key = grid_key("precompute", t0, steps, DEFAULT_SCHEDULE, exact=exact, model=model_token(model))
        observed = progress_enabled(progress)
        for batch in images.to(device).split(batch_size):
            x_lat, x_rec = s.sample(both, batch, key=key, observed=observed)
            lats.append(x_lat)
            recs.append(x_rec)
    return Latents(images.cpu(), torch.cat(lats).cpu(), torch.cat(recs).cpu(), int(t0), int(steps))


def precompute(model, images: torch.Tensor, t0: int, steps: int = 40, *, cache_dir: str | os.PathLike | None = None,
               batch_size: int | None = None, exact: bool = False, progress: bool | None = None,
               fast: FastPath | str | None = "auto", weights: str | None = None) -> Latents:
    """Invert ``images`` to ``t0`` with ``steps`` (S_inv) DDIM steps and reconstruct them (no gradients).

    With ``cache_dir``, a previous result for the same model weights, images, t0, S_inv and variant
    is read back instead of recomputed; new results are written atomically. ``weights`` is the
    model's :func:`fingerprint` if already known (it keys the cache).

    ``batch_size`` images go through each UNet call (default: the fast path's, else 8). ``fast``
    picks the performance settings (:mod:`dclip.runtime.fast`; ``"auto"``: fp32 on the CPU, bf16 autocast
    on CUDA, ``"reference"``: the original implementation's path).
    """
    fast = resolve(fast, device_of(model))
    batch_size = batch_size or fast.batch_size or 8
    path = None
    if cache_dir is not None:
        key = cache_key(model, images, t0, steps, exact, autocast=fast.autocast, weights=weights)
        path = Path(cache_dir) / f"latents-{key}.pt"
        cached = _read_cached(path)
        if cached is not None:
            touch(path)  # the disk cache's least-recently-used clock
            return cached
    latents = _compute(model, images, t0, steps, batch_size, exact, progress, fast)
    if path is not None:
        atomic_write(path, lambda tmp: torch.save(latents.to_dict(), tmp))
    return latents


def _read_cached(path: Path) -> Latents | None:
    """The latents the disk cache keeps at ``path``; None when there are none, or when the file is damaged
    (one warning line; the caller computes them again and its atomic write replaces the file)."""
    if not path.is_file():
        return None
    try:
        return Latents.from_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # truncated, overwritten, not a torch file: a miss, never a traceback
        from ..runtime.errors import warn

        warn(f"ignored the disk cache's latents '{path}': they cannot be read ({type(err).__name__}); "
             "computing them again.")
        return None


def precompute_each(model, images: torch.Tensor, t0: int, steps: int = 40, *, cache_dir: str | os.PathLike,
                    batch_size: int | None = None, exact: bool = False, progress: bool | None = None,
                    fast: FastPath | str | None = "auto", weights: str | None = None) -> tuple[Latents, int]:
    """:func:`precompute` with one cache file per image (the file :func:`precompute` of that image
    alone would write), so a folder can be inverted in pieces -- by several ranks, or again after a
    crash -- and only images not in the cache yet are computed, ``batch_size`` at a time, each
    written as soon as its batch is done. Returns the latents, in order, and how many were computed.
    """
    if len(images) == 0:  # e.g. a rank with no share
        return Latents(images.cpu(), images.cpu(), images.cpu(), int(t0), int(steps)), 0
    fast = resolve(fast, device_of(model))
    batch_size = batch_size or fast.batch_size or 8
    if weights is None:
        weights = fingerprint(model.state_dict())
    keys = [cache_key(model, x[None], t0, steps, exact, autocast=fast.autocast, weights=weights) for x in images]
    paths = [Path(cache_dir) / f"latents-{key}.pt" for key in keys]
    found = {p: latents for p in set(paths) if (latents := _read_cached(p)) is not None}
    first = {}  # each missing file once (identical images share one), at its first image
    for i, p in enumerate(paths):
        if p not in found:
            first.setdefault(p, i)
    missing = list(first.values())
    for start in range(0, len(missing), batch_size):
        chunk = missing[start: start + batch_size]
        done = _compute(model, images[chunk], t0, steps, batch_size, exact, progress, fast)
        for j, i in enumerate(chunk):
            one = Latents(done.x0[j:j + 1].clone(), done.x_lat[j:j + 1].clone(), done.x_rec[j:j + 1].clone(),
                          int(t0), int(steps))
            atomic_write(paths[i], lambda tmp: torch.save(one.to_dict(), tmp))
            found[paths[i]] = one
    parts = [found[p] for p in paths]
    return (Latents(torch.cat([p.x0 for p in parts]), torch.cat([p.x_lat for p in parts]),
                    torch.cat([p.x_rec for p in parts]), int(t0), int(steps)), len(missing))
