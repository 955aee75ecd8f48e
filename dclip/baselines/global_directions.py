"""StyleCLIP global directions (Patashnik et al., ICCV 2021, Sec. 6): a text edit as one step in StyleSpace.

StyleSpace is the output s of every modulation layer (``.conv.modulation``: w -> s), channel by channel. Channel
relevance: render images with s_c at ``mu_c +- k sigma_c``; the difference (+ minus -) of their normalised CLIP
embeddings, normalised, averaged over images, normalised, is ``Delta_i_c`` (:func:`channel_directions`). Text to
channels (eq. 6 and its threshold): ``Delta_i_c . Delta_t``, zero where ``|.| < beta``, over its largest ``|.|``
(:func:`channel_weights`); the edit is ``s'_c = s_c + alpha * weight_c * sigma_c`` (:func:`global_direction_edit`).

From the authors' code (github.com/orpatashnik/StyleCLIP): ``global_directions/SingleChannel.py`` (``alpha=[-5, 5]``,
100 images, ToRGB layers skipped, each channel set to its mean, then moved by its std: ``manipulate.py``
``EditOneC``; ``GetFs``), ``GetCode.py`` (mu, sigma over 100,000 w, truncation psi 0.7; the images are the first of
those w), ``MapTS.py`` / ``global_torch/StyleCLIP.py`` (``GetBoundary``, ``SplitS(if_std=True)``, ``GetDt``) and
``notebooks/StyleCLIP_global.ipynb`` (``beta = 0.15``, ``alpha = 4.1``). The script keeps layers up to 128 px
(``mindexs <= 16``), but the FFHQ ``fs3.npy`` it ships has 6048 rows, every non-ToRGB channel, as here.

Differences: ``Delta_t`` is :func:`dclip.method.losses.text_direction` (the same 79 templates, the mean of per-template
differences; ``GetDt`` subtracts the two normalised class means); images reach CLIP clamped to [-1, 1] (as uint8 clips)
by area averaging (:func:`~dclip.baselines.common.clip_view`), not PIL's resize; torch's RNG, not ``RandomState(5)``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..method.latents import fingerprint
from ..method.losses import text_direction
from ..models.clip import Clip, encode_images
from ..models.folder import read_sidecar, read_tensors
from ..runtime.atomic import atomic_write_all
from ..runtime.cache import touch
from ..runtime.errors import warn
from .common import check_w_plus, clip_view, steps
from .projection import render

__all__ = ["GlobalDirectionsConfig", "GlobalDirections", "style_layers", "style_codes", "render_with_offsets",
           "sample_w", "channel_directions", "channel_weights", "global_direction_offsets",
           "global_direction_edit", "directions_cache_path", "cached_channel_directions"]

FORMAT, _VERSION = "dclip-global-directions", 1


@dataclass(frozen=True)
class GlobalDirectionsConfig:
    """Global-direction settings; defaults are the reference's (see the module docstring for where)."""

    alpha: float = 4.1            # manipulation strength (StyleCLIP_global.ipynb)
    beta: float = 0.15            # disentanglement threshold (StyleCLIP_global.ipynb)
    n_images: int = 100           # images averaged per channel (SingleChannel.py)
    strength: float = 5.0         # s_c = mu_c +- strength * sigma_c (SingleChannel.py, M.alpha=[-5, 5])
    n_statistics: int = 100_000   # w samples for mu and sigma (GetCode.py)
    truncation: float = 0.7       # psi of those w (GetCode.py)
    seed: int = 0

    def __post_init__(self):
        if self.n_images < 1 or self.n_statistics < max(2, self.n_images) or self.strength == 0 or self.beta < 0:
            raise ValueError("GlobalDirectionsConfig needs n_images >= 1, n_statistics >= max(2, n_images), "
                             "strength != 0 and beta >= 0")

    @classmethod
    def smoke(cls) -> "GlobalDirectionsConfig":
        """A CPU-sized run: 2 images per channel, 256 w for mu and sigma, beta 0.1 (random CLIPs relate weakly)."""
        return cls(beta=0.1, n_images=2, n_statistics=256)

    def precompute_settings(self) -> dict:
        """The keyword arguments of :func:`channel_directions` / :func:`cached_channel_directions`."""
        return {k: v for k, v in asdict(self).items() if k not in ("alpha", "beta")}


_DEFAULTS = GlobalDirectionsConfig().precompute_settings()


def style_layers(generator) -> list[tuple[str, nn.Module]]:
    """The modulation layers StyleCLIP manipulates, in synthesis order: ``conv1``, ``convs.0``, ``convs.1``, ...

    ToRGB modulations are left out, as in the reference (``mindexs``); each layer has ``in_channels`` channels
    (6048 in all for the 1024 px FFHQ generator)."""
    return [("conv1", generator.conv1.conv.modulation),
            *[(f"convs.{i}", layer.conv.modulation) for i, layer in enumerate(generator.convs)]]


def _sizes(generator) -> list[tuple[str, int]]:
    return [(name, module.bias.shape[0]) for name, module in style_layers(generator)]


def style_codes(generator, w_plus: Tensor) -> list[Tensor]:
    """The style s of every :func:`style_layers` layer for W+ codes: one ``(N, C_l)`` tensor per layer
    (layer l reads W+ entry l, as in :meth:`Generator.synthesis`: conv1 entry 0, convs.j entry j + 1)."""
    return [module(w_plus[:, index]) for index, (_, module) in enumerate(style_layers(generator))]


def render_with_offsets(generator, w_plus: Tensor, offsets, noise=None) -> Tensor:
    """``G(w+)`` with ``offsets[l]`` (``(C_l,)``, ``(N, C_l)`` or ``None``) added to the style of layer l, through
    forward hooks on the modulation layers that are removed in any case (the generator is not changed)."""
    layers = style_layers(generator)
    if len(offsets) != len(layers):
        raise ValueError(f"expected {len(layers)} offsets (one per style layer), got {len(offsets)}")
    handles = []
    try:
        for (name, module), offset in zip(layers, offsets):
            if offset is None:
                continue
            if offset.shape[-1] != module.bias.shape[0] or offset.ndim not in (1, 2):
                raise ValueError(f"offset of style layer {name} has shape {tuple(offset.shape)}; expected "
                                 f"({module.bias.shape[0]},) or (N, {module.bias.shape[0]})")
            handles.append(module.register_forward_hook(lambda m, args, out, d=offset: out + d.to(out)))
        return render(generator, w_plus, noise)
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class GlobalDirections:
    """Per StyleSpace channel: the unit ``Delta_i_c`` (``directions``, ``(n_channels, clip_dim)``), mean and std of s
    (``(n_channels,)``); the style layers as ``(name, channels)``; the settings they were computed with."""

    directions: Tensor
    std: Tensor
    mean: Tensor
    layers: list[tuple[str, int]]
    settings: dict = field(default_factory=dict)

    def split(self, flat: Tensor) -> list[Tensor]:
        """A per-channel tensor ``(..., n_channels)`` as one tensor per style layer."""
        return list(flat.split([c for _, c in self.layers], dim=-1))

    def check(self, generator, where: str = "these global directions") -> None:
        """ValueError naming the difference when the StyleSpace layers are not ``generator``'s."""
        own = _sizes(generator)
        if own != [tuple(layer) for layer in self.layers]:
            raise ValueError(f"{where} were computed for a StyleGAN2 whose StyleSpace has layers {self.layers[:3]}... "
                             f"({sum(c for _, c in self.layers)} channels), not this generator's {own[:3]}... "
                             f"({sum(c for _, c in own)} channels). Compute them for this generator with "
                             "channel_directions(generator, clip, ...) or cached_channel_directions(...).")

    def save(self, path: str | os.PathLike) -> Path:
        """``path`` (made ``.safetensors``) and its ``.json`` sidecar, written as one (atomically)."""
        from safetensors.torch import save_file
        path = Path(path).with_suffix(".safetensors")
        tensors = {k: getattr(self, k).detach().float().cpu().contiguous() for k in ("directions", "std", "mean")}
        meta = {"format": FORMAT, "version": _VERSION, "layers": [list(layer) for layer in self.layers],
                "clip_dim": int(self.directions.shape[1]), "settings": self.settings}
        atomic_write_all([(path, lambda tmp: save_file(tensors, str(tmp))),
                          (path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))])
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, generator=None) -> "GlobalDirections":
        """Read :meth:`save`'s files back (checked against ``generator`` when given)."""
        path = Path(path).with_suffix(".safetensors")
        if not path.is_file():
            raise FileNotFoundError(f"no global directions at {path}; compute them with channel_directions(...) "
                                    "and save(path), or cached_channel_directions(...)")
        meta, tensors = read_sidecar(path), read_tensors(path)
        if meta.get("format") != FORMAT or not {"directions", "std", "mean"} <= set(tensors):
            raise ValueError(f"{path} is not a dclip global-directions file (its sidecar {path.with_suffix('.json')} "
                             f"must say format '{FORMAT}' and hold directions/std/mean); recompute it with "
                             "channel_directions(...).save(path)")
        found = cls(tensors["directions"], tensors["std"], tensors["mean"],
                    [(str(n), int(c)) for n, c in meta["layers"]], meta.get("settings", {}))
        if sum(c for _, c in found.layers) != found.directions.shape[0]:
            raise ValueError(f"{path} and its sidecar do not belong together (channel counts differ); recompute them")
        if generator is not None:
            found.check(generator, where=f"the global directions in {path}")
        return found


@torch.no_grad()
def sample_w(generator, n: int, seed: int = 0, truncation: float = 0.7) -> Tensor:
    """``n`` mapped w from seeded z (global RNG untouched), truncated toward ``latent_avg`` (else their mean)."""
    z = torch.randn(n, generator.style_dim, generator=torch.Generator().manual_seed(seed))
    w = torch.cat([generator.mapping(chunk.to(generator.input.input.device)) for chunk in z.split(10_000)])
    centre = generator.latent_avg if generator.latent_avg is not None else w.mean(0)
    return centre.reshape(1, -1).to(w) + truncation * (w - centre.reshape(1, -1).to(w))


@torch.no_grad()
def _statistics(generator, w: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and std (NumPy's, ddof 0) of every StyleSpace channel over ``w``, flat ``(n_channels,)``."""
    total = square = 0.0
    for chunk in w.split(10_000):
        s = torch.cat([module(chunk) for _, module in style_layers(generator)], dim=1).double()
        total, square = total + s.sum(0), square + s.pow(2).sum(0)
    mean = total / w.shape[0]
    return mean.float(), (square / w.shape[0] - mean.pow(2)).clamp_min(0).sqrt().float()


@torch.no_grad()
def channel_directions(generator, clip: Clip, *, n_images: int = 100, strength: float = 5.0, seed: int = 0,
                       n_statistics: int = 100_000, truncation: float = 0.7, batch: int = 32,
                       progress: bool | None = None) -> GlobalDirections:
    """``Delta_i_c`` of every StyleSpace channel (Sec. 6, "Channelwise relevance"; ``SingleChannel.py``, ``GetFs``).

    mu, sigma: over :func:`sample_w`'s ``n_statistics`` w, whose first ``n_images`` are rendered (stored noise) with
    s_c at ``mu_c + strength sigma_c`` and at ``mu_c - strength sigma_c``, other channels kept. ``batch`` renders
    per generator call; deterministic for a ``seed`` (global RNG untouched); ``progress``: a tqdm bar."""
    device = generator.input.input.device
    settings = GlobalDirectionsConfig(n_images=n_images, strength=strength, seed=seed, n_statistics=n_statistics,
                                      truncation=truncation).precompute_settings()  # checked by the config
    w = sample_w(generator, n_statistics, seed, truncation)
    (mean, std), w_img = _statistics(generator, w), w[:n_images]
    s_img = torch.cat(style_codes(generator, generator.to_w_plus(w_img, input_is_latent=True)), dim=1)
    result = GlobalDirections(torch.empty(0), std.cpu(), mean.cpu(), _sizes(generator), {**settings, "clip": clip.name})
    n_channels = s_img.shape[1]
    channel = torch.arange(n_channels, device=device).repeat_interleave(n_images)
    image = torch.arange(n_images, device=device).repeat(n_channels)
    per = max(1, batch // 2)
    totals = None
    for k in steps(-(-len(channel) // per), "global directions", progress):
        c, i = channel[k * per:(k + 1) * per], image[k * per:(k + 1) * per]
        shift, step = mean[c] - s_img[i, c], strength * std[c]  # s_c -> mu_c + k sigma_c, then mu_c - k sigma_c
        offsets = torch.zeros(2 * len(c), n_channels, device=device)
        offsets[torch.arange(2 * len(c), device=device), c.repeat(2)] = torch.cat([shift + step, shift - step])
        codes = generator.to_w_plus(w_img[i], input_is_latent=True).repeat(2, 1, 1)
        images = render_with_offsets(generator, codes, result.split(offsets)).clamp(-1, 1)
        embedding = encode_images(clip, clip_view(images, clip.image_size))
        delta = F.normalize(embedding[:len(c)] - embedding[len(c):], dim=-1)
        totals = totals if totals is not None else torch.zeros(n_channels, delta.shape[1], device=delta.device)
        totals.index_add_(0, c.to(delta.device), delta)
    result.directions = F.normalize(totals, dim=-1).cpu()
    return result


def channel_weights(directions: GlobalDirections | Tensor, delta_t: Tensor, beta: float) -> Tensor:
    """The manipulation direction in StyleSpace before scaling by sigma (``GetBoundary``), ``(n_channels,)``:
    relevance ``Delta_i_c . Delta_t``, zero where ``|.| < beta``, divided by its largest ``|.|``."""
    rows = directions.directions if isinstance(directions, GlobalDirections) else directions
    delta_t = delta_t.reshape(-1).to(rows)
    if delta_t.numel() != rows.shape[1]:
        raise ValueError(f"the text direction has {delta_t.numel()} dimensions but the global directions "
                         f"{rows.shape[1]}: use the CLIP model they were computed with")
    relevance = rows @ delta_t
    keep = relevance.abs() >= beta
    if not keep.any():
        raise ValueError(f"beta={beta} leaves no channel to manipulate: the largest relevance |Delta_i_c . Delta_t| "
                         f"is {relevance.abs().max().item():.4f}; lower beta below it")
    return torch.where(keep, relevance, 0.0) / relevance.abs().max()  # the largest |.| is always kept


def global_direction_offsets(directions: GlobalDirections, delta_t: Tensor, *, alpha: float,
                             beta: float) -> list[Tensor]:
    """``alpha * weight_c * sigma_c`` per style layer (``SplitS(if_std=True)`` then ``MSCode``)."""
    weights = channel_weights(directions, delta_t, beta)
    return directions.split(alpha * weights * directions.std.to(weights))


def global_direction_edit(generator, w_plus: Tensor, directions: GlobalDirections, clip: Clip, source: str,
                          target: str, *, alpha: float, beta: float, noise=None) -> Tensor:
    """Images of W+ codes edited from ``source`` toward ``target`` (Delta_t: module docstring); alpha 0: unedited."""
    directions.check(generator)
    w_plus = check_w_plus(generator, w_plus)
    offsets = global_direction_offsets(directions, text_direction(clip, source, target), alpha=alpha, beta=beta)
    with torch.no_grad():
        return render_with_offsets(generator, w_plus, [o.to(w_plus.device) for o in offsets], noise)


def _fingerprint(model: nn.Module) -> str:  # fingerprint() cannot view a 0-d tensor (CLIP's logit_scale) as bytes
    return fingerprint({k: v.reshape(1) if v.ndim == 0 else v for k, v in model.state_dict().items()})


def directions_cache_path(generator, clip: Clip, cache_dir: str | os.PathLike, *, generator_weights: str | None = None,
                          clip_weights: str | None = None, **settings) -> Path:
    """Where :func:`cached_channel_directions` keeps them: a hash of the generator's weights and ``latent_avg``, CLIP's
    weights and input, every setting. ``*_weights``: the models' :func:`~dclip.method.latents.fingerprint`, if known."""
    if set(settings) - set(_DEFAULTS):
        raise TypeError(f"unknown global-direction settings {sorted(set(settings) - set(_DEFAULTS))}")
    parts = {"version": _VERSION, "settings": {**_DEFAULTS, **settings},
             "generator": generator_weights or _fingerprint(generator),
             "latent_avg": None if generator.latent_avg is None else fingerprint([generator.latent_avg]),
             "clip": clip_weights or _fingerprint(clip.model),
             "clip_input": [clip.image_size, list(clip.mean), list(clip.std)]}
    key = hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=12).hexdigest()
    return Path(cache_dir) / f"global-directions-{key}.safetensors"


def cached_channel_directions(generator, clip: Clip, cache_dir: str | os.PathLike, *,
                              generator_weights: str | None = None, clip_weights: str | None = None,
                              batch: int = 32, progress: bool | None = None, **settings) -> GlobalDirections:
    """:func:`channel_directions`, computed once per generator, CLIP model and settings and kept in ``cache_dir``
    (:func:`directions_cache_path`); a damaged file is a warning and is computed again."""
    path = directions_cache_path(generator, clip, cache_dir, generator_weights=generator_weights,
                                 clip_weights=clip_weights, **settings)
    if path.is_file() and path.with_suffix(".json").is_file():
        try:
            found = GlobalDirections.load(path, generator)
            touch(path)  # the disk cache's least-recently-used clock
            return found
        except Exception as err:  # truncated, overwritten: a miss, never a traceback
            warn(f"ignored the cached global directions '{path}': they cannot be read ({type(err).__name__}); "
                 "computing them again.")
    found = channel_directions(generator, clip, batch=batch, progress=progress, **settings)
    found.save(path)
    return found
