"""Deterministic DDIM inversion and generation on the paper's integer time grid (eqs. 1, 6, 12-13).

Symbols follow the paper: ``alpha_bar[t]`` is ᾱ_t = ∏_{s≤t}(1 − β_s) (written α_t in the paper),
ε_θ(x_t, t) is the model's noise prediction, and f_θ(x_t, t) = (x_t − √(1−ᾱ_t) ε_θ) / √ᾱ_t is the
predicted x̂0 (eq. 6). One DDIM step from t to t' is

    x_{t'} = √ᾱ_{t'} · f_θ(x_t, t) + √(1 − ᾱ_{t'}) · ε_θ(x_t, t)        (eqs. 12 and 13)

which is the inversion step when t' > t and the generation step when t' < t. ᾱ at t = −1 is 1, so
the last generation step returns x̂0 itself. x̂0 is never clipped, as in the original implementation.

The time grid is the one the authors' code builds (``seq``/``seq_next`` below): inversion walks
S − 1 steps from t = 0 up to t0 and generation S steps from t0 down to −1.

A *model* here is anything called as ``model(x, t)`` with ``t`` a float tensor of shape (N,):
a diffusers ``UNet2DModel`` (its ``.sample`` is used), one of the mixes in :mod:`dclip.method.mixing`,
or a plain function returning ε. Outputs with twice the input's channels (learned variance, as in
the ADM checkpoints) are cut to their first half.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..runtime.progress import progress_bar

__all__ = [
    "Schedule", "linear_schedule", "timestep_grid", "inversion_pairs", "generation_pairs",
    "predict_eps", "ddim_step", "denoise_step", "invert", "generate", "q_sample", "check_images",
    "check_latents", "inversion_loop", "generation_loop", "finishing_pairs", "sample",
]

#: Every long loop of dclip (sampling steps, fine-tuning updates, latent optimisation, GAN projection)
#: reports progress the same way: ``callback(dict)`` after each step, with ``"i"`` the step's index
#: (from 0) and what the step produced (here ``"t"``, ``"t_next"``, the new ``"x"`` and its x̂0, ``"x0_pred"``).
Callback = Callable[[dict], None]


@dataclass(frozen=True)
class Schedule:
    """The noise schedule: β_t and ᾱ_t for t = 0..T−1 (float64 on the CPU)."""

    betas: torch.Tensor

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(1.0 - self.betas, dim=0)

    @property
    def num_timesteps(self) -> int:
        return self.betas.shape[0]

    def alpha_bar(self, t: int) -> float:
        """ᾱ_t as a Python float, with ᾱ_{−1} = 1."""
        if t < 0:
            return 1.0
        return float(self.alphas_cumprod[t])


def linear_schedule(num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """The DDPM schedule every model in the paper uses: linear β from 1e-4 to 0.02, T = 1000."""
    return Schedule(torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64))


DEFAULT_SCHEDULE = linear_schedule()


def timestep_grid(t0: int, steps: int) -> list[int]:
    """The paper's grid ``seq``: S integers from 0 to t0, ``int(s * t0)`` for S evenly spaced s in [0, 1].

    Built with ``numpy.linspace`` as the original code does: torch's linspace fills the upper half
    from the end point, and after ``int()`` truncation that changes some grid points."""
    return [int(s) for s in np.linspace(0, 1, steps) * t0]


def inversion_pairs(t0: int, steps: int) -> list[tuple[int, int]]:
    """(t, t_next) with t_next > t: the S − 1 inversion steps from 0 to t0 (eq. 12)."""
    seq = timestep_grid(t0, steps)
    return list(zip(seq[:-1], seq[1:]))


def generation_pairs(t0: int, steps: int) -> list[tuple[int, int]]:
    """(t, t_next) with t_next < t: the S generation steps from t0 down to −1 (eq. 13)."""
    seq = timestep_grid(t0, steps)
    seq_next = [-1] + seq[:-1]
    return list(zip(reversed(seq), reversed(seq_next)))


def predict_eps(model, x: torch.Tensor, t: int) -> torch.Tensor:
    """ε_θ(x, t) for a batch at integer time ``t`` (passed to the model as a float tensor).

    A model with an ``eps_at(x, t)`` method (the mixes) gets the integer time itself. ε comes back
    in ``x``'s dtype, so under autocast the DDIM arithmetic still runs in the latent's precision.
    """
    eps_at = getattr(model, "eps_at", None)
    if eps_at is not None:
        return eps_at(x, int(t))
    t_batch = torch.full((x.shape[0],), float(t), device=x.device, dtype=torch.float32)
    out = model(x, t_batch)
    out = getattr(out, "sample", out)
    if out.shape[1] == 2 * x.shape[1]:  # learned variance: ε first, then the variance channels
        out = out[:, : x.shape[1]]
    if out.dtype != x.dtype:
        out = out.to(x.dtype)
    return out


def ddim_step(x: torch.Tensor, eps: torch.Tensor, alpha_bar: float, alpha_bar_next: float
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """One deterministic DDIM step (eqs. 12/13). Returns (x_next, x̂0), x̂0 = f_θ of eq. 6."""
    x0_pred = (x - (1.0 - alpha_bar) ** 0.5 * eps) / alpha_bar ** 0.5
    x_next = alpha_bar_next ** 0.5 * x0_pred + (1.0 - alpha_bar_next) ** 0.5 * eps
    return x_next, x0_pred


def denoise_step(model, x: torch.Tensor, t: int, t_next: int, schedule: Schedule = DEFAULT_SCHEDULE
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """ε at ``t``, then one DDIM step to ``t_next``. Returns (x_next, x̂0)."""
    eps = predict_eps(model, x, t)
    return ddim_step(x, eps, schedule.alpha_bar(t), schedule.alpha_bar(t_next))


def _exact_inversion_step(model, x: torch.Tensor, t: int, t_next: int, schedule: Schedule,
                          iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve x_next so that the generation step t_next → t returns exactly ``x`` (fixed point).

    Generation maps x_next to x = √(ᾱ/ᾱ')·(x_next − √(1−ᾱ')ε') + √(1−ᾱ)ε' with ε' = ε_θ(x_next, t').
    Rearranged: x_next = √(ᾱ'/ᾱ)·(x − √(1−ᾱ)·ε') + √(1−ᾱ')·ε', iterated from the plain DDIM guess.
    Returns (x_next, x̂0), x̂0 = (x − √(1−ᾱ)·ε')/√ᾱ with the last ε' (eq. 6).
    """
    a, a_next = schedule.alpha_bar(t), schedule.alpha_bar(t_next)
    eps = predict_eps(model, x, max(t, 0))
    x_next, x0_pred = ddim_step(x, eps, a, a_next)
    for _ in range(iterations):
        eps = predict_eps(model, x_next, t_next)
        x0_pred = (x - (1.0 - a) ** 0.5 * eps) / a ** 0.5
        x_next = (a_next / a) ** 0.5 * (x - (1.0 - a) ** 0.5 * eps) + (1.0 - a_next) ** 0.5 * eps
    return x_next, x0_pred


def check_latents(x: torch.Tensor, t0: int, steps: int, schedule: Schedule = DEFAULT_SCHEDULE) -> None:
    """The checks :func:`generate` makes on its input: a float (N, C, H, W) tensor, t0 on the schedule, S ≥ 2."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"images must be a float tensor of shape (N, C, H, W); got {shape}. "
                         "Add a batch dimension with x[None] for a single image.")
    if not x.is_floating_point():
        raise ValueError(f"images must be floating point in [-1, 1]; got dtype {x.dtype}. "
                         "Convert with dclip.data.images.to_tensor or x.float() / 127.5 - 1.")
    if not 1 <= int(t0) <= schedule.num_timesteps - 1:
        raise ValueError(f"t0 must be an integer in [1, {schedule.num_timesteps - 1}]; got {t0}.")
    if int(steps) < 2:
        raise ValueError(f"steps must be at least 2 (the grid needs both 0 and t0); got {steps}.")


def check_images(x0: torch.Tensor, t0: int, steps: int, schedule: Schedule = DEFAULT_SCHEDULE) -> None:
    """The checks :func:`invert` makes on its input: shape, dtype, t0, S and the [-1, 1] range."""
    check_latents(x0, t0, steps, schedule)
    lo, hi = float(x0.min()), float(x0.max())
    if lo < -1.01 or hi > 1.01:
        raise ValueError(f"images must be scaled to [-1, 1]; got values in [{lo:.3g}, {hi:.3g}]. "
                         "For 0..255 images use x / 127.5 - 1; for 0..1 images use 2 * x - 1.")


def inversion_loop(model, x: torch.Tensor, t0: int, steps: int, *, exact: bool = False, iterations: int = 2,
                   schedule: Schedule = DEFAULT_SCHEDULE, progress: bool | None = None,
                   callback: Callback | None = None) -> torch.Tensor:
    """The steps of :func:`invert` without its checks or ``no_grad`` (call it inside them)."""
    pairs = inversion_pairs(t0, steps)
    if exact:
        pairs = [(-1, 0)] + pairs
    for i, (t, t_next) in enumerate(progress_bar(pairs, desc="invert", progress=progress)):
        if exact:
            x, x0_pred = _exact_inversion_step(model, x, t, t_next, schedule, iterations)
        else:
            x, x0_pred = denoise_step(model, x, t, t_next, schedule)
        if callback is not None:
            callback({"i": i, "t": t, "t_next": t_next, "x": x, "x0_pred": x0_pred})
    return x


def generation_loop(model, x: torch.Tensor, t0: int, steps: int, *, schedule: Schedule = DEFAULT_SCHEDULE,
                    progress: bool | None = None, callback: Callback | None = None,
                    finish_at: int | None = None) -> torch.Tensor:
    """The steps of :func:`generate` without its checks.

    ``finish_at`` (beyond the paper, issue 24) ends the reverse process early: the first step at a time
    t ≤ ``finish_at`` returns its x̂0 (eq. 6) instead of going on, so the steps below it are skipped."""
    for i, (t, t_next) in enumerate(progress_bar(finishing_pairs(t0, steps, finish_at), desc="generate",
                                                 progress=progress)):
        x, x0_pred = denoise_step(model, x, t, t_next, schedule)
        if callback is not None:
            callback({"i": i, "t": t, "t_next": t_next, "x": x, "x0_pred": x0_pred})
        if finish_at is not None and t <= finish_at:
            return x0_pred
    return x


def finishing_pairs(t0: int, steps: int, finish_at: int | None = None) -> list[tuple[int, int]]:
    """The (t, t_next) pairs :func:`generation_loop` runs: all of :func:`generation_pairs`, or with ``finish_at``
    those down to the first t ≤ ``finish_at`` (whose x̂0 is the result). One UNet call per pair."""
    pairs = generation_pairs(t0, steps)
    if finish_at is None:
        return pairs
    if finish_at < 0:
        raise ValueError(f"finish_at must be a time ≥ 0 (or None: the whole reverse process); got {finish_at}.")
    last = next(i for i, (t, _) in enumerate(pairs) if t <= finish_at or i == len(pairs) - 1)
    return pairs[: last + 1]


def invert(model, x0: torch.Tensor, t0: int, steps: int, *, exact: bool = False, iterations: int = 2,
           schedule: Schedule = DEFAULT_SCHEDULE, progress: bool | None = None,
           callback: Callback | None = None) -> torch.Tensor:
    """DDIM inversion of images ``x0`` ∈ [−1, 1] to the latent x_{t0} (eq. 12), without gradients.

    With the default ``exact=False`` this is the original implementation's inversion: S − 1 steps on
    the grid from 0 to t0, ε evaluated at the lower time of each pair, the image itself taken as x_0.

    ``exact=True`` (beyond the paper) solves each step by ``iterations`` fixed-point iterations so
    that :func:`generate` with the same grid maps the latent back to ``x0`` (up to the fixed-point
    error), and inverts the grid's first pair (−1 → 0) as well: S steps, (1 + iterations) model
    calls each.

    ``callback`` gets ``{"i", "t", "t_next", "x", "x0_pred"}`` after each step (x̂0 of eq. 6 at that step).
    The model is called exactly as given; :func:`dclip.method.accelerated.invert_fast` runs the same loop on a
    fast path (:mod:`dclip.runtime.fast`).
    """
    check_images(x0, t0, steps, schedule)
    with torch.no_grad():
        return inversion_loop(model, x0, t0, steps, exact=exact, iterations=iterations, schedule=schedule,
                              progress=progress, callback=callback)


def generate(model, x: torch.Tensor, t0: int, steps: int, *, schedule: Schedule = DEFAULT_SCHEDULE,
             progress: bool | None = None, callback: Callback | None = None,
             finish_at: int | None = None) -> torch.Tensor:
    """DDIM generation from the latent x_{t0} to an image (eq. 13): S steps from t0 down to −1.

    Differentiable end to end (fine-tuning backpropagates through every step); wrap the call in
    ``torch.no_grad()`` when no gradient is needed. ``callback`` gets
    ``{"i", "t", "t_next", "x", "x0_pred"}`` after each step, x̂0 being eq. 6 at that step.
    The model is called exactly as given; :func:`dclip.method.accelerated.generate_fast` runs the same loop on
    a fast path, without gradients. ``finish_at`` ends early with x̂0 (:func:`generation_loop`).
    """
    check_latents(x, t0, steps, schedule)
    return generation_loop(model, x, t0, steps, schedule=schedule, progress=progress, callback=callback,
                           finish_at=finish_at)


def sample(model, noise: torch.Tensor, steps: int, *, schedule: Schedule = DEFAULT_SCHEDULE,
           progress: bool | None = None, callback: Callback | None = None) -> torch.Tensor:
    """Images sampled from pure noise x_{T−1} ~ N(0, I) by S DDIM steps, x̂0 clipped to [−1, 1] at each step.

    Not part of the paper's method (which always starts from an inverted image, eq. 12, where nothing is
    clipped): a model's own samples, to look at what it learned. At t = T−1, √ᾱ_t ≈ 0.006, so eq. 6
    multiplies any error of ε_θ by ~160; clipping x̂0 (diffusers' ``DDIMScheduler(clip_sample=True)``, the
    setting of the google/ddpm-* scheduler configs) keeps such errors from compounding. ``callback`` gets
    ``{"i", "t", "t_next", "x", "x0_pred"}`` after each step.
    """
    t_last = schedule.num_timesteps - 1
    check_latents(noise, t_last, steps, schedule)
    x = noise
    with torch.no_grad():
        for i, (t, t_next) in enumerate(progress_bar(generation_pairs(t_last, steps), desc="sample",
                                                     progress=progress)):
            a = schedule.alpha_bar(t)
            x0_pred = ((x - (1.0 - a) ** 0.5 * predict_eps(model, x, t)) / a ** 0.5).clamp(-1.0, 1.0)
            eps = (x - a ** 0.5 * x0_pred) / (1.0 - a) ** 0.5  # the ε consistent with the clipped x̂0
            x = ddim_step(x, eps, a, schedule.alpha_bar(t_next))[0]
            if callback is not None:
                callback({"i": i, "t": t, "t_next": t_next, "x": x, "x0_pred": x0_pred})
    return x


def q_sample(x0: torch.Tensor, t: int, *, noise: torch.Tensor | None = None,
             generator: torch.Generator | None = None, schedule: Schedule = DEFAULT_SCHEDULE) -> torch.Tensor:
    """The stochastic DDPM forward process q(x_t | x_0) (eq. 1): √ᾱ_t x0 + √(1−ᾱ_t) w, w ~ N(0, I)."""
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    a = schedule.alpha_bar(t)
    return a ** 0.5 * x0 + (1.0 - a) ** 0.5 * noise
