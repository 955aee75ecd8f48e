"""The StyleGAN2 discriminator (Karras et al., 2020, Appendix B: the residual D), in rosinality's layout.

Only training needs it: :mod:`dclip.baselines.stylegan2_training` trains the toy world's StyleGAN2 with it.
It follows rosinality/stylegan2-pytorch's ``Discriminator``: a 1x1 ``fromRGB`` convolution, one
:class:`ResBlock` per resolution down to 4 px (blur, then a stride-2 convolution, on both paths; the sum
scaled by 1/sqrt(2)), the minibatch standard deviation feature (groups of 4, one feature), a 3x3
convolution and two equalised linear layers to one logit. Every weight has the equalised learning rate.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .stylegan2_layers import BLUR_KERNEL, Blur, EqualLinear, FusedLeakyReLU

__all__ = ["EqualConv2d", "ConvLayer", "ResBlock", "Discriminator"]


class EqualConv2d(nn.Module):
    """A convolution with equalised learning rate (weights scaled by ``1 / sqrt(fan_in)`` at run time)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.stride, self.padding = stride, padding
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class ConvLayer(nn.Sequential):
    """[blur] + equalised convolution (stride 2 when ``downsample``) + [bias and leaky ReLU]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, downsample: bool = False,
                 bias: bool = True, activate: bool = True):
        layers: list[nn.Module] = []
        if downsample:
            excess = (len(BLUR_KERNEL) - 2) + (kernel_size - 1)
            layers.append(Blur(BLUR_KERNEL, pad=((excess + 1) // 2, excess // 2)))
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride=2 if downsample else 1,
                                  padding=0 if downsample else kernel_size // 2, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channels))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Two 3x3 convolutions (the second halves the resolution) beside a 1x1 downsampling skip."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, bias=False, activate=False)

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    """``D(images) -> (N, 1)`` logits; ``channels`` maps each resolution 4 ... ``size`` to its width (the
    generator's table, :attr:`dclip.baselines.stylegan2.StyleGAN2Config.channels`)."""

    def __init__(self, size: int, channels: dict[int, int], *, stddev_group: int = 4):
        super().__init__()
        log_size = int(math.log2(size))
        layers: list[nn.Module] = [ConvLayer(3, channels[size], 1)]
        width = channels[size]
        for i in range(log_size, 2, -1):
            layers.append(ResBlock(width, channels[2 ** (i - 1)]))
            width = channels[2 ** (i - 1)]
        self.convs = nn.Sequential(*layers)
        self.stddev_group = stddev_group
        self.final_conv = ConvLayer(width + 1, channels[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(channels[4] * 16, channels[4], activate=True),
                                          EqualLinear(channels[4], 1))

    def minibatch_stddev(self, x: Tensor) -> Tensor:
        """Append one feature map: the standard deviation over groups of samples, averaged (Karras et al. 2018)."""
        n, c, h, w = x.shape
        group = min(n, self.stddev_group)
        if n % group:
            group = 1
        std = torch.sqrt(x.reshape(group, -1, 1, c, h, w).var(0, unbiased=False) + 1e-8)
        std = std.mean([2, 3, 4], keepdim=True).squeeze(2).repeat(group, 1, h, w)
        return torch.cat([x, std], 1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.final_conv(self.minibatch_stddev(self.convs(x)))
        return self.final_linear(out.reshape(out.shape[0], -1))
