"""Small helpers on ``torch.nn.Module`` shared by the engine and the GAN baselines."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["frozen"]


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Turn off ``requires_grad`` on ``module``'s parameters for the block, then restore each flag.

    Optimising an input (a latent x_{t0}, a W+ code) through a model then neither computes nor
    stores gradients for its weights.
    """
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
