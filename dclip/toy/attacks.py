"""Attacks on eq. 9 in the toy world: the lowest directional CLIP loss inside an imperceptible L∞ ball around a face
(projected gradient descent, Madry et al. 2018). The failure table measures a CLIP with it
(:mod:`dclip.studies.edit_failures`) and :mod:`dclip.toy.clip_directions` trains a CLIP against it."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..method.losses import directional_clip_loss

__all__ = ["AttackSettings", "pgd_directional"]


@dataclass(frozen=True)
class AttackSettings:
    """PGD on eq. 9 inside the L∞ ball ``epsilon`` around each face (dclip's images are in [−1, 1], so 16/255 is
    8/255 of the [0, 1] range: imperceptible). Sign steps of ``step_size`` (Madry et al.'s 2.5·ε / steps), from
    ``restarts`` uniform random starts in the ball; the lowest loss any step reached is kept per face."""

    epsilon: float = 16 / 255
    steps: int = 100
    restarts: int = 3
    step_size: float = 2.5 * (16 / 255) / 100
    seed: int = 0



def pgd_directional(clip, originals: torch.Tensor, direction: torch.Tensor,
                    settings: AttackSettings = AttackSettings(), generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The lowest eq. 9 loss (against text direction ``direction``, from
    :func:`~dclip.method.losses.text_direction`: one (1, D) or one per face) found per face within
    ``settings.epsilon`` (L∞) of ``originals``: returns (the perturbed images, their per-face loss, shape (N,)).
    The random starts come from ``generator`` (default: one seeded with ``settings.seed``)."""
    x = originals.detach().float()
    generator = generator if generator is not None else torch.Generator().manual_seed(settings.seed)
    best = x.clone()
    best_loss = torch.full((len(x),), float("inf"))
    for _ in range(settings.restarts):
        delta = (torch.rand(x.shape, generator=generator) * 2 - 1) * settings.epsilon
        delta = (x + delta).clamp(-1, 1) - x
        for step in range(settings.steps + 1):
            delta.requires_grad_(True)
            loss = directional_clip_loss(clip, x, x + delta, direction)
            with torch.no_grad():
                better = loss.detach().cpu() < best_loss
                best[better] = (x + delta)[better].detach()
                best_loss = torch.where(better, loss.detach().cpu(), best_loss)
            if step == settings.steps:
                break
            (grad,) = torch.autograd.grad(loss.sum(), delta)
            with torch.no_grad():
                delta = (delta - settings.step_size * grad.sign()).clamp(-settings.epsilon, settings.epsilon)
                delta = (x + delta).clamp(-1, 1) - x
    return best, best_loss
