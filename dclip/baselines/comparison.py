"""The GAN baselines of the paper's comparison (Sec. 4.1, Fig. 5, Tables 1 and 3) behind one call.

:func:`run_gan_baselines` takes the faces DiffusionCLIP edits and the text prompts, and returns for
StyleCLIP (latent optimisation, :mod:`dclip.baselines.styleclip`) and StyleGAN-NADA (:mod:`dclip.baselines.nada`) the
originals, the GAN inversions and the edits -- all in the diffusion model's 256 px framing, in
[-1, 1], so the metrics used for DiffusionCLIP (MAE / LPIPS / SSIM, S_dir, identity) apply as they are.

Two GAN inversions (Table 1's GAN rows):

* ``"StyleCLIP"`` starts from the e4e encoder (:mod:`dclip.baselines.e4e`), as the paper's StyleCLIP did;
* ``"StyleCLIP (optimisation)"`` and ``"StyleGAN-NADA"`` start from one optimisation-based W+
  projection (:mod:`dclip.baselines.projection`, Table 1's "Optimization" row). The paper's NADA used a
  ReStyle-pSp encoder, which dclip does not include (:data:`RESTYLE_NOT_INCLUDED`).

Without an encoder the e4e row is left out. :func:`load_gan_baselines` loads the real models (FFHQ
StyleGAN2, the e4e encoder, CLIP ViT-B/32 and ViT-B/16, the identity network, LPIPS) and reports every
missing file at once. :class:`GanBaselineSettings` has a ``paper()`` instance (the baselines'
published defaults) and a ``smoke()`` one (a few steps).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from ..models.clip import Clip, load_clip
from ..models.identity import load_identity_model
from .framing import DIFFUSION_SIZE, frame_photos, to_diffusion_frame
from .projection import Projection, ProjectionConfig, project, render
from .nada import NadaConfig, nada_finetune
from ..models.lpips import PerceptualFn, load_lpips, perceptual_distance
from .styleclip import StyleClipConfig, styleclip_edit
from .global_directions import GlobalDirectionsConfig, global_direction_edit
from .stylegan2 import load_stylegan2
from ..models.weights import WeightsNotFoundError

__all__ = ["GanBaselineSettings", "GAN_SETTINGS", "BaselineOutput", "METHODS", "STYLECLIP", "STYLECLIP_OPTIMISATION",
           "NADA", "STYLECLIP_GLOBAL", "E4E_INVERSION", "OPTIMISATION_INVERSION", "RESTYLE_NOT_INCLUDED", "BASELINE_CLIPS",
           "run_gan_baselines", "invert_faces", "encode_faces", "load_gan_baselines"]

#: Result keys of :func:`run_gan_baselines`, in order.
STYLECLIP, STYLECLIP_OPTIMISATION, NADA = "StyleCLIP", "StyleCLIP (optimisation)", "StyleGAN-NADA"
STYLECLIP_GLOBAL = "StyleCLIP (global directions)"
METHODS = (STYLECLIP, STYLECLIP_GLOBAL, STYLECLIP_OPTIMISATION, NADA)

#: :attr:`BaselineOutput.inversion` names (Table 1's GAN rows).
E4E_INVERSION, OPTIMISATION_INVERSION = "e4e", "optimisation (W+)"

#: What the paper's StyleGAN-NADA started from instead (shown by the notebook).
RESTYLE_NOT_INCLUDED = (
    "StyleCLIP starts from the e4e encoder, as in the paper; StyleGAN-NADA and a second StyleCLIP row, "
    "'StyleCLIP (optimisation)', start from the optimisation-based W+ projection (Table 1's 'Optimization' "
    "row): the paper's NADA used a ReStyle-pSp encoder, which dclip does not include.")

#: open_clip names of the baselines' CLIP models: StyleCLIP's ViT-B/32 (first), NADA adds ViT-B/16.
BASELINE_CLIPS = (("ViT-B-32-quickgelu", "openai"), ("ViT-B-16-quickgelu", "openai"))


@dataclass(frozen=True)
class GanBaselineSettings:
    """Steps and learning rates of the three optimisations (the loss weights are the papers').

    The defaults are the configs' own (:class:`ProjectionConfig`: rosinality's projector;
    :class:`StyleClipConfig`: StyleCLIP's ``run_optimization.py``; :class:`NadaConfig`: the
    StyleGAN-NADA README, ``--iter 301 --batch 2 --lr 0.002``), written once, there.
    """

    projection_steps: int = ProjectionConfig.steps
    projection_lr: float = ProjectionConfig.lr
    styleclip_steps: int = StyleClipConfig.steps
    styleclip_lr: float = StyleClipConfig.lr
    lambda_l2: float = StyleClipConfig.lambda_l2
    lambda_id: float = StyleClipConfig.lambda_id
    nada_iterations: int = NadaConfig.iterations
    nada_batch: int = NadaConfig.batch
    nada_lr: float = NadaConfig.lr
    gd_alpha: float = GlobalDirectionsConfig.alpha
    gd_beta: float = GlobalDirectionsConfig.beta
    gd_images: int = GlobalDirectionsConfig.n_images
    seed: int = ProjectionConfig.seed

    @classmethod
    def paper(cls) -> "GanBaselineSettings":
        """The baselines' published settings."""
        return cls()

    @classmethod
    def smoke(cls) -> "GanBaselineSettings":
        """A few steps of each, for CPU smoke runs with tiny models."""
        return cls(projection_steps=20, styleclip_steps=10, nada_iterations=5, gd_images=2)

    def capped(self, steps: int) -> "GanBaselineSettings":
        """These settings with each optimisation limited to ``steps`` steps (a quick CPU look), and the global
        directions' precompute to ``steps // 10`` images (at least 2)."""
        return replace(self, projection_steps=min(self.projection_steps, steps),
                       styleclip_steps=min(self.styleclip_steps, steps),
                       nada_iterations=min(self.nada_iterations, steps),
                       gd_images=min(self.gd_images, max(2, steps // 10)))

    def projection(self) -> ProjectionConfig:
        return ProjectionConfig(steps=self.projection_steps, lr=self.projection_lr, seed=self.seed)

    def styleclip(self) -> StyleClipConfig:
        return StyleClipConfig(steps=self.styleclip_steps, lr=self.styleclip_lr, lambda_l2=self.lambda_l2,
                               lambda_id=self.lambda_id)

    def global_directions(self) -> GlobalDirectionsConfig:
        return replace(GlobalDirectionsConfig(), alpha=self.gd_alpha, beta=self.gd_beta, n_images=self.gd_images)

    def nada(self) -> NadaConfig:
        return NadaConfig(iterations=self.nada_iterations, batch=self.nada_batch, lr=self.nada_lr,
                          seed=self.seed + 2)


#: ``toy``: the papers' own step counts, affordable on a CPU at the toy world's 32 px, except the global
#: directions' precompute on 20 images instead of 100 (672 channels x 2 renders each: 6 minutes on 2 cores with 100);
#: ``toy-check``: the same capped at 60 steps each, for ``make test``'s quick pass over the notebooks.
GAN_SETTINGS = {"paper": GanBaselineSettings.paper(), "smoke": GanBaselineSettings.smoke(),
                "toy": replace(GanBaselineSettings.paper(), gd_images=20),
                "toy-check": replace(GanBaselineSettings.paper(), gd_images=20).capped(60)}


class BaselineOutput(NamedTuple):
    """One method's faces, each ``(N, 3, 256, 256)`` in [-1, 1] on the CPU.

    ``edited`` maps each ``(source, target)`` prompt to its edits; ``inversion`` names the GAN
    inversion ``inverted`` came from (:data:`E4E_INVERSION` or :data:`OPTIMISATION_INVERSION`).
    """

    originals: Tensor
    inverted: Tensor
    edited: dict[tuple[str, str], Tensor]
    inversion: str = OPTIMISATION_INVERSION


def _prompt_pairs(prompts) -> list[tuple[str, str]]:
    if len(prompts) == 2 and all(isinstance(p, str) for p in prompts):
        prompts = [tuple(prompts)]
    pairs = [tuple(p) for p in prompts]
    if not pairs or any(len(p) != 2 or not all(isinstance(s, str) and s.strip() for s in p) for p in pairs):
        raise ValueError(f"prompts must be (source, target) text pairs, e.g. [('face', 'smiling face')]; "
                         f"got {prompts!r}")
    return pairs


def _framed(generator_images: Tensor, size: int = DIFFUSION_SIZE) -> Tensor:
    """Generator renders in the diffusion model's framing at ``size`` px, in [-1, 1] on the CPU."""
    return to_diffusion_frame(generator_images, size).clamp(-1, 1).float().cpu()


def invert_faces(faces_256: Tensor, *, generator, latent_avg: Tensor | None = None,
                 perceptual: PerceptualFn | None = None, settings: GanBaselineSettings = GAN_SETTINGS["paper"],
                 progress: bool | None = None) -> tuple[Projection, Tensor]:
    """Project aligned faces into W+; returns ``(projection, inverted faces at the faces' size)``."""
    if perceptual is None:
        perceptual = perceptual_distance(load_lpips(device=generator.input.input.device))
    projection = project(generator, faces_256, perceptual=perceptual, config=settings.projection(),
                         latent_avg=latent_avg, progress=progress)
    with torch.no_grad():
        inverted = _framed(render(generator, projection.w_plus, projection.noise), faces_256.shape[-1])
    return projection, inverted


@torch.no_grad()
def encode_faces(faces_256: Tensor, *, generator, encoder) -> tuple[Projection, Tensor]:
    """e4e inversion: ``(codes with the generator's stored noise, inverted faces at 256 px)``.

    ``encoder`` maps aligned faces to W+ (:func:`dclip.baselines.e4e.load_e4e`); the codes are rendered
    with ``generator`` and its stored noise maps, as pSp decodes (``randomize_noise=False``).
    """
    device = generator.input.input.device
    w_plus = encoder(faces_256.to(device, torch.float32)).to(device)
    return Projection(w_plus, None), _framed(render(generator, w_plus, None), faces_256.shape[-1])


def _styleclip(generator, projection, pairs, clip, face_model, identity, settings, size, progress) -> dict:
    edited = {}
    for source, target in pairs:
        result = styleclip_edit(generator, projection.w_plus, target, clip=clip, face_model=face_model,
                                identity=identity, noise=projection.noise, config=settings.styleclip(),
                                progress=progress)
        with torch.no_grad():
            edited[(source, target)] = _framed(render(generator, result.w_plus, projection.noise), size)
    return edited


def _nada(generator, projection, pairs, clips, settings, size, progress) -> dict:
    edited = {}
    for source, target in pairs:
        trained = nada_finetune(generator, source, target, clips=clips, config=settings.nada(),
                                progress=progress).generator
        with torch.no_grad():
            edited[(source, target)] = _framed(render(trained, projection.w_plus, projection.noise), size)
        del trained
    return edited


def _global(generator, codes, pairs, clip, directions, settings, size) -> dict:
    """StyleCLIP global directions from e4e codes, per prompt; where the authors' beta leaves no channel, the
    method makes no edit and the inverted faces are returned unchanged (with a printed note)."""
    edited = {}
    for source, target in pairs:
        try:
            images = global_direction_edit(generator, codes.w_plus, directions, clip, source, target,
                                           alpha=settings.gd_alpha, beta=settings.gd_beta)
        except ValueError as err:
            print(f"note: StyleCLIP global directions, '{source}' -> '{target}': {err}; no edit")
            with torch.no_grad():
                images = render(generator, codes.w_plus, None)
        edited[(source, target)] = _framed(images, size)
    return edited


def run_gan_baselines(photos, prompts: Sequence[tuple[str, str]], *, generator, latent_avg: Tensor | None = None,
                      clips: Sequence[Clip], encoder=None, directions=None, face_model=None, identity=None,
                      perceptual: PerceptualFn | None = None, settings: GanBaselineSettings = GAN_SETTINGS["paper"],
                      frame_size: int = DIFFUSION_SIZE, progress: bool | None = None) -> dict[str, BaselineOutput]:
    """Invert the faces (e4e and W+ projection), then edit them with StyleCLIP and StyleGAN-NADA per prompt.

    Args:
        photos: the faces DiffusionCLIP edits: an ``(N, 3, S, S)`` tensor of FFHQ/CelebA-HQ-aligned
            faces in [-1, 1] (e.g. the notebook's 256 px batch, returned as ``originals``), or PIL
            photos (aligned at the generator's resolution, then brought to 256 px).
        prompts: ``(source, target)`` text pairs (one pair alone is accepted too). NADA uses the
            pair; StyleCLIP uses the target text as its description.
        generator, latent_avg: the StyleGAN2 generator and its mean latent
            (:func:`dclip.baselines.stylegan2.load_stylegan2`).
        clips: CLIP models; ``clips[0]`` drives StyleCLIP (ViT-B/32 in the paper), all of them NADA.
        encoder: the e4e encoder for ``generator`` (:func:`dclip.baselines.e4e.load_e4e`); ``None`` leaves
            the ``"StyleCLIP"`` (e4e) results out.
        directions: StyleCLIP's global directions of ``generator`` and ``clips[0]``
            (:func:`dclip.baselines.global_directions.cached_channel_directions`); with an encoder they add
            ``"StyleCLIP (global directions)"`` from the e4e codes (alpha / beta from ``settings``).
        face_model: identity network for StyleCLIP's ID term (:func:`dclip.models.identity.load_identity_model`).
        identity: ``f(reference, image) -> (N,)``, StyleCLIP's identity loss in place of the face model's (toy world).
        perceptual: ``f(x, y) -> (N,)`` for the projection; default: LPIPS-alex
            (:func:`dclip.models.lpips.load_lpips`).
        settings: :meth:`GanBaselineSettings.paper` or :meth:`GanBaselineSettings.smoke` (or your own).
        frame_size: side of the returned faces (the diffusion model's: 256; the toy world's: 32).
        progress: tqdm bars (default ``$DCLIP_PROGRESS``).

    Returns:
        ``{"StyleCLIP": ..., "StyleCLIP (optimisation)": ..., "StyleGAN-NADA": ...}`` of
        :class:`BaselineOutput` (:data:`METHODS` order); the last two share ``inverted``; each
        ``edited[(source, target)]`` is ``(N, 3, 256, 256)``.
    """
    pairs = _prompt_pairs(prompts)
    if not clips:
        raise ValueError("run_gan_baselines needs at least one CLIP model (clips=[...])")
    if settings.lambda_id and face_model is None and identity is None:
        raise ValueError("StyleCLIP's identity term needs face_model=... (dclip.models.identity.load_identity_model()), "
                         "or settings with lambda_id=0")
    _, originals = frame_photos(photos, generator.size, frame_size)
    originals = originals.clamp(-1, 1).float().cpu()
    out = {}
    if encoder is not None:
        codes, encoded = encode_faces(originals, generator=generator, encoder=encoder)
        out[STYLECLIP] = BaselineOutput(originals, encoded, _styleclip(generator, codes, pairs, clips[0], face_model,
                                                                       identity, settings, frame_size, progress),
                                        E4E_INVERSION)
        if directions is not None:
            out[STYLECLIP_GLOBAL] = BaselineOutput(originals, encoded, _global(
                generator, codes, pairs, clips[0], directions, settings, frame_size), E4E_INVERSION)
    projection, inverted = invert_faces(originals, generator=generator, latent_avg=latent_avg,
                                        perceptual=perceptual, settings=settings, progress=progress)
    out[STYLECLIP_OPTIMISATION] = BaselineOutput(
        originals, inverted, _styleclip(generator, projection, pairs, clips[0], face_model, identity, settings,
                                        frame_size, progress))
    out[NADA] = BaselineOutput(originals, inverted, _nada(generator, projection, pairs, clips, settings, frame_size,
                                                          progress))
    return out


def load_gan_baselines(device: str | torch.device = "cpu", *, face_model=None) -> dict:
    """The real models, as keyword arguments for :func:`run_gan_baselines`.

    Returns ``{"generator", "latent_avg", "encoder", "clips", "face_model", "perceptual"}``: the FFHQ
    1024 px StyleGAN2 (``stylegan2-ffhq-config-f.pt``), the e4e encoder (``e4e_ffhq_encode.pt``),
    OpenAI CLIP ViT-B/32 and ViT-B/16, the identity network (``face_model`` if given, else
    :func:`dclip.models.identity.load_identity_model`: ArcFace IR-SE50 when available, as StyleCLIP used) and
    LPIPS-alex (``alexnet-owt-7be5be79.pth``).

    ``encoder`` is ``None``, with a printed note, when ``e4e_ffhq_encode.pt`` is missing: it is a manual
    download, and the baselines then run without the e4e row.

    Raises:
        WeightsNotFoundError: one message listing every other file that is missing (offline).
    """
    from .e4e import load_e4e

    loaders = [("generator", lambda: load_stylegan2(device=device)),
               *[(f"clip {name}", lambda name=name, tag=tag: load_clip(name, tag, device=device))
                 for name, tag in BASELINE_CLIPS],
               ("face_model", lambda: face_model if face_model is not None else load_identity_model(device)[0]),
               ("perceptual", lambda: perceptual_distance(load_lpips(device=device)))]
    loaded, missing = {}, []
    for key, load in loaders:
        try:
            loaded[key] = load()
        except WeightsNotFoundError as err:
            missing.append(str(err))
    if missing:
        raise WeightsNotFoundError("GAN baselines: pretrained files missing:\n\n" + "\n\n".join(missing))
    try:  # a manual download (Google Drive): without it the e4e row is left out, with a note
        loaded["encoder"] = load_e4e(device=device)
    except WeightsNotFoundError as err:
        loaded["encoder"] = None
        print(f"note: StyleCLIP's e4e row is left out (the paper's StyleCLIP started from e4e). {err}")
    generator, latent_avg = loaded.pop("generator")
    clips = [loaded.pop(f"clip {name}") for name, _ in BASELINE_CLIPS]
    return {"generator": generator, "latent_avg": latent_avg, "clips": clips,
            "directions": paper_directions(generator, clips[0]), **loaded}


def paper_directions(generator, clip, cache_dir=None):
    """StyleCLIP's global directions of the FFHQ generator and ViT-B/32, from the disk cache
    (:func:`dclip.baselines.global_directions.cached_channel_directions`, the authors' settings): computed there
    once on a GPU (6048 channels x 100 images x 2 renders at 1024 px); on a CPU without a cached file the method
    is left out with a note, as that precompute would take days."""
    from ..runtime.cache import section
    from .global_directions import cached_channel_directions, directions_cache_path

    folder = Path(cache_dir) if cache_dir is not None else section("global_directions")
    settings = GlobalDirectionsConfig().precompute_settings()
    on_gpu = generator.input.input.device.type == "cuda"
    if not on_gpu and not directions_cache_path(generator, clip, folder, **settings).with_suffix(".safetensors").exists():
        print("note: StyleCLIP global directions are left out: their precompute needs a GPU (run notebook 02 once "
              f"on one; the result is kept in {folder}).")
        return None
    return cached_channel_directions(generator, clip, folder, **settings)
