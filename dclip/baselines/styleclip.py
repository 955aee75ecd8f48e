"""StyleCLIP latent optimisation (Patashnik et al., ICCV 2021, Sec. 4) -- a GAN baseline of Fig. 5 / Table 3.

Starting from an inverted W+ code ``w_s``, optimise ``w`` (StyleCLIP's ``run_optimization.py``,
``--mode edit``):

    L(w) = D_CLIP(G(w), t) + lambda_L2 * ||w - w_s||^2 + lambda_ID * (1 - <R(G(w_s)), R(G(w))>)

* ``D_CLIP`` is the global CLIP loss (DiffusionCLIP's eq. 8, :func:`dclip.method.losses.global_clip_loss`)
  of the render shrunk to CLIP's input size, against the description ``t`` used literally;
* ``||.||^2`` is the squared distance summed over all W+ entries;
* ``R`` is a face-identity embedding of the 256 px render's face box, with the *inverted* image
  ``G(w_s)`` as the reference: ArcFace IR-SE50, as StyleCLIP, when its weights are present
  (:func:`dclip.models.identity.load_identity_model`; facenet's VGGFace2 network otherwise, with a note); in the
  toy world the judge's identity read-back (``identity=``), never a random network;
* Adam, lr 0.1 with the warm-up / cosine ramp of :func:`dclip.baselines.common.ramped_lr`, 300 steps;
  StyleCLIP's paper sets lambda_L2 = 0.008 and lambda_ID = 0.005 for FFHQ edits; OpenAI's ViT-B/32 CLIP.

The noise maps stay fixed (the projection's, when given). A batch is optimised as a sum of per-image
losses, so each image's result is the one it would get alone (StyleCLIP edits one image per run).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..models.clip import Clip

from ..method.losses import global_clip_loss
from ..method.losses import identity_loss
from ..runtime.modules import frozen
from .common import RAMPDOWN, RAMPUP, check_w_plus, clip_view, ramped_lr, steps
from .framing import DIFFUSION_SIZE, resize_faces
from .projection import render

__all__ = ["StyleClipConfig", "StyleClipResult", "styleclip_edit", "styleclip_losses"]


@dataclass(frozen=True)
class StyleClipConfig:
    """StyleCLIP latent-optimisation settings (defaults: its FFHQ editing setup)."""

    steps: int = 300
    lr: float = 0.1
    lr_rampup: float = RAMPUP
    lr_rampdown: float = RAMPDOWN
    lambda_l2: float = 0.008
    lambda_id: float = 0.005

    def __post_init__(self):
        if self.steps < 1 or self.lr <= 0 or self.lambda_l2 < 0 or self.lambda_id < 0:
            raise ValueError("StyleClipConfig needs steps >= 1, lr > 0 and non-negative loss weights")


@dataclass
class StyleClipResult:
    """Edited W+ codes ``(N, n_latent, style_dim)`` and, per step, the total and CLIP losses
    (summed over the batch, before that step's update)."""

    w_plus: Tensor
    history: list[dict] = field(default_factory=list)


def styleclip_losses(generator, w: Tensor, w_source: Tensor, source_image: Tensor, description: str, *,
                     clip: Clip, face_model=None, identity=None, noise=None,
                     config: StyleClipConfig = StyleClipConfig()) -> dict[str, Tensor]:
    """The StyleCLIP objective's terms per image, each shape (N,): ``clip``, ``l2``, ``id``, ``total``.

    ``source_image`` is ``G(w_source)`` (the identity reference); ``id`` is 0 without a face model
    or with ``lambda_id == 0``. ``identity(reference, image) -> (N,)``, when given, replaces the face model's
    ``1 - cos`` (the toy world's identity measure, which is not an embedding network).
    """
    image = render(generator, w, noise)
    terms = {"clip": global_clip_loss(clip, clip_view(image, clip.image_size), description),
             "l2": (w - w_source).pow(2).flatten(1).sum(1)}
    if config.lambda_id and identity is not None:
        terms["id"] = identity(source_image, image).to(w.device)
    elif config.lambda_id and face_model is not None:
        size = min(image.shape[-1], DIFFUSION_SIZE)
        terms["id"] = identity_loss(face_model, resize_faces(source_image, size), resize_faces(image, size),
                                    lambda_l1=0.0, lambda_face=1.0).to(w.device)
    else:
        terms["id"] = torch.zeros_like(terms["l2"])
    terms["total"] = terms["clip"].to(w.device) + config.lambda_l2 * terms["l2"] + config.lambda_id * terms["id"]
    return terms


def styleclip_edit(generator, w_plus: Tensor, description: str, *, clip: Clip, face_model=None, identity=None,
                   noise: list[Tensor] | None = None, config: StyleClipConfig = StyleClipConfig(),
                   progress: bool | None = None) -> StyleClipResult:
    """Edit inverted codes toward a text with StyleCLIP's latent optimisation.

    Args:
        generator: the StyleGAN2 :class:`dclip.baselines.stylegan2.Generator` (left unchanged).
        w_plus: inverted codes ``(N, n_latent, style_dim)``, e.g. :attr:`Projection.w_plus`.
        description: the target text, e.g. ``"a person with purple hair"`` (used literally).
        clip: the CLIP model (StyleCLIP: OpenAI ViT-B/32; tests: :func:`dclip.method.losses.tiny_clip`).
        face_model: identity network (:func:`dclip.models.identity.load_identity_model`: ArcFace IR-SE50 when its
            weights are present, as StyleCLIP used); it or ``identity`` is required when ``config.lambda_id > 0``.
        identity: ``f(reference, image) -> (N,)``, an identity loss in place of the face model's (the toy world's).
        noise: the noise maps to render with (e.g. :attr:`Projection.noise`); stored noise if ``None``.
        config: steps, learning rate, loss weights.
        progress: tqdm bar (default ``$DCLIP_PROGRESS``).
    """
    if config.lambda_id and face_model is None and identity is None:
        raise ValueError("StyleCLIP's identity term needs a face model (lambda_id > 0); pass face_model=... "
                         "(or identity=...) or use a config with lambda_id=0")
    w_source = check_w_plus(generator, w_plus)
    w = w_source.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=config.lr)
    history = []
    with frozen(generator):
        with torch.no_grad():
            source_image = render(generator, w_source, noise)
        for i in steps(config.steps, "StyleCLIP", progress):
            optimizer.param_groups[0]["lr"] = ramped_lr(i / config.steps, config.lr, config.lr_rampup,
                                                        config.lr_rampdown)
            terms = styleclip_losses(generator, w, w_source, source_image, description, clip=clip,
                                     face_model=face_model, identity=identity, noise=noise, config=config)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].sum().backward()
            optimizer.step()
            history.append({k: v.sum().item() for k, v in terms.items()})
    return StyleClipResult(w.detach(), history)
