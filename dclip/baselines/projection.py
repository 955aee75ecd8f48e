"""GAN inversion for the baselines: optimisation-based projection of faces into StyleGAN2's W+.

This is the "Optimization" row of the paper's Table 1 (MAE 0.061, LPIPS 0.126, SSIM 0.875 on
CelebA-HQ, against e4e's 0.092 / 0.221 / 0.742), following the StyleGAN2 projector (Karras et al.,
2020, Appendix D; rosinality's ``projector.py``) run in W+ (``--w_plus``):

* start every entry of the W+ code at the mean latent; draw fresh per-image noise maps and optimise
  them too;
* loss = LPIPS + ``mse`` * MSE between the render and the target, both compared at
  ``min(generator size, 256)`` px (renders are shrunk by block averaging), plus
  ``noise_regularize`` * the projector's multi-scale autocorrelation penalty on the noise maps;
* Adam with the ramped learning rate (:func:`dclip.baselines.common.ramped_lr`); Gaussian jitter on the
  code, ``std_w * noise * max(0, 1 - t / noise_ramp)^2``, that fades out over the first 75 %;
  noise maps renormalised to zero mean / unit std after every step.

The loss is a sum of per-image terms and Adam is element-wise, so in a batch each image's code and
noise follow only that image's loss, as if projected alone (up to the random draws); the reference
averages its MSE and noise terms over the batch instead.

The paper's GAN baselines used encoders (e4e for StyleCLIP, ReStyle-pSp for StyleGAN-NADA); dclip
runs StyleCLIP from e4e (:mod:`dclip.baselines.e4e`) and from this projector, and NADA from this projector.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..runtime.modules import frozen
from ..models.lpips import PerceptualFn
from .common import RAMPDOWN, RAMPUP, ramped_lr, steps
from .framing import resize_faces

__all__ = ["ProjectionConfig", "Projection", "project", "latent_statistics", "noise_regularization",
           "normalize_noise_", "render", "COMPARE_SIZE"]

#: Largest side at which renders and targets are compared (rosinality's projector: 256 px).
COMPARE_SIZE = 256

@dataclass(frozen=True)
class ProjectionConfig:
    """Projector settings; defaults are rosinality's ``projector.py`` (with ``--w_plus``)."""

    steps: int = 1000
    lr: float = 0.1
    lr_rampup: float = RAMPUP
    lr_rampdown: float = RAMPDOWN
    noise: float = 0.05             # code jitter, in units of the W spread
    noise_ramp: float = 0.75        # fraction of the run over which the jitter fades out
    noise_regularize: float = 1e5
    mse: float = 1.0                # rosinality's default is 0 (LPIPS only); MSE + LPIPS here
    lpips: float = 1.0
    n_mean_latent: int = 10000
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.lr <= 0 or self.n_mean_latent < 2:
            raise ValueError("ProjectionConfig needs steps >= 1, lr > 0 and n_mean_latent >= 2")


@dataclass
class Projection:
    """A projection result: W+ codes ``(N, n_latent, style_dim)``, per-image noise maps (one
    ``(N, 1, r, r)`` tensor per styled layer; ``None``: the generator's stored ones, as for e4e codes)
    and the total loss at every step."""

    w_plus: Tensor
    noise: list[Tensor] | None
    history: list[float] = field(default_factory=list)


def render(generator, w_plus: Tensor, noise: list[Tensor] | None = None) -> Tensor:
    """``G(w+)`` with the given noise maps (the stored ones when ``None``), generator resolution."""
    return generator([w_plus], input_is_latent=True, noise=noise, randomize_noise=False)


@torch.no_grad()
def latent_statistics(generator, n: int = 10000, seed: int = 0) -> tuple[Tensor, float]:
    """``(mean w (style_dim,), spread)`` of ``n`` mapped random z; spread = sqrt(E|w - mean|^2)."""
    z = torch.randn(n, generator.style_dim, generator=torch.Generator().manual_seed(seed))
    w = generator.mapping(z.to(generator.input.input.device))
    mean = w.mean(0)
    return mean, float(((w - mean).pow(2).sum() / n).sqrt())


def noise_regularization(noises: list[Tensor]) -> Tensor:
    """The projector's noise penalty per image, shape (N,).

    For every map and every 2x-downsampled version of it down to 8 px: the squared mean product of
    the map with itself shifted by one pixel, horizontally and vertically (wrapping around). It keeps
    the optimised noise from encoding image content.
    """
    total = 0.0
    for noise in noises:
        while True:
            for dim in (3, 2):
                total = total + (noise * torch.roll(noise, shifts=1, dims=dim)).mean(dim=(1, 2, 3)).pow(2)
            size = noise.shape[-1]
            if size <= 8:
                break
            noise = noise.reshape(noise.shape[0], 1, size // 2, 2, size // 2, 2).mean(dim=(3, 5))
    return total


@torch.no_grad()
def normalize_noise_(noises: list[Tensor]) -> None:
    """Shift and scale each image's noise map to mean 0, std 1, in place."""
    for noise in noises:
        mean = noise.mean(dim=(1, 2, 3), keepdim=True)
        std = noise.std(dim=(1, 2, 3), keepdim=True)
        noise.sub_(mean).div_(std)


def _start(generator, n: int, latent_avg: Tensor | None, config: ProjectionConfig, device):
    """Initial W+ code (mean latent everywhere), random noise maps and the W spread."""
    mean, spread = latent_statistics(generator, config.n_mean_latent, config.seed)
    if latent_avg is not None:
        mean = latent_avg.reshape(-1).to(device, torch.float32)
    w_plus = mean.reshape(1, 1, -1).repeat(n, generator.n_latent, 1).clone().requires_grad_(True)
    rng = torch.Generator().manual_seed(config.seed + 1)
    noises = [torch.randn(n, *m.shape[1:], generator=rng).to(device).requires_grad_(True)
              for m in generator.make_noise()]
    return w_plus, noises, spread


def _losses(generator, w: Tensor, noises: list[Tensor], target: Tensor, perceptual: PerceptualFn,
            config: ProjectionConfig) -> Tensor:
    """Total projection loss per image, shape (N,)."""
    image = resize_faces(render(generator, w, noises), target.shape[-1])
    loss = config.noise_regularize * noise_regularization(noises)
    if config.lpips:
        loss = loss + config.lpips * perceptual(image, target).reshape(-1)
    if config.mse:
        loss = loss + config.mse * (image - target).pow(2).flatten(1).mean(1)
    return loss


def project(generator, target: Tensor, *, perceptual: PerceptualFn | None,
            config: ProjectionConfig = ProjectionConfig(), latent_avg: Tensor | None = None,
            progress: bool | None = None, callback=None) -> Projection:
    """Project aligned faces into W+ (Table 1, "Optimization").

    Args:
        generator: a :class:`dclip.baselines.stylegan2.Generator` (left unchanged).
        target: ``(N, 3, S, S)`` FFHQ-aligned faces in [-1, 1], any size (compared at
            ``min(generator.size, 256)`` px).
        perceptual: ``f(x, y) -> (N,)``, e.g. :func:`dclip.models.lpips.perceptual_distance` of
            :func:`dclip.models.lpips.load_lpips`; unused when ``config.lpips == 0``.
        config: step count, learning rate and loss weights.
        latent_avg: the starting code (the checkpoint's ``latent_avg``); defaults to the mean of
            ``config.n_mean_latent`` mapped random z, whose spread sets the jitter either way.
        progress: tqdm bar (default ``$DCLIP_PROGRESS``).
        callback: called after each step with ``{"i", "loss", "w_plus"}`` (the engine's callback
            shape, :data:`dclip.method.ddim.Callback`).
    """
    if config.lpips and perceptual is None:
        raise ValueError("the projection's LPIPS term needs perceptual=... (e.g. perceptual_distance("
                         "load_lpips())), or use a ProjectionConfig with lpips=0")
    device = generator.input.input.device
    size = min(generator.size, COMPARE_SIZE)
    target = resize_faces(target.detach().to(device, torch.float32), size)
    w_plus, noises, spread = _start(generator, target.shape[0], latent_avg, config, device)
    optimizer = torch.optim.Adam([w_plus, *noises], lr=config.lr)
    jitter_rng = torch.Generator().manual_seed(config.seed + 2)
    history = []
    with frozen(generator):
        for i in steps(config.steps, "projection", progress):
            history.append(_step(generator, optimizer, w_plus, noises, target, perceptual, config,
                                 i / config.steps, spread, jitter_rng))
            if callback is not None:
                callback({"i": i, "loss": history[-1], "w_plus": w_plus.detach()})
    return Projection(w_plus.detach(), [n.detach() for n in noises], history)


def _step(generator, optimizer, w_plus, noises, target, perceptual, config, t, spread, jitter_rng) -> float:
    """One projector update at progress ``t``; returns the loss before the update."""
    optimizer.param_groups[0]["lr"] = ramped_lr(t, config.lr, config.lr_rampup, config.lr_rampdown)
    strength = spread * config.noise * max(0.0, 1.0 - t / config.noise_ramp) ** 2
    jitter = torch.randn(w_plus.shape, generator=jitter_rng).to(w_plus.device) * strength
    loss = _losses(generator, w_plus + jitter, noises, target, perceptual, config).sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    normalize_noise_(noises)
    return loss.item()
