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

Shapes: ``z`` and ``w`` are ``(N, style_dim)``; ``w+`` is ``(N, n_latent, style_dim)``
with ``n_latent = 2 * log2(size) - 2`` (18 for 1024 px); images are ``(N, 3, size, size)``
in roughly ``[-1, 1]``.
"""
from __future__ import annotations

import math
import pickle
import random
import re
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dclip.models.weights import resolve_file

__all__ = [
    "StyleGAN2Config", "Generator", "infer_config", "load_stylegan2", "tiny_stylegan2",
    "upfirdn2d", "fused_leaky_relu", "FFHQ_FILENAME", "FFHQ_REPO_ID", "FFHQ_URL",
]

FFHQ_FILENAME = "stylegan2-ffhq-config-f.pt"
# A Hub copy of rosinality's converted FFHQ checkpoint (used by JoJoGAN's official demo).
FFHQ_REPO_ID = "akhaliq/jojogan-stylegan2-ffhq-config-f"
# The Google Drive file StyleCLIP (utils.py) and StyleGAN-NADA (README) download.
FFHQ_URL = "https://drive.google.com/uc?id=1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT"

BLUR_KERNEL = (1, 3, 3, 1)
LEAKY_SLOPE = 0.2
ACT_GAIN = math.sqrt(2.0)
EPS = 1e-8


# --------------------------------------------------------------------------------------------
# Plain-torch versions of rosinality's compiled ops
# --------------------------------------------------------------------------------------------

def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Upsample by zero insertion, pad, apply a 2-D FIR filter, then subsample (NCHW).

    ``pad = (before, after)`` applies to both spatial axes; negative values crop. The filter is
    applied as a true convolution (flipped kernel), like the reference CUDA op.
    """
    n, c, h, w = x.shape
    out = x.reshape(n * c, 1, h, w)
    if up > 1:
        out = out.reshape(n * c, 1, h, 1, w, 1)
        out = F.pad(out, [0, up - 1, 0, 0, 0, up - 1])
        out = out.reshape(n * c, 1, h * up, w * up)
    before, after = pad
    out = F.pad(out, [max(before, 0), max(after, 0), max(before, 0), max(after, 0)])
    out = out[:, :, max(-before, 0): out.shape[2] - max(-after, 0),
              max(-before, 0): out.shape[3] - max(-after, 0)]
    taps = torch.flip(kernel, [0, 1]).reshape(1, 1, *kernel.shape).to(out.dtype)
    out = F.conv2d(out, taps)
    out = out[:, :, ::down, ::down]
    return out.reshape(n, c, out.shape[2], out.shape[3])


def fused_leaky_relu(x: Tensor, bias: Tensor | None = None, negative_slope: float = LEAKY_SLOPE,
                     scale: float = ACT_GAIN) -> Tensor:
    """``leaky_relu(x + bias) * scale`` with ``bias`` added along dimension 1."""
    if bias is not None:
        x = x + bias.reshape(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope=negative_slope) * scale


def fir_kernel(taps: Sequence[float], gain: float = 1.0) -> Tensor:
    """The normalised 2-D outer product of 1-D ``taps``, times ``gain``."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum() * gain


# --------------------------------------------------------------------------------------------
# Layers (attribute names follow rosinality's so state dict keys match)
# --------------------------------------------------------------------------------------------

class PixelNorm(nn.Module):
    """Scale each vector to unit root-mean-square over its last dimension."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + EPS)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights scaled by ``lr_mul / sqrt(in_dim)``."""

    def __init__(self, in_dim: int, out_dim: int, *, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class FusedLeakyReLU(nn.Module):
    """Per-channel bias followed by the gain-corrected leaky ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return fused_leaky_relu(x, self.bias)


class Blur(nn.Module):
    """FIR low-pass filter with fixed padding (the anti-aliasing after a transposed conv)."""

    def __init__(self, taps: Sequence[float], pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps, gain))
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x FIR upsampling (used on the RGB skip path)."""

    def __init__(self, taps: Sequence[float], factor: int = 2):
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps, factor ** 2))
        excess = len(taps) - factor
        self.factor = factor
        self.pad = ((excess + 1) // 2 + factor - 1, excess // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Convolution whose weights are scaled per sample by the style (and optionally demodulated).

    With ``upsample`` the resolution doubles: stride-2 transposed convolution, then a blur.
    All samples run as one grouped convolution, as in the reference implementation.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int, *,
                 demodulate: bool = True, upsample: bool = False, blur_taps: Sequence[float] = BLUR_KERNEL):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.padding = kernel_size // 2
        if upsample:
            factor = 2
            excess = (len(blur_taps) - factor) - (kernel_size - 1)
            pad = ((excess + 1) // 2 + factor - 1, excess // 2 + 1)
            self.blur = Blur(blur_taps, pad=pad, gain=factor ** 2)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"upsample={self.upsample}, demodulate={self.demodulate}")

    def _sample_weights(self, style: Tensor) -> Tensor:
        """Per-sample kernels ``(N, out, in, k, k)``: modulated, then demodulated if enabled."""
        gains = self.modulation(style).reshape(style.shape[0], 1, self.in_channels, 1, 1)
        weight = self.scale * self.weight * gains
        if self.demodulate:
            norm = torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4)) + EPS)
            weight = weight * norm.reshape(style.shape[0], self.out_channels, 1, 1, 1)
        return weight

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        n, _, h, w = x.shape
        k = self.kernel_size
        weight = self._sample_weights(style)
        x = x.reshape(1, n * self.in_channels, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(n * self.in_channels, self.out_channels, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, padding=0, groups=n)
            out = out.reshape(n, self.out_channels, out.shape[2], out.shape[3])
            return self.blur(out)
        weight = weight.reshape(n * self.out_channels, self.in_channels, k, k)
        out = F.conv2d(x, weight, padding=self.padding, groups=n)
        return out.reshape(n, self.out_channels, out.shape[2], out.shape[3])


class NoiseInjection(nn.Module):
    """Add single-channel noise scaled by a learned scalar."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        if noise is None:
            noise = x.new_empty(x.shape[0], 1, x.shape[2], x.shape[3]).normal_()
        return x + self.weight * noise


class ConstantInput(nn.Module):
    """The learned 4x4 starting tensor, repeated over the batch."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.input.repeat(batch, 1, 1, 1)


class StyledConv(nn.Module):
    """Modulated 3x3 convolution, noise, bias and activation."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, *, upsample: bool = False,
                 blur_taps: Sequence[float] = BLUR_KERNEL):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_dim, upsample=upsample,
                                    blur_taps=blur_taps)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None = None) -> Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    """1x1 modulated projection to RGB, added to the upsampled RGB of the previous level."""

    def __init__(self, in_channels: int, style_dim: int, *, upsample: bool = True,
                 blur_taps: Sequence[float] = BLUR_KERNEL):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_taps)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


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
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"StyleGAN2 checkpoint '{path}' holds more than tensors (e.g. training args) and "
                         f"cannot be read with weights_only=True; re-save just "
                         f"{{'g_ema': ..., 'latent_avg': ...}}. ({err})") from err
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
