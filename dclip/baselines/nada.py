"""StyleGAN-NADA (Gal et al., SIGGRAPH 2022; arXiv 2021) -- the out-of-domain GAN baseline of Fig. 5 / Table 3.

A copy of the generator is fine-tuned so that, for the same latent, the change from the frozen
generator's image to the copy's follows the CLIP text direction -- the directional CLIP loss that
DiffusionCLIP adopted (eq. 9, :func:`dclip.method.losses.directional_clip_loss`; the same code here).
As NADA's ``ZSSGAN/train.py`` and ``model/ZSSGAN.py`` do it:

* each iteration draws ``batch`` fresh z ~ N(0, I) (no style mixing, no truncation), maps them with
  the frozen mapping network, renders them with both generators (random noise maps) and takes the
  loss of the pair;
* trained: the learned constant, ``conv1`` and every synthesis convolution (with its style
  modulation); frozen: the mapping network and all ToRGB layers (NADA's manual layer set,
  "everything except mapping and ToRGB");
* Adam with StyleGAN2's lazy-regularisation scaling ``c = 4/5``: lr ``0.002 * c``, betas
  ``(0, 0.99 ** c)``; 300 iterations (``--iter 301``), batch 2;
* CLIP ViT-B/32 and ViT-B/16, each model's loss weighted (1.0 each in NADA); dclip averages them with
  those weights, which Adam makes equivalent to NADA's weighted sum (up to its epsilon).

NADA's README run also enables adaptive layer selection with ``k = 18`` for the 18-entry FFHQ
generator; choosing the top 18 of 18 W+ entries selects every candidate layer, so it only differs
from the fixed set above in training ``to_rgb1`` instead of the learned constant. Not reproduced.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

from ..models.clip import Clip

from ..method.losses import directional_clip_loss, text_direction
from .common import clip_view, steps

__all__ = ["NadaConfig", "NadaResult", "nada_finetune", "trainable_modules", "nada_loss"]

#: StyleGAN2's lazy-regularisation factor NADA keeps for Adam (g_reg_every = 4 -> 4 / 5).
_REG_RATIO = 4 / 5


@dataclass(frozen=True)
class NadaConfig:
    """StyleGAN-NADA settings (defaults: its README's FFHQ run); ``seed`` fixes z and noise draws."""

    iterations: int = 301
    batch: int = 2
    lr: float = 0.002
    reg_ratio: float = _REG_RATIO   # lr * ratio, betas (0, 0.99 ** ratio)
    seed: int = 2                   # NADA seeds its sampling with 2

    def __post_init__(self):
        if self.iterations < 1 or self.batch < 1 or self.lr <= 0:
            raise ValueError("NadaConfig needs iterations >= 1, batch >= 1 and lr > 0")


@dataclass
class NadaResult:
    """The fine-tuned generator copy and the (weighted mean) directional loss of every iteration."""

    generator: torch.nn.Module
    history: list[float] = field(default_factory=list)


def trainable_modules(generator) -> list[torch.nn.Module]:
    """NADA's trained layers: the learned constant, ``conv1`` and all synthesis convolutions."""
    return [generator.input, generator.conv1, generator.convs]


def _trainable_copy(generator):
    """A deep copy with only :func:`trainable_modules` requiring gradients."""
    trainable = copy.deepcopy(generator).requires_grad_(False)
    for module in trainable_modules(trainable):
        module.requires_grad_(True)
    return trainable


def _weights(clips: Sequence[Clip], clip_weights: Sequence[float] | None) -> list[float]:
    if not clips:
        raise ValueError("StyleGAN-NADA needs at least one CLIP model")
    weights = [1.0] * len(clips) if clip_weights is None else [float(w) for w in clip_weights]
    if len(weights) != len(clips) or sum(weights) <= 0:
        raise ValueError(f"clip_weights must give one non-negative weight per CLIP model ({len(clips)}), "
                         f"not all zero; got {clip_weights}")
    return weights


def nada_loss(frozen_image: Tensor, trained_image: Tensor, source: str, target: str, clips: Sequence[Clip],
              clip_weights: Sequence[float] | None = None) -> Tensor:
    """Weighted mean over CLIP models of the batch-mean directional loss (eq. 9), a scalar.

    When both images are identical (the first iteration of a generator without noise), the image
    direction would be zero; as NADA does, the trained image is then nudged by 1e-6.
    """
    weights = _weights(clips, clip_weights)
    if torch.equal(frozen_image, trained_image):
        trained_image = trained_image + 1e-6
    total = 0.0
    for clip, weight in zip(clips, weights):
        direction = text_direction(clip, source, target)
        size = clip.image_size
        loss = directional_clip_loss(clip, clip_view(frozen_image, size), clip_view(trained_image, size),
                                     direction).mean()
        total = total + weight * loss.to(frozen_image.device)
    return total / sum(weights)


def _step(frozen_generator, trainable, optimizer, z: Tensor, source, target, clips, clip_weights) -> float:
    with torch.no_grad():
        w = frozen_generator.mapping(z)
        frozen_image = frozen_generator([w], input_is_latent=True, randomize_noise=True)
    trained_image = trainable([w], input_is_latent=True, randomize_noise=True)
    loss = nada_loss(frozen_image, trained_image, source, target, clips, clip_weights)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def nada_finetune(generator, source: str, target: str, *, clips: Sequence[Clip],
                  clip_weights: Sequence[float] | None = None, config: NadaConfig = NadaConfig(),
                  progress: bool | None = None) -> NadaResult:
    """Fine-tune a copy of ``generator`` from ``source`` to ``target`` text (e.g. "photo" -> "sketch").

    Args:
        generator: the pretrained :class:`dclip.baselines.stylegan2.Generator`; never modified (it plays
            NADA's frozen generator, run without gradients).
        source, target: the text pair of the CLIP direction.
        clips: CLIP models (NADA: OpenAI ViT-B/32 and ViT-B/16; tests: ``[tiny_clip()]``).
        clip_weights: one weight per model (default 1.0 each).
        config: iterations, batch, learning rate, seed.
        progress: tqdm bar (default ``$DCLIP_PROGRESS``).

    Returns:
        :class:`NadaResult` with the fine-tuned copy (eval mode, gradients off) and the loss history.
        Render edits with ``result.generator([w_plus], input_is_latent=True, noise=...)``.
    """
    device = generator.input.input.device
    trainable = _trainable_copy(generator).train()
    params = [p for p in trainable.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr * config.reg_ratio,
                                 betas=(0.0, 0.99 ** config.reg_ratio))
    history = []
    # NADA seeds the global RNG (z draws and the renders' random noise maps); here it is forked so the
    # caller's RNG state is left as it was.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        for _ in steps(config.iterations, f"StyleGAN-NADA '{target}'", progress):
            z = torch.randn(config.batch, generator.style_dim, device=device)
            history.append(_step(generator, trainable, optimizer, z, source, target, clips, clip_weights))
    return NadaResult(trainable.eval().requires_grad_(False), history)
