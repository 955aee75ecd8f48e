"""The building blocks of the StyleGAN2 generator in :mod:`dclip.baselines.stylegan2`.

Plain-torch versions of rosinality's compiled ops (:func:`upfirdn2d`, :func:`fused_leaky_relu`,
:func:`fir_kernel`) and the layers built on them: :class:`PixelNorm` and :class:`EqualLinear`
(the mapping network), :class:`ModulatedConv2d`, :class:`NoiseInjection`, :class:`ConstantInput`,
:class:`StyledConv` and :class:`ToRGB` (the synthesis network), with :class:`FusedLeakyReLU`,
:class:`Blur` and :class:`Upsample`. Attribute names follow rosinality's, so a generator built from
them has its state dict keys. Everything here is re-exported by :mod:`dclip.baselines.stylegan2`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "upfirdn2d", "fused_leaky_relu", "fir_kernel",
    "PixelNorm", "EqualLinear", "FusedLeakyReLU", "Blur", "Upsample", "ModulatedConv2d",
    "NoiseInjection", "ConstantInput", "StyledConv", "ToRGB",
    "BLUR_KERNEL", "LEAKY_SLOPE", "ACT_GAIN", "EPS",
]

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
    out = x
    if up > 1:
        out = out.reshape(n, c, h, 1, w, 1)
        out = F.pad(out, [0, up - 1, 0, 0, 0, up - 1])
        out = out.reshape(n, c, h * up, w * up)
    before, after = pad
    out = F.pad(out, [max(before, 0), max(after, 0), max(before, 0), max(after, 0)])
    out = out[:, :, max(-before, 0): out.shape[2] - max(-after, 0),
              max(-before, 0): out.shape[3] - max(-after, 0)]
    # one depthwise convolution (groups = channels): many times faster on a CPU than a one-channel batch
    taps = torch.flip(kernel, [0, 1]).reshape(1, 1, *kernel.shape).to(out.dtype).expand(c, 1, *kernel.shape)
    out = F.conv2d(out, taps, groups=c)
    return out[:, :, ::down, ::down]


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
    On a GPU, without gradients in eval mode, all samples run as one grouped convolution, as in the reference
    implementation; in training mode, under autograd or on a CPU the same function runs unfused
    (:meth:`_unfused`: 4x faster than the grouped form on a CPU, equal to it within float rounding).
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
        if self.training or torch.is_grad_enabled() or x.device.type == "cpu":
            return self._unfused(x, style)
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


    def _unfused(self, x: Tensor, style: Tensor) -> Tensor:
        """The same function with one shared kernel: scale the input channels by the style, convolve, scale the
        output channels by the demodulation factors (StyleGAN2-ADA's ``fused_modconv=False``, which it uses in
        training mode: ordinary convolutions, several times faster to differentiate on a CPU than grouped ones)."""
        gains = self.modulation(style).reshape(x.shape[0], self.in_channels, 1, 1)
        weight = self.scale * self.weight[0]
        x = x * gains
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2, padding=0))
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:  # sum over (in, k, k) of (w * s)^2 = s^2 @ (sum over k, k of w^2)
            energy = gains.reshape(x.shape[0], self.in_channels).pow(2) @ weight.pow(2).sum(dim=(2, 3)).t()
            out = out * torch.rsqrt(energy + EPS).reshape(x.shape[0], -1, 1, 1)
        return out


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
