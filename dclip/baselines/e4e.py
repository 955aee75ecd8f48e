"""e4e: encoder-based GAN inversion, where the paper's StyleCLIP edits start (Table 1's "e4e" row).

Encoder4Editing (Tov et al., 2021) maps a 256 px FFHQ-aligned face to StyleGAN2's W+ in one pass:

* the IR-SE50 trunk (:mod:`dclip.models.ir_se`, the same one ArcFace uses) gives feature maps at three
  scales -- c1 (stage 2, 1/4 size, 128 ch), c2 (stage 3, 1/8, 256 ch), c3 (stage 4, 1/16, 512 ch);
* an FPN-style top-down path: p2 = up(c3) + latlayer1(c2), p1 = up(p2) + latlayer2(c1)
  (bilinear, align_corners=True);
* one "map2style" block per W+ entry (stride-2 conv3x3 + LeakyReLU until 1x1, then an
  equalised linear layer): entry 0 reads c3 and gives w0; entries 1-2 read c3, 3-6 read p2, 7-17
  read p1 and give offsets Δ_i;
* the code is w_i = w0 + Δ_i for i >= 1 (the inference stage uses every offset), and pSp adds the
  generator's average latent: W+ = w + latent_avg.

:func:`load_e4e` reads the released ``e4e_ffhq_encode.pt`` (``{'state_dict': {'encoder.*',
'decoder.*'}, 'latent_avg', 'opts'}``) with ``torch.load(weights_only=True)``; the decoder is a
rosinality StyleGAN2 generator and loads into :class:`dclip.baselines.stylegan2.Generator`.
:func:`tiny_e4e` builds a small seeded encoder for a tiny generator (smoke profile).
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import ir_se
from .framing import resize_faces
from .stylegan2 import EqualLinear, Generator
from ..models.weights import resolve_file

__all__ = ["E4E_FILE", "E4E_URL", "E4E_INPUT_SIZE", "COARSE", "MIDDLE", "GradualStyleBlock", "Encoder4Editing",
           "E4E", "load_e4e", "tiny_e4e"]

#: The released FFHQ encoder (e4e README, "FFHQ Inversion").
E4E_FILE = "e4e_ffhq_encode.pt"
E4E_URL = "https://drive.google.com/file/d/1cUv_reLE6k3604or78EranS7XzuVMWeO/view"

#: Side of the faces the released encoder takes.
E4E_INPUT_SIZE = 256

#: W+ entries [0, COARSE) read c3, [COARSE, MIDDLE) read p2, the rest read p1.
COARSE, MIDDLE = 3, 7


class GradualStyleBlock(nn.Module):
    """map2style: ``log2(spatial)`` stride-2 conv3x3 + LeakyReLU(0.01) down to 1x1, then an equalised linear."""

    def __init__(self, in_channels: int, out_channels: int, spatial: int):
        super().__init__()
        layers, width = [], in_channels
        for _ in range(max(int(math.log2(spatial)), 1)):
            layers += [nn.Conv2d(width, out_channels, 3, stride=2, padding=1), nn.LeakyReLU()]
            width = out_channels
        self.out_channels = out_channels
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.convs(x).reshape(-1, self.out_channels))


def _upsample_add(top: Tensor, lateral: Tensor) -> Tensor:
    """FPN merge: ``top`` resized bilinearly (align_corners=True) to ``lateral``'s size, plus ``lateral``."""
    return F.interpolate(top, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral


class Encoder4Editing(nn.Module):
    """e4e's encoder: ``(N, 3, S, S)`` faces in [-1, 1] -> ``(N, n_styles, style_dim)`` codes, before latent_avg.

    Defaults are the released FFHQ model (IR-SE50 trunk, 18 entries for a 1024 px generator,
    512-d styles, 256 px input); smaller ``stages`` / ``style_dim`` / ``input_size`` give tiny ones.
    """

    def __init__(self, n_styles: int = 18, *, stages: Sequence[tuple[int, int]] = ir_se.STAGES_50,
                 style_dim: int = 512, input_size: int = E4E_INPUT_SIZE):
        super().__init__()
        if len(stages) != 4:
            raise ValueError(f"e4e needs a four-stage IR-SE trunk, got {len(stages)} stages")
        self.n_styles, self.style_dim, self.input_size = n_styles, style_dim, input_size
        self.taps = ir_se.stage_ends(stages)[1:]  # c1, c2, c3
        top = stages[-1][0]
        self.input_layer = ir_se.input_layer(stages[0][0])
        self.body = ir_se.body(stages)
        self.styles = nn.ModuleList(
            GradualStyleBlock(top, style_dim, input_size // (16 if i < COARSE else 8 if i < MIDDLE else 4))
            for i in range(n_styles))
        self.latlayer1 = nn.Conv2d(stages[2][0], top, kernel_size=1)
        self.latlayer2 = nn.Conv2d(stages[1][0], top, kernel_size=1)

    def features(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The trunk's feature maps (c1, c2, c3) at the ends of stages 2, 3 and 4."""
        x = self.input_layer(x)
        taps = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self.taps:
                taps.append(x)
        return tuple(taps)

    def forward(self, x: Tensor) -> Tensor:
        c1, c2, c3 = self.features(x)
        w0 = self.styles[0](c3)
        codes, source = [w0], c3
        for i in range(1, self.n_styles):
            if i == COARSE:
                p2 = source = _upsample_add(c3, self.latlayer1(c2))
            elif i == MIDDLE:
                source = _upsample_add(p2, self.latlayer2(c1))
            codes.append(w0 + self.styles[i](source))
        return torch.stack(codes, dim=1)


class E4E(nn.Module):
    """The e4e encoder with its decoder: ``e4e(faces)`` -> W+ codes, :meth:`invert` -> the decoded faces.

    ``latent_avg`` ``(style_dim,)`` or ``(n_styles, style_dim)`` is added to the encoder's output, as
    pSp does with ``start_from_latent_avg``.
    """

    def __init__(self, encoder: Encoder4Editing, decoder: Generator, latent_avg: Tensor):
        super().__init__()
        _check_pair(encoder, decoder, latent_avg)
        self.encoder, self.decoder = encoder, decoder
        self.register_buffer("latent_avg", latent_avg.detach().float().reshape(-1, encoder.style_dim).clone())

    @property
    def device(self) -> torch.device:
        return self.latent_avg.device

    def forward(self, faces: Tensor) -> Tensor:
        """W+ codes ``(N, n_styles, style_dim)`` of FFHQ-aligned faces ``(N, 3, S, S)`` in [-1, 1] (any S:
        resized to the encoder's input size)."""
        x = resize_faces(faces.to(self.device, torch.float32), self.encoder.input_size)
        return self.encoder(x) + self.latent_avg

    @torch.no_grad()
    def invert(self, faces: Tensor) -> tuple[Tensor, Tensor]:
        """``(w_plus, G(w_plus))``: the codes and their render with the decoder's stored noise, as pSp decodes."""
        w_plus = self(faces)
        return w_plus, self.decoder([w_plus], input_is_latent=True, randomize_noise=False)


def _check_pair(encoder: Encoder4Editing, decoder: Generator, latent_avg: Tensor) -> None:
    if (decoder.n_latent, decoder.style_dim) != (encoder.n_styles, encoder.style_dim):
        raise ValueError(f"e4e: the encoder gives {encoder.n_styles} x {encoder.style_dim} codes but the decoder "
                         f"takes {decoder.n_latent} x {decoder.style_dim} (a {decoder.size} px generator)")
    if latent_avg.shape[-1] != encoder.style_dim or latent_avg.numel() not in (
            encoder.style_dim, encoder.n_styles * encoder.style_dim):
        raise ValueError(f"e4e: latent_avg of shape {tuple(latent_avg.shape)} fits neither ({encoder.style_dim},) "
                         f"nor ({encoder.n_styles}, {encoder.style_dim})")


def _read(path) -> Mapping:
    ckpt = ir_se.read_weights(path, "e4e checkpoint")
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("state_dict"), Mapping) or "latent_avg" not in ckpt:
        found = sorted(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise ValueError(f"e4e checkpoint '{path}': expected {{'state_dict': {{'encoder.*', 'decoder.*'}}, "
                         f"'latent_avg', 'opts'}}, found {found}")
    return ckpt


def _split(state: Mapping[str, Tensor], path) -> tuple[dict, dict]:
    parts = {"encoder.": {}, "decoder.": {}}
    other = []
    for key, value in state.items():
        prefix = next((p for p in parts if key.startswith(p)), None)
        if prefix is None:
            other.append(key)
        else:
            parts[prefix][key[len(prefix):]] = value
    empty = [p + "*" for p, d in parts.items() if not d]
    if other or empty:
        raise ValueError(f"e4e checkpoint '{path}': state_dict keys must all start with 'encoder.' or 'decoder.'"
                         + (f"; found {', '.join(sorted(other)[:6])}" if other else "")
                         + (f"; no {' / '.join(empty)} keys" if empty else ""))
    return parts["encoder."], parts["decoder."]


def _n_styles(encoder_state: Mapping[str, Tensor]) -> int:
    indices = {int(k.split(".")[1]) for k in encoder_state if k.startswith("styles.") and k.split(".")[1].isdigit()}
    if not indices or indices != set(range(len(indices))):
        raise ValueError(f"e4e encoder: 'styles.<i>.*' keys must number 0..n-1, found {sorted(indices)[:20]}")
    return len(indices)


def load_e4e(path: str | os.PathLike | None = None, *, device: str | torch.device = "cpu") -> E4E:
    """The e4e FFHQ encoder and its StyleGAN2 decoder from ``e4e_ffhq_encode.pt``, eval mode, frozen.

    The file is found with :func:`dclip.models.weights.resolve_file` (``path``, else
    ``$DCLIP_WEIGHTS/e4e_ffhq_encode.pt``; never downloaded automatically). The number of W+ entries
    is read from the ``styles.*`` keys (checked against ``opts['stylegan_size']`` when present).

    Raises:
        WeightsNotFoundError: the file is not on this machine (the message says where it is published).
        ValueError: a different or truncated file (names the missing / unexpected keys).
    """
    path = resolve_file(path, filename=E4E_FILE, url=E4E_URL, what="e4e FFHQ encoder")
    ckpt = _read(path)
    encoder_state, decoder_state = _split(ckpt["state_dict"], path)
    n_styles = _n_styles(encoder_state)
    size = (ckpt.get("opts") or {}).get("stylegan_size") if isinstance(ckpt.get("opts"), Mapping) else None
    if size and 2 * int(math.log2(size)) - 2 != n_styles:
        raise ValueError(f"e4e checkpoint '{path}': opts['stylegan_size'] = {size} needs "
                         f"{2 * int(math.log2(size)) - 2} style blocks, the state dict has {n_styles}")
    try:
        decoder = Generator.from_state_dict(decoder_state)
    except (ValueError, KeyError) as err:
        raise ValueError(f"e4e decoder ('{path}'): not a StyleGAN2 generator state dict: {err}") from err
    with torch.device("meta"):
        encoder = Encoder4Editing(n_styles)
    _check_pair(encoder, decoder, ckpt["latent_avg"])  # before reading ~230M encoder weights
    encoder = ir_se.load_strict(encoder, encoder_state, f"e4e encoder ('{path}')")
    decoder.latent_avg = ckpt["latent_avg"].detach().float().reshape(-1, decoder.style_dim)[0].clone()
    model = E4E(encoder, decoder, ckpt["latent_avg"])
    return model.to(device).eval().requires_grad_(False)


def tiny_e4e(generator: Generator, seed: int = 0, *, widths: Sequence[int] = (16, 16, 32, 32),
             latent_avg: Tensor | None = None) -> E4E:
    """A small random-weight e4e for a (tiny) generator: one unit per stage, input at the generator's size.

    Weights are PyTorch's default initialisation drawn from ``seed`` without touching the global RNG;
    ``latent_avg`` defaults to the generator's. Meant for CPU smoke runs of the e4e code path.
    """
    if latent_avg is None:
        latent_avg = generator.latent_avg if generator.latent_avg is not None else torch.zeros(generator.style_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = Encoder4Editing(generator.n_latent, stages=tuple((w, 1) for w in widths),
                                  style_dim=generator.style_dim, input_size=generator.size)
    encoder = encoder.to(generator.input.input.device).eval().requires_grad_(False)
    return E4E(encoder, generator, latent_avg.to(generator.input.input.device))
