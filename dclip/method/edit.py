"""Editing with fine-tuned models, and the paper's applications (Sec. 3.2, Fig. 7, Fig. 9).

* :func:`edit`: invert with the original model, generate with the fine-tuned one, optionally
  mixing their noise by a degree of change r.
* :func:`edit_multi`: several fine-tuned models in one sampling, mixed by γ(t) (eq. 14).
* :func:`project_to_domain` and :func:`unseen_to_unseen`: a picture from outside the model's domain
  (a painting, a stroke drawing: :func:`dclip.data.images.stroke_paint`) is pulled into the trained
  domain by K rounds of stochastic DDPM forward noising and few-step DDIM denoising with the original
  model, then edited.
* :func:`latent_optimisation`: the Fig. 9 baseline, optimising x_{t0} with the model frozen.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from .ddim import (DEFAULT_SCHEDULE, check_images, check_latents, generate, generation_loop, inversion_loop, invert,
                   q_sample)
from .accelerated import grid_key
from ..runtime.fast import FastPath, device_of, model_token, resolve, session
from .mixing import noise_mix
from ..runtime.progress import progress_enabled

__all__ = ["edit", "edit_multi", "project_to_domain", "unseen_to_unseen", "latent_optimisation"]


def _sample_edit(original, generator, x0, t0, n_inv, n_gen, x_lat, progress, batch_size, fast, tag,
                 finish_at: int | None = None) -> torch.Tensor:
    """Invert with ``original`` (unless ``x_lat`` is given) and generate with ``generator``, in batches."""
    if x_lat is None:
        check_images(x0, t0, n_inv)
    else:
        check_latents(x_lat, t0, n_gen, DEFAULT_SCHEDULE)
    device = device_of(original, generator)
    fast = resolve(fast, device)
    source = (x0 if x_lat is None else x_lat).to(device)
    batch_size = batch_size or fast.batch_size or source.shape[0]
    out = []
    with session(original, generator, fast=fast) as s:
        inverter, sampler = s.runner(original), s.runner(generator)

        def run(x):
            if x_lat is None:
                x = inversion_loop(inverter, x, t0, n_inv, progress=progress)
            return generation_loop(sampler, x, t0, n_gen, progress=progress, finish_at=finish_at)

        key = grid_key(tag, t0, n_gen, DEFAULT_SCHEDULE, n_inv=n_inv if x_lat is None else None,
                       model=model_token(generator), finish_at=finish_at)
        for batch in source.split(batch_size):
            out.append(s.sample(run, batch, key=key, observed=progress_enabled(progress)))
    return torch.cat(out)


def edit(original, finetuned, x0: torch.Tensor, t0: int, *, n_inv: int = 40, n_gen: int = 40,
         ratio: float = 1.0, x_lat: torch.Tensor | None = None, progress: bool | None = None,
         batch_size: int | None = None, fast: FastPath | str | None = "auto",
         finish_at: int | None = None) -> torch.Tensor:
    """Edit images: DDIM inversion with ``original`` to t0, generation with ``finetuned``.

    ``ratio`` is the degree of change: ε = r·ε_finetuned + (1 − r)·ε_original; r = 0 gives the
    original model's reconstruction (:func:`dclip.method.mixing.noise_mix`). Pass ``x_lat`` to reuse
    a latent already inverted with the same model, t0 and n_inv. ``batch_size`` images go through
    each UNet call (default: all of them, or the fast path's); ``fast`` picks the performance
    settings (:mod:`dclip.runtime.fast`). ``finish_at`` (beyond the paper) ends generation early with the x̂0
    of the first step at t ≤ ``finish_at`` (:func:`dclip.method.ddim.generation_loop`).
    """
    model = noise_mix(original, [finetuned], ratio=ratio)
    return _sample_edit(original, model, x0, t0, n_inv, n_gen, x_lat, progress, batch_size, fast,
                        ("edit", float(ratio)), finish_at)


def edit_multi(original, finetuned: Sequence, x0: torch.Tensor | None, t0: int,
               gammas: Mapping[int, Sequence[float]], *, ratio: float = 1.0, n_inv: int = 40, n_gen: int = 40,
               x_lat: torch.Tensor | None = None, progress: bool | None = None, batch_size: int | None = None,
               fast: FastPath | str | None = "auto") -> torch.Tensor:
    """Multi-attribute change in one sampling (eq. 14): ε = Σ γ_i(t) ε_i over the fine-tuned models.

    ``gammas`` is a threshold schedule, e.g. ``{300: [1, 0], 0: [0.3, 0.7]}`` (see ThresholdMix);
    ``ratio`` < 1 mixes in the original model as the degree of change does
    (:func:`dclip.method.mixing.noise_mix`). Pass ``x_lat`` (and ``x0=None``) to start from a latent
    already inverted with ``original`` to t0.
    """
    mix = noise_mix(original, finetuned, ratio=ratio, gammas=gammas)
    tag = ("edit_multi", float(ratio), tuple((int(k), tuple(v)) for k, v in sorted(gammas.items(), reverse=True)))
    return _sample_edit(original, mix, x0, t0, n_inv, n_gen, x_lat, progress, batch_size, fast, tag)


def project_to_domain(original, x: torch.Tensor, t0: int, *, repeats: int = 10, steps: int = 6,
                      generator: torch.Generator | None = None, callback=None) -> torch.Tensor:
    """Pull an out-of-domain image into the model's domain (Sec. 3.2): K times, noise it to t0 with the
    stochastic DDPM forward process (eq. 1), then denoise it with ``steps`` DDIM steps of ``original``.
    The authors use K > 8 rounds. ``callback`` gets ``{"i", "x"}`` after each round."""
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1; got {repeats}.")
    with torch.no_grad():
        for i in range(repeats):
            x = generate(original, q_sample(x, t0, generator=generator), t0, steps)
            if callback is not None:
                callback({"i": i, "x": x})
    return x.clamp(-1, 1)


def unseen_to_unseen(original, finetuned, x: torch.Tensor, *, t0_project: int = 500, repeats: int = 10,
                     project_steps: int = 6, t0: int = 500, n_inv: int = 40, n_gen: int = 40,
                     generator: torch.Generator | None = None, fast: FastPath | str | None = "auto"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Unseen → unseen translation and stroke → image (Fig. 4a-b, Fig. 7): project the input into the
    trained domain, then edit it deterministically with the fine-tuned model.
    Returns (projected image, edited image)."""
    projected = project_to_domain(original, x, t0_project, repeats=repeats, steps=project_steps, generator=generator)
    return projected, edit(original, finetuned, projected, t0, n_inv=n_inv, n_gen=n_gen, fast=fast)


def latent_optimisation(original, clip, x0: torch.Tensor, source: str, target: str, t0: int, *, n_inv: int = 40,
                        n_gen: int = 6, iterations: int = 50, lr: float = 0.01, lambda_l1: float = 0.3,
                        callback=None) -> tuple[torch.Tensor, list[float]]:
    """The Fig. 9 baseline: optimise the latent x_{t0} with the directional CLIP loss and an L1 term,
    keeping the diffusion model frozen. Returns (edited images, loss per iteration). ``callback`` gets
    ``{"i", "loss", "x_lat"}`` after each iteration (:data:`dclip.method.ddim.Callback`)."""
    from .losses import clip_objective, directional_clip_loss, text_direction
    from ..runtime.modules import frozen

    direction = text_direction(clip, source, target)
    latent = invert(original, x0, t0, n_inv).clone().requires_grad_(True)
    opt = torch.optim.Adam([latent], lr=lr)
    losses = []
    with frozen(original):
        for _ in range(iterations):
            opt.zero_grad(set_to_none=True)
            x = generate(original, latent, t0, n_gen)
            loss = clip_objective(directional_clip_loss(clip, x0, x, direction).mean()) + lambda_l1 * (x - x0).abs().mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if callback is not None:
                callback({"i": len(losses) - 1, "loss": losses[-1], "x_lat": latent.detach()})
    with torch.no_grad():
        return generate(original, latent.detach(), t0, n_gen), losses
