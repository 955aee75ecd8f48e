"""DDIM inversion and generation (eqs. 12-13) on a fast path: the loops of :mod:`dclip.method.ddim` run
inside a :func:`dclip.runtime.fast.session`.

The equations know nothing of precision, memory layout or CUDA graphs; this module is where the method
meets the runtime. A fast path changes how the UNet runs, never the grid or the update, so
``invert_fast(..., fast="fp32")`` on the CPU is bit-identical to :func:`dclip.invert`.
"""
from __future__ import annotations

import torch

from ..runtime.fast import FastPath, model_token, session
from ..runtime.progress import progress_enabled
from .ddim import (DEFAULT_SCHEDULE, Callback, Schedule, check_images, check_latents, generation_loop,
                   inversion_loop, timestep_grid)

__all__ = ["grid_key", "invert_fast", "generate_fast"]


def grid_key(kind: str, t0: int, steps: int, schedule: Schedule = DEFAULT_SCHEDULE, **options) -> tuple:
    """Everything a sampling loop depends on besides its input and the weights (a CUDA-graph key): the
    loop's kind, its grid and ᾱ on it, and ``options`` (pass ``model=model_token(model)`` among them)."""
    grid = timestep_grid(t0, steps)
    alphas = tuple(schedule.alpha_bar(t) for t in [-1, *grid])
    return (kind, int(t0), int(steps), alphas, tuple(sorted(options.items())))


def _observed(progress: bool | None, callback) -> bool:
    return callback is not None or progress_enabled(progress)


def invert_fast(model, x0: torch.Tensor, t0: int, steps: int, *, fast: FastPath | str | None = "auto",
                exact: bool = False, iterations: int = 2, schedule: Schedule = DEFAULT_SCHEDULE,
                progress: bool | None = None, callback: Callback | None = None) -> torch.Tensor:
    """:func:`dclip.method.ddim.invert` (eq. 12) with the model run on the fast path ``fast``."""
    check_images(x0, t0, steps, schedule)
    options = dict(exact=exact, iterations=iterations, schedule=schedule, progress=progress, callback=callback)
    with session(model, fast=fast, device=x0.device) as s:
        runner = s.runner(model)
        key = grid_key("invert", t0, steps, schedule, exact=exact, iterations=iterations, model=model_token(model))
        return s.sample(lambda x: inversion_loop(runner, x, t0, steps, **options), x0, key=key,
                        observed=_observed(progress, callback))


def generate_fast(model, x: torch.Tensor, t0: int, steps: int, *, fast: FastPath | str | None = "auto",
                  schedule: Schedule = DEFAULT_SCHEDULE, progress: bool | None = None,
                  callback: Callback | None = None) -> torch.Tensor:
    """:func:`dclip.method.ddim.generate` (eq. 13) with the model run on the fast path ``fast``, without gradients."""
    check_latents(x, t0, steps, schedule)
    options = dict(schedule=schedule, progress=progress, callback=callback)
    with session(model, fast=fast, device=x.device) as s:
        runner = s.runner(model)
        key = grid_key("generate", t0, steps, schedule, model=model_token(model))
        return s.sample(lambda z: generation_loop(runner, z, t0, steps, **options), x, key=key,
                        observed=_observed(progress, callback))
