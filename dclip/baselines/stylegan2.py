"""StyleGAN2 generator in plain PyTorch, loading rosinality-layout checkpoints exactly.

The GAN baselines of the comparison notebook (StyleCLIP, StyleGAN-NADA) both run the
StyleGAN2 ``Generator`` of rosinality/stylegan2-pytorch and its checkpoints, e.g.
``stylegan2-ffhq-config-f.pt`` = ``{"g_ema": state_dict, "latent_avg": w_avg}``.
This module computes the same function with ordinary torch ops only (no compiled
``upfirdn2d`` / ``fused_bias_act`` extensions), so it runs on any device:

* :class:`Generator` has exactly rosinality's parameter and buffer names, so
  ``load_state_dict(ckpt["g_ema"], strict=True)`` works;
* :func:`infer_config` reads the architecture (resolution, style width, mapping
  depth, channel table) from a state dict's keys and shapes, nothing is assumed;
* :func:`load_stylegan2` finds the file (:func:`dclip.models.weights.resolve_file`), builds
  and loads the generator and returns ``(generator, latent_avg)``;
* :func:`tiny_stylegan2` builds a small random generator for CPU smoke runs.

The layers it is built from live in :mod:`dclip.baselines.stylegan2_layers` and are
re-exported here.

Shapes: ``z`` and ``w`` are ``(N, style_dim)``; ``w+`` is ``(N, n_latent, style_dim)``
with ``n_latent = 2 * log2(size) - 2`` (18 for 1024 px); images are ``(N, 3, size, size)``
in roughly ``[-1, 1]``.
"""
from __future__ import annotations

import math
import random
import re
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from dclip.models.weights import resolve_file

from .stylegan2_layers import (
    ACT_GAIN, BLUR_KERNEL, EPS, LEAKY_SLOPE, Blur, ConstantInput, EqualLinear, FusedLeakyReLU,
    ModulatedConv2d, NoiseInjection, PixelNorm, StyledConv, ToRGB, Upsample, fir_kernel, fused_leaky_relu,
    upfirdn2d,
)

__all__ = [
    "StyleGAN2Config", "Generator", "infer_config", "load_stylegan2", "tiny_stylegan2",
    "upfirdn2d", "fused_leaky_relu", "FFHQ_FILENAME", "FFHQ_REPO_ID", "FFHQ_URL",
    # re-exported from dclip.baselines.stylegan2_layers
    "fir_kernel", "PixelNorm", "EqualLinear", "FusedLeakyReLU", "Blur", "Upsample", "ModulatedConv2d",
    "NoiseInjection", "ConstantInput", "StyledConv", "ToRGB",
    "BLUR_KERNEL", "LEAKY_SLOPE", "ACT_GAIN", "EPS",
]

FFHQ_FILENAME = "stylegan2-ffhq-config-f.pt"
# A Hub copy of rosinality's converted FFHQ checkpoint (used by JoJoGAN's official demo).
FFHQ_REPO_ID = "akhaliq/jojogan-stylegan2-ffhq-config-f"
# The Google Drive file StyleCLIP (utils.py) and StyleGAN-NADA (README) download.
FFHQ_URL = "https://drive.google.com/uc?id=1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT"


# --------------------------------------------------------------------------------------------
# Architecture description
# --------------------------------------------------------------------------------------------

def rosinality_channels(size: int, channel_multiplier: int = 2) -> dict[int, int]:
    """rosinality's default channel table up to ``size`` (config-f: ``channel_multiplier=2``)."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier,
             128: 128 * channel_multiplier, 256: 64 * channel_multiplier,
             512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}
    return {res: ch for res, ch in table.items() if res <= size}


@dataclass(frozen=True)
class StyleGAN2Config:
    """Everything that fixes the generator's shapes (plus ``lr_mlp``, a runtime scale).

    ``channels`` maps each resolution 4, 8, ..., ``size`` to its feature width.
    """

    size: int
    style_dim: int
    n_mlp: int
    channels: dict[int, int] = field(default_factory=dict)
    lr_mlp: float = 0.01

    def __post_init__(self):
        log_size = math.log2(self.size) if self.size > 0 else -1
        if log_size != int(log_size) or self.size < 8:
            raise ValueError(f"StyleGAN2 size must be a power of two >= 8, got {self.size}")
        channels = {int(res): int(ch) for res, ch in (self.channels or rosinality_channels(self.size)).items()}
        needed = [2 ** i for i in range(2, int(log_size) + 1)]
        missing = [res for res in needed if res not in channels]
        if missing:
            raise ValueError(f"StyleGAN2 channel table lacks resolutions {missing} (has {sorted(channels)})")
        object.__setattr__(self, "channels", {res: channels[res] for res in needed})

    @property
    def log_size(self) -> int:
        return int(math.log2(self.size))

    @property
    def n_latent(self) -> int:
        """Number of W+ entries: one per styled layer plus the final ToRGB."""
        return 2 * self.log_size - 2

    @property
    def num_layers(self) -> int:
        """Number of noise inputs (styled convolutions)."""
        return 2 * (self.log_size - 2) + 1

    def to_dict(self) -> dict:
        """JSON-friendly form (channel keys as strings), the layout of the fixture's config json."""
        return {"size": self.size, "style_dim": self.style_dim, "n_mlp": self.n_mlp, "lr_mlp": self.lr_mlp,
                "channels": {str(res): ch for res, ch in self.channels.items()}}


def _shape(state_dict: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    """The shape of ``state_dict[key]``, or a ValueError naming the missing key."""
    if key not in state_dict:
        raise ValueError(f"StyleGAN2 state dict lacks key '{key}' (not a rosinality Generator state dict?)")
    return tuple(state_dict[key].shape)


def _indices(state_dict: Mapping[str, Tensor], pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` (one group) over the keys."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for key in state_dict if (m := regex.match(key))})


def infer_config(state_dict: Mapping[str, Tensor], *, lr_mlp: float = 0.01) -> StyleGAN2Config:
    """Read a rosinality ``Generator`` architecture from its state dict's keys and shapes.

    ``lr_mlp`` (the mapping network's learning-rate multiplier, 0.01 in every released model)
    scales the weights at run time and leaves no trace in the state dict, so it is passed in.
    """
    n_mlp = len(_indices(state_dict, r"style\.(\d+)\.weight$"))
    style_dim = _shape(state_dict, "conv1.conv.modulation.weight")[1]
    levels = _indices(state_dict, r"to_rgbs\.(\d+)\.")
    if levels != list(range(len(levels))):
        raise ValueError(f"StyleGAN2 state dict: to_rgbs indices {levels} are not 0..n-1")
    channels = {4: _shape(state_dict, "input.input")[1]}
    for level in levels:
        channels[2 ** (level + 3)] = _shape(state_dict, f"convs.{2 * level}.conv.weight")[1]
    return StyleGAN2Config(size=2 ** (len(levels) + 2), style_dim=style_dim, n_mlp=n_mlp,
                           channels=channels, lr_mlp=lr_mlp)


def _describe(keys: Sequence[str], limit: int = 5) -> str:
    keys = list(keys)
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------

class Generator(nn.Module):
    """StyleGAN2 generator (mapping network + synthesis network) in rosinality's layout.

    Call it as ``G(styles, input_is_latent=False, truncation=1.0, truncation_latent=None,
    randomize_noise=False, noise=None)`` -> ``(N, 3, size, size)`` images; see :meth:`forward`.
    ``latent_avg`` (a non-persistent buffer, not part of the state dict) is the default
    truncation centre; :func:`load_stylegan2` sets it from the checkpoint.
    """

    def __init__(self, config: StyleGAN2Config, blur_taps: Sequence[float] = BLUR_KERNEL):
        super().__init__()
        self.config = config
        self.size, self.style_dim, self.log_size = config.size, config.style_dim, config.log_size
        self.n_latent, self.num_layers = config.n_latent, config.num_layers
        ch = config.channels

        self.style = nn.Sequential(PixelNorm(), *[
            EqualLinear(config.style_dim, config.style_dim, lr_mul=config.lr_mlp, activate=True)
            for _ in range(config.n_mlp)])
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], config.style_dim, blur_taps=blur_taps)
        self.to_rgb1 = ToRGB(ch[4], config.style_dim, upsample=False, blur_taps=blur_taps)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = ch[4]
        for res in (2 ** i for i in range(3, self.log_size + 1)):
            self.convs.append(StyledConv(in_ch, ch[res], config.style_dim, upsample=True, blur_taps=blur_taps))
            self.convs.append(StyledConv(ch[res], ch[res], config.style_dim, blur_taps=blur_taps))
            self.to_rgbs.append(ToRGB(ch[res], config.style_dim, blur_taps=blur_taps))
            in_ch = ch[res]
        self.noises = nn.Module()
        for i, res in enumerate(self._noise_resolutions()):
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))
        self.register_buffer("latent_avg", None, persistent=False)

    def _noise_resolutions(self) -> list[int]:
        """Resolution of each noise input: 4, then two per level 8, 8, 16, 16, ..."""
        return [2 ** ((i + 5) // 2) for i in range(self.num_layers)]

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor], *, lr_mlp: float = 0.01) -> "Generator":
        """Build a generator shaped like ``state_dict`` and load it strictly (ValueError on mismatch)."""
        generator = cls(infer_config(state_dict, lr_mlp=lr_mlp))
        generator.load_strict(state_dict)
        return generator

    def load_strict(self, state_dict: Mapping[str, Tensor]) -> None:
        """``load_state_dict(strict=True)`` that raises ValueError naming the first offending keys."""
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing or unexpected:
            raise ValueError(f"StyleGAN2 state dict does not match the generator: missing keys "
                             f"[{_describe(missing)}]; unexpected keys [{_describe(unexpected)}]")
        wrong = [f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
                 if tuple(state_dict[k].shape) != tuple(v.shape)]
        if wrong:
            raise ValueError(f"StyleGAN2 state dict shapes differ (checkpoint != generator): {_describe(wrong, 3)}")
        self.load_state_dict(state_dict, strict=True)

    # -- latent helpers -------------------------------------------------------------------

    def mapping(self, z: Tensor) -> Tensor:
        """Map ``z`` ``(N, style_dim)`` to ``w`` ``(N, style_dim)`` (PixelNorm + MLP)."""
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, generator: torch.Generator | None = None) -> Tensor:
        """Average ``w`` over ``n`` random ``z`` (shape ``(1, style_dim)``); ``generator`` seeds them."""
        z = torch.randn(n, self.style_dim, generator=generator).to(self.input.input.device)
        return self.mapping(z).mean(0, keepdim=True)

    def make_noise(self, generator: torch.Generator | None = None) -> list[Tensor]:
        """A fresh list of noise maps, one per styled layer, shaped like the stored ones."""
        device = self.input.input.device
        return [torch.randn(1, 1, res, res, generator=generator).to(device) for res in self._noise_resolutions()]

    def stored_noise(self) -> list[Tensor]:
        """The checkpoint's fixed noise maps (``noises.noise_i``)."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    def to_w_plus(self, styles: Sequence[Tensor] | Tensor, *, input_is_latent: bool = False,
                  truncation: float = 1.0, truncation_latent: Tensor | None = None,
                  inject_index: int | None = None) -> Tensor:
        """Turn ``z``/``w``/``w+`` input(s) into the ``(N, n_latent, style_dim)`` code the synthesis uses.

        Two styles mix: the first drives entries ``[:inject_index]``, the second the rest
        (``inject_index=None`` draws it at random in ``[1, n_latent-1]``, like rosinality).
        """
        styles = [styles] if isinstance(styles, Tensor) else list(styles)
        if len(styles) not in (1, 2):
            raise ValueError(f"expected one style tensor (or two for mixing), got {len(styles)}")
        if not input_is_latent:
            styles = [self.mapping(s) for s in styles]
        if truncation != 1:
            centre = self._truncation_centre(truncation_latent)
            styles = [centre + truncation * (s - centre) for s in styles]
        codes = [self._broadcast(s) for s in styles]
        if len(codes) == 1:
            return codes[0]
        if inject_index is None:
            inject_index = random.randint(1, self.n_latent - 1)
        return torch.cat([codes[0][:, :inject_index], codes[1][:, inject_index:]], dim=1)

    def _truncation_centre(self, truncation_latent: Tensor | None) -> Tensor:
        if truncation_latent is not None:
            return truncation_latent
        if self.latent_avg is None:
            raise ValueError("truncation needs truncation_latent (or a generator whose latent_avg is set, "
                             "e.g. from load_stylegan2)")
        return self.latent_avg

    def _broadcast(self, style: Tensor) -> Tensor:
        """``(N, D)`` -> ``(N, n_latent, D)`` by repetition; ``(N, n_latent, D)`` passes through."""
        if style.ndim == 2:
            return style.unsqueeze(1).expand(-1, self.n_latent, -1)
        if style.ndim == 3 and style.shape[1] == self.n_latent:
            return style
        raise ValueError(f"style of shape {tuple(style.shape)} is neither (N, {self.style_dim}) nor "
                         f"(N, {self.n_latent}, {self.style_dim})")

    def _resolve_noise(self, noise: Sequence[Tensor | None] | None, randomize_noise: bool) -> list:
        if noise is None:
            return [None] * self.num_layers if randomize_noise else self.stored_noise()
        noise = list(noise)
        if len(noise) != self.num_layers:
            raise ValueError(f"noise must list {self.num_layers} maps (one per styled layer), got {len(noise)}")
        return noise

    # -- synthesis ------------------------------------------------------------------------

    def synthesis(self, w_plus: Tensor, noise: Sequence[Tensor | None] | None = None,
                  randomize_noise: bool = False) -> Tensor:
        """Render ``(N, n_latent, style_dim)`` codes to ``(N, 3, size, size)`` images."""
        noise = self._resolve_noise(noise, randomize_noise)
        out = self.conv1(self.input(w_plus.shape[0]), w_plus[:, 0], noise[0])
        rgb = self.to_rgb1(out, w_plus[:, 1])
        for level, to_rgb in enumerate(self.to_rgbs):
            i = 2 * level + 1
            out = self.convs[i - 1](out, w_plus[:, i], noise[i])
            out = self.convs[i](out, w_plus[:, i + 1], noise[i + 1])
            rgb = to_rgb(out, w_plus[:, i + 2], rgb)
        return rgb

    def forward(self, styles: Sequence[Tensor] | Tensor, input_is_latent: bool = False, truncation: float = 1.0,
                truncation_latent: Tensor | None = None, randomize_noise: bool = False,
                noise: Sequence[Tensor | None] | None = None, inject_index: int | None = None,
                return_latents: bool = False):
        """Generate images.

        Args:
            styles: a list with one tensor: ``z`` ``(N, style_dim)``, or with ``input_is_latent=True``
                ``w`` ``(N, style_dim)`` or ``w+`` ``(N, n_latent, style_dim)``. Two tensors mix styles
                at ``inject_index``. A bare tensor is taken as a one-element list.
            input_is_latent: skip the mapping network (the input is already in W / W+).
            truncation: ``psi``; codes move to ``centre + psi * (w - centre)`` when ``psi != 1``.
            truncation_latent: the centre; defaults to ``self.latent_avg``.
            randomize_noise: draw fresh noise (else use the stored ``noises.noise_i``).
            noise: explicit noise maps, one per styled layer (entries may be ``None`` = random).
            return_latents: also return the ``w+`` code used.

        Returns:
            ``(N, 3, size, size)`` images, or ``(images, w_plus)`` with ``return_latents``.
        """
        w_plus = self.to_w_plus(styles, input_is_latent=input_is_latent, truncation=truncation,
                                truncation_latent=truncation_latent, inject_index=inject_index)
        image = self.synthesis(w_plus, noise=noise, randomize_noise=randomize_noise)
        return (image, w_plus) if return_latents else image


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

def _read_checkpoint(path, map_location) -> dict:
    """``torch.load`` a rosinality checkpoint safely (tensors only)."""
    from ..models.folder import read_torch_file

    ckpt = read_torch_file(path, "StyleGAN2 checkpoint ({'g_ema': ..., 'latent_avg': ...})")
    if not isinstance(ckpt, Mapping) or "g_ema" not in ckpt:
        found = list(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise ValueError(f"StyleGAN2 checkpoint '{path}' has no 'g_ema' entry (found {found}); expected "
                         f"rosinality's {{'g_ema': state_dict, 'latent_avg': tensor}}")
    return ckpt


def load_stylegan2(source=None, *, device: str | torch.device = "cpu",
                   lr_mlp: float = 0.01) -> tuple[Generator, Tensor]:
    """Load a rosinality StyleGAN2 checkpoint; returns ``(generator, latent_avg)``.

    Args:
        source: path of a ``{"g_ema", "latent_avg"}`` checkpoint, or ``None`` for the FFHQ 1024 px
            generator ``stylegan2-ffhq-config-f.pt`` found through :func:`dclip.models.weights.resolve_file`
            (weights folder, then the HF Hub cache / download).
        device: where the generator lives.
        lr_mlp: the mapping network's learning-rate multiplier (0.01 in released models).

    The architecture is read from the state dict's shapes and the weights load strictly
    (ValueError naming the offending keys otherwise). The generator is in eval mode, its
    parameters still require grad, and ``generator.latent_avg`` is set. A checkpoint without
    ``latent_avg`` gets the mean of 4096 mapped random ``z`` (seed 0) and a warning.
    """
    path = resolve_file(source, filename=FFHQ_FILENAME, repo_id=FFHQ_REPO_ID, url=FFHQ_URL,
                        what="StyleGAN2 FFHQ generator")
    ckpt = _read_checkpoint(path, map_location="cpu")
    generator = Generator.from_state_dict(ckpt["g_ema"], lr_mlp=lr_mlp)
    latent_avg = ckpt.get("latent_avg")
    if latent_avg is None:
        warnings.warn(f"StyleGAN2 checkpoint '{path}' has no 'latent_avg'; using the mean of 4096 mapped "
                      f"random z (seed 0) instead", stacklevel=2)
        latent_avg = generator.mean_latent(4096, torch.Generator().manual_seed(0))[0]
    generator.latent_avg = latent_avg.detach().to(torch.float32).clone()
    generator = generator.to(device).eval()
    return generator, generator.latent_avg


def tiny_stylegan2(size: int = 32, seed: int = 0, *, style_dim: int = 32, n_mlp: int = 2, channels: int = 16,
                   device: str | torch.device = "cpu") -> tuple[Generator, Tensor]:
    """A small random-weight generator for CPU smoke runs; returns ``(generator, latent_avg)`` like
    :func:`load_stylegan2`.

    Weights follow rosinality's initialisation (noise strengths 0, modulation bias 1), drawn
    from ``seed`` without touching the global RNG; ``latent_avg`` is the mean of 1024 mapped z.
    """
    config = StyleGAN2Config(size=size, style_dim=style_dim, n_mlp=n_mlp,
                             channels={2 ** i: channels for i in range(2, int(math.log2(size)) + 1)})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = Generator(config)
    generator.latent_avg = generator.mean_latent(1024, torch.Generator().manual_seed(seed))[0]
    generator = generator.to(device).eval()
    return generator, generator.latent_avg
