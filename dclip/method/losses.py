"""The CLIP losses of DiffusionCLIP (eqs. 8 and 9) and the text side they need.

* :func:`global_clip_loss`      -- eq. (8):  1 - cos(E_I(x), E_T(t)).
* :func:`directional_clip_loss` -- eq. (9):  1 - cos(dI, dT) with dI = E_I(x_edit) - E_I(x_ref)
  and dT = E_T(t_tar) - E_T(t_ref).
* :func:`clip_objective`        -- the CLIP term actually minimised while fine-tuning
  (the authors' ``diffusionclip.py``):  -log((2 - L_direction) / 2).

Behaviour follows the authors' ``losses/clip_loss.py``:

* text embeddings are prompt ensembles over 79 ImageNet templates (:data:`IMAGENET_TEMPLATES`),
  each template embedding L2-normalised; the text direction is the mean of the per-template
  differences (target - source), normalised again;
* images go from [-1, 1] to [0, 1], are resized (bicubic, shorter side to the model's input size)
  and centre-cropped, normalised with CLIP's mean/std, encoded and L2-normalised;
* the image direction is the difference of the *normalised* image embeddings, divided by its
  norm + 1e-7.

The CLIP models themselves (loading, :func:`~dclip.models.clip.tiny_clip`, the image encoder)
are in :mod:`dclip.models.clip`.
"""
from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F

from ..models.clip import Clip, encode_images
from ..models.identity import face_embedding

__all__ = [
    "IMAGENET_TEMPLATES", "text_direction", "text_embedding", "directional_clip_loss", "global_clip_loss",
    "clip_objective", "identity_loss",
    "directional_similarity",
]

#: The 79 ImageNet prompt templates of the authors' ``utils/text_templates.py`` (inherited from
#: StyleGAN-NADA). It is OpenAI's 80-template list without ``'a photo of many {}.'``, same order.
IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.",
    "a bad photo of the {}.", "a cropped photo of the {}.", "a tattoo of a {}.",
    "the embroidered {}.", "a photo of a hard to see {}.", "a bright photo of a {}.",
    "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.",
    "a bright photo of the {}.", "a cropped photo of a {}.", "a plastic {}.",
    "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.",
    "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.",
    "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.",
    "a close-up photo of the {}.", "a photo of a {}.", "the origami {}.",
    "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.", "a origami {}.",
    "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.",
    "a photo of a nice {}.", "a photo of a weird {}.", "a blurry photo of a {}.",
    "a cartoon {}.", "art of a {}.", "a sketch of the {}.", "a embroidered {}.",
    "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.",
    "a photo of the small {}.", "a photo of the weird {}.", "the cartoon {}.", "art of the {}.",
    "a drawing of the {}.", "a photo of the large {}.", "a black and white photo of a {}.",
    "the plushie {}.", "a dark photo of a {}.", "itap of a {}.", "graffiti of the {}.",
    "a toy {}.", "itap of my {}.", "a photo of a cool {}.", "a photo of a small {}.",
    "a tattoo of the {}.",
)

# Text embeddings per model (weakly keyed, so a freed model frees its cache): model -> {key: tensor}.
_TEXT_CACHE: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


# ----------------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------------

def _cache_for(clip: Clip) -> dict:
    return _TEXT_CACHE.setdefault(clip.model, {})


@torch.no_grad()
def _template_embeddings(clip: Clip, text: str) -> torch.Tensor:
    """(79, D): every template filled with ``text``, encoded and L2-normalised."""
    tokens = clip.tokenizer([template.format(text) for template in IMAGENET_TEMPLATES])
    return F.normalize(clip.model.encode_text(tokens.to(clip.device)).float(), dim=-1)


def text_direction(clip: Clip, source: str, target: str) -> torch.Tensor:
    """The unit text direction dT of eq. (9), shape (1, D), without gradients.

    Mean over the 79 templates of (normalised target embedding - normalised source embedding),
    then normalised. Cached per (model, source, target): the same pair returns the same tensor
    object; treat it as read-only.
    """
    cache = _cache_for(clip)
    key = ("direction", source, target)
    if key not in cache:
        delta = _template_embeddings(clip, target) - _template_embeddings(clip, source)
        cache[key] = F.normalize(delta.mean(dim=0, keepdim=True), dim=-1)
    return cache[key]


@torch.no_grad()
def text_embedding(clip: Clip, text: str) -> torch.Tensor:
    """E_T(text) for one literal prompt (no templates), L2-normalised, shape (1, D); cached."""
    cache = _cache_for(clip)
    key = ("text", text)
    if key not in cache:
        tokens = clip.tokenizer([text]).to(clip.device)
        cache[key] = F.normalize(clip.model.encode_text(tokens).float(), dim=-1)
    return cache[key]


# ----------------------------------------------------------------------------------------------
# Losses and metrics
# ----------------------------------------------------------------------------------------------

def _image_direction(clip: Clip, x_source: torch.Tensor, x_edited: torch.Tensor) -> torch.Tensor:
    """dI of eq. (9): difference of the normalised embeddings, divided by (its norm + 1e-7)."""
    delta = encode_images(clip, x_edited) - encode_images(clip, x_source)
    return delta / (delta.norm(dim=-1, keepdim=True) + 1e-7)


def directional_clip_loss(clip: Clip, x_source: torch.Tensor, x_edited: torch.Tensor,
                          direction: torch.Tensor) -> torch.Tensor:
    """Eq. (9): 1 - cos(dI, dT) per image, shape (N,).

    ``direction`` is dT from :func:`text_direction`; gradients flow to both image batches. The
    authors average this over the batch before using it.
    """
    edit = _image_direction(clip, x_source, x_edited)
    return 1.0 - F.cosine_similarity(edit, direction.to(edit), dim=-1)


def global_clip_loss(clip: Clip, x: torch.Tensor, text: str) -> torch.Tensor:
    """Eq. (8): 1 - cos(E_I(x), E_T(text)) per image, shape (N,).

    ``text`` is used literally (the authors pass ``f"a {target}"``, no templates). The authors write
    this as ``1 - logits / 100``; OpenAI CLIP's logit scale is exactly 100, so it is the same
    number -- written here with the cosine so it does not depend on a model's learned scale.
    """
    return 1.0 - encode_images(clip, x) @ text_embedding(clip, text)[0]


def clip_objective(l_dir: torch.Tensor | float) -> torch.Tensor:
    """The CLIP term minimised during fine-tuning: -log((2 - L_direction) / 2).

    0 at L=0, log 2 at L=1, +inf at L=2 (the authors' ``diffusionclip.py``; eq. 10 uses this in
    place of the bare directional loss).
    """
    l_dir = torch.as_tensor(l_dir, dtype=torch.float32)
    return torch.log(2.0 / (2.0 - l_dir))


@torch.no_grad()
def directional_similarity(clip: Clip, x_source: torch.Tensor, x_edited: torch.Tensor,
                           source: str, target: str) -> torch.Tensor:
    """S_dir metric: cos(dI, dT) per image, shape (N,), no gradients (= 1 - eq. 9)."""
    direction = text_direction(clip, source, target)
    edit = _image_direction(clip, x_source, x_edited)
    return F.cosine_similarity(edit, direction.to(edit), dim=-1)


def identity_loss(face_model: torch.nn.Module, x0: torch.Tensor, x: torch.Tensor,
                  lambda_l1: float = 0.3, lambda_face: float = 0.1) -> torch.Tensor:
    """Eq. (11): lambda_L1 * mean|x0 - x| + lambda_face * (1 - cos(emb(x0), emb(x))), shape (N,).

    ``x0`` is the reference (its embedding is not differentiated, as in the authors' ID loss);
    gradients flow to ``x``. Defaults are the paper's weights (0.3 and 0.1). With
    ``lambda_face=0`` the face model is not run, with ``lambda_l1=0`` no L1 is computed.
    """
    loss = 0.0
    if lambda_l1 != 0:
        loss = lambda_l1 * (x0.to(x) - x).abs().flatten(1).mean(dim=1)
    if lambda_face != 0:
        with torch.no_grad():
            reference = face_embedding(face_model, x0)
        face = 1.0 - (face_embedding(face_model, x) * reference).sum(dim=-1)
        loss = loss + lambda_face * face.to(x.device)
    if isinstance(loss, float):  # both weights 0
        return torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
    return loss
