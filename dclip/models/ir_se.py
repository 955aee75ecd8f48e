"""ResNet-IR-SE: the trunk shared by ArcFace IR-SE50 (identity) and the e4e encoder (GAN inversion).

The "improved residual" unit of ArcFace (Deng et al., 2019, Sec. 3.2; InsightFace's
``bottleneck_IR_SE``) with a squeeze-and-excitation gate (Hu et al., 2018):

    y = shortcut(x) + SE(BN(conv3x3_s(PReLU(conv3x3(BN(x))))))

where the second convolution carries the stage's stride, and the shortcut is a strided identity
(1x1 max-pool) when the width stays, else a strided 1x1 convolution + BN. IR-SE50 stacks
3, 4, 14 and 3 units of widths 64, 128, 256 and 512 (:data:`STAGES_50`), each stage starting with a
stride-2 unit, after an input layer conv3x3(3 -> 64) + BN + PReLU. ArcFace and e4e both build the
trunk with :func:`input_layer` and :func:`body`, so their parameter names match the original
state dicts (``input_layer.0.weight``, ``body.3.shortcut_layer.0.weight``,
``body.0.res_layer.5.fc1.weight`` ...). :func:`load_strict` loads such a state dict with an error
that names the offending keys; :func:`read_weights` reads a file with ``weights_only=True``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["STAGES_50", "SE_REDUCTION", "SEModule", "BottleneckIRSE", "input_layer", "body", "stage_ends",
           "load_strict", "read_weights"]

#: IR-SE50's stages as (width, units); every stage's first unit has stride 2.
STAGES_50: tuple[tuple[int, int], ...] = ((64, 3), (128, 4), (256, 14), (512, 3))

#: Squeeze-and-excitation bottleneck ratio.
SE_REDUCTION = 16


class SEModule(nn.Module):
    """Channel gate: x * sigmoid(fc2(relu(fc1(mean over H, W of x)))); both fcs are bias-free 1x1 convs."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION):
        super().__init__()
        hidden = channels // reduction
        if hidden < 1:
            raise ValueError(f"SE gate of {channels} channels with reduction {reduction} has no hidden unit; "
                             f"use at least {reduction} channels")
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=False)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class BottleneckIRSE(nn.Module):
    """One IR-SE unit, ``in_channels`` -> ``depth`` with stride ``stride`` (see the module docstring)."""

    def __init__(self, in_channels: int, depth: int, stride: int, reduction: int = SE_REDUCTION):
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False),
                                                nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth, reduction),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def input_layer(width: int = 64) -> nn.Sequential:
    """conv3x3(3 -> width, no bias) + BN + PReLU, at full resolution."""
    return nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width))


def body(stages: Sequence[tuple[int, int]] = STAGES_50, in_width: int | None = None,
         reduction: int = SE_REDUCTION) -> nn.Sequential:
    """The IR-SE units of every stage in one flat ``Sequential`` (indices as in the original ``body``).

    ``in_width`` is the input layer's width (default: the first stage's); each stage halves the size.
    """
    units, width = [], stages[0][0] if in_width is None else in_width
    for depth, n in stages:
        units.append(BottleneckIRSE(width, depth, 2, reduction))
        units.extend(BottleneckIRSE(depth, depth, 1, reduction) for _ in range(n - 1))
        width = depth
    return nn.Sequential(*units)


def stage_ends(stages: Sequence[tuple[int, int]] = STAGES_50) -> list[int]:
    """Index in :func:`body` of each stage's last unit (IR-SE50: 2, 6, 20, 23)."""
    ends, total = [], 0
    for _, n in stages:
        total += n
        ends.append(total - 1)
    return ends


def _describe(keys, limit: int = 6) -> str:
    """The first few keys, and how many fall under each top-level name when there are more."""
    keys = sorted(keys)
    if len(keys) <= limit:
        return ", ".join(keys)
    groups: dict[str, int] = {}
    for key in keys:
        groups[key.split(".")[0]] = groups.get(key.split(".")[0], 0) + 1
    return (", ".join(keys[:limit]) + f" ... (by module: "
            + ", ".join(f"{name} {n}" for name, n in groups.items()) + ")")


def load_strict(module: nn.Module, state: Mapping[str, Tensor], what: str) -> nn.Module:
    """Load ``state`` into ``module`` only if keys and shapes match exactly; ValueError naming them otherwise.

    A module built on the ``meta`` device (no memory, no random init) takes the tensors as they are.
    """
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{what}: expected a state dict of tensors, got {type(state).__name__}")
    expected = module.state_dict()
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    shapes = [f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
              for k in sorted(set(expected) & set(state)) if state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_describe(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_describe(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches: {'; '.join(shapes[:4])}{' ...' if len(shapes) > 4 else ''}")
    if problems:
        raise ValueError(f"{what}: the weights do not fit the architecture (a truncated or different file?):\n  "
                         + "\n  ".join(problems))
    meta = any(t.is_meta for t in expected.values())
    with torch.no_grad():
        module.load_state_dict(state, strict=True, assign=meta)
    return module


def read_weights(path, what: str):
    """``torch.load(path, weights_only=True)`` on the CPU: :func:`dclip.models.folder.read_torch_file`, whose
    errors say in one line what is wrong with the file."""
    from .folder import read_torch_file

    return read_torch_file(path, what)
