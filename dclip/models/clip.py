"""CLIP models for the losses: loading (open_clip, offline handling), the miniature of tests, and encoding images.

The default model is OpenAI's ViT-B/16 (the authors' ``--clip_model_name`` default ``ViT-B/16``),
which open_clip names ``ViT-B-16-quickgelu`` with the tag ``openai``. :func:`tiny_clip` builds a
random-weight miniature with the same interface for tests and the CPU smoke profile.

Images go from [-1, 1] to [0, 1], are resized (bicubic, shorter side to the model's input size)
and centre-cropped, normalised with CLIP's mean/std, encoded and L2-normalised
(:func:`encode_images`), as the authors' ``losses/clip_loss.py`` does. The losses built on these
encoders are in :mod:`dclip.method.losses`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..runtime.errors import UnreadableFileError
from .folder import check_weights_file, read_sidecar, read_tensors, shipped_file
from .weights import WeightsNotFoundError, hub_reachable, resolve_file

__all__ = ["Clip", "load_clip", "load_clip_file", "bpe_tokenizer", "tiny_clip", "encode_images", "OPENAI_MEAN", "OPENAI_STD", "TOY_CLIP"]

#: The shipped toy CLIP's file name in :data:`dclip.models.folder.SHIPPED_DIR` (``load_clip("toy")``).
TOY_CLIP = "toy_clip"

# OpenAI CLIP's normalisation constants (open_clip's defaults for the "openai" tags).
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

# The miniature model of tiny_clip(): standard vocabulary and context so the standard tokenizer fits.
_TINY_CFG = dict(
    embed_dim=32,
    quick_gelu=True,
    vision_cfg=dict(image_size=224, layers=2, width=32, head_width=16, patch_size=16),
    text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=2),
)

@dataclass(frozen=True, eq=False)
class Clip:
    """A frozen CLIP model with what is needed to feed it images and text."""

    model: torch.nn.Module
    tokenizer: Callable[[list[str]], torch.Tensor]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    device: torch.device
    name: str = field(default="")


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------

def _freeze(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model


def _square_size(model: torch.nn.Module) -> int:
    size = model.visual.image_size
    height, width = (size, size) if isinstance(size, int) else size
    if height != width:
        raise ValueError(f"CLIP input size {size} is not square; dclip only handles square inputs.")
    return int(height)


@lru_cache(maxsize=4)
def _tokenizer(name: str):
    import open_clip

    return open_clip.get_tokenizer(name)


def _wrap(model, tokenizer, mean, std, device, name) -> Clip:
    return Clip(model=_freeze(model), tokenizer=tokenizer, image_size=_square_size(model),
                mean=tuple(mean), std=tuple(std), device=torch.device(device), name=name)


def _cached_hub_file(repo_id: str, filenames: list[str]) -> str | None:
    """First of ``filenames`` already in the local HF Hub cache (no network), else ``None``."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return found
    return None


def _offline_error(name: str, tag: str, source: str, how: str) -> WeightsNotFoundError:
    return WeightsNotFoundError(
        f"CLIP model {name} ({tag}): weights not in the local cache and the network cannot be "
        f"reached (offline).\n  source: {source}\n"
        f"  fix: on a machine with network {how}, or pass load_clip(weights=<path to the file>)."
    )


def _checkpoint_for_tag(name: str, tag: str) -> str:
    """A local file for an open_clip pretrained tag, or the tag itself when it can be downloaded.

    open_clip would otherwise try the network (with retries) even when there is none; here an
    offline machine without a cached copy fails at once with :class:`WeightsNotFoundError`.
    """
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise ValueError(f"'{tag}' is not an open_clip pretrained tag for {name}; known tags: {tags}. "
                         f"Pass a file with weights=... for other checkpoints.")
    if cfg.get("file"):
        return cfg["file"]
    if cfg.get("hf_hub"):
        repo_id, filename = os.path.split(cfg["hf_hub"])
        files = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        cached = _cached_hub_file(repo_id, files)
        if cached:
            return cached
        if hub_reachable():
            return tag  # let open_clip download it into the HF cache as usual
        raise _offline_error(name, tag, f"{repo_id} on the HF Hub (file {' or '.join(files)})",
                             f"run `huggingface-cli download {repo_id} {files[0]}` and copy the HF cache")
    url = cfg.get("url", "")
    legacy = Path("~/.cache/clip").expanduser() / os.path.basename(url)
    if legacy.is_file():
        return str(legacy)
    if not hub_reachable():
        raise _offline_error(name, tag, url, f"download it to {legacy}")
    return tag


def load_clip(name: str = "ViT-B-16-quickgelu", pretrained: str | None = "openai",
              device: str | torch.device = "cpu", weights: str | os.PathLike | None = None) -> Clip:
    """Load a frozen open_clip model (eval mode, no gradients to its parameters).

    Args:
        name: open_clip architecture; the paper's CLIP is OpenAI ViT-B/16 = ``ViT-B-16-quickgelu``.
        pretrained: open_clip pretrained tag (``"openai"``) or a file (``None``: random weights);
            when ``weights`` is given the tag only supplies the normalisation constants.
        device: where the model lives.
        weights: a local open_clip state-dict file (``.safetensors``/``.bin``/``.pt``) to load
            instead of the tag's download.

    ``name="toy"`` is the toy CLIP trained on dclip's synthetic faces, a dclip model file shipped with dclip
    (:data:`TOY_CLIP`, read by :func:`load_clip_file`; ``pretrained`` and ``weights`` are ignored).

    Raises:
        WeightsNotFoundError: offline and the tag's weights are not cached (no minute of retries).
    """
    import open_clip

    if name == "toy":
        return load_clip_file(shipped_file(TOY_CLIP), device)

    if weights is not None:
        checkpoint = str(resolve_file(weights, filename=Path(weights).name, what=f"CLIP model {name}"))
    elif pretrained is None or os.path.isfile(pretrained):
        checkpoint = pretrained
    else:
        checkpoint = _checkpoint_for_tag(name, pretrained)
    model = _create(open_clip, name, checkpoint, device)
    is_tag = bool(pretrained) and not os.path.isfile(pretrained)
    tag_cfg = open_clip.get_pretrained_cfg(name, pretrained) if is_tag else {}
    mean = tag_cfg.get("mean", OPENAI_MEAN)
    std = tag_cfg.get("std", OPENAI_STD)
    label = f"{name}/{Path(weights).name if weights is not None else pretrained}"
    return _wrap(model, _tokenizer(name), mean, std, device, label)


def _create(open_clip, name: str, checkpoint: str | None, device):
    """``open_clip.create_model`` with a local file checked first (:func:`check_weights_file`): a truncated or
    mismatched file is one :class:`~dclip.runtime.errors.UnreadableFileError` line, not open_clip's traceback."""
    if checkpoint is None or not os.path.isfile(checkpoint):
        return open_clip.create_model(name, pretrained=checkpoint, device=device)
    check_weights_file(checkpoint)
    try:
        return open_clip.create_model(name, pretrained=checkpoint, device=device)
    except (RuntimeError, KeyError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnreadableFileError(checkpoint, f"is not a readable {name} weight file ({first})",
                                  "Pass the file of the CLIP architecture --clip names, or copy it again.") from None


def load_clip_file(path: str | os.PathLike, device: str | torch.device = "cpu") -> Clip:
    """A frozen CLIP from a dclip model file (:mod:`dclip.models.folder`): an ``open_clip.CLIP`` built from
    the sidecar's ``clip_config``, its normalisation ``mean``/``std``, and the standard CLIP BPE tokenizer
    padded to the config's context length. Stored in fp16 or fp32, run in fp32."""
    import open_clip

    meta = read_sidecar(path)
    if "clip_config" not in meta:
        raise ValueError(f"'{path}' is not a dclip CLIP file: its sidecar '{Path(path).with_suffix('.json').name}' "
                         "lacks 'clip_config' (the open_clip.CLIP keywords). Re-save it with dclip.models.folder.")
    config = meta["clip_config"]
    model = open_clip.CLIP(**config)  # (its attention mask is a non-saved buffer)
    model.load_state_dict(read_tensors(path), strict=True)
    tokenizer = bpe_tokenizer(int(config["text_cfg"]["context_length"]))
    return _wrap(model.to(device), tokenizer, meta.get("mean", OPENAI_MEAN), meta.get("std", OPENAI_STD), device,
                 meta.get("name", Path(path).stem.replace("_", "-")))


@lru_cache(maxsize=4)
def bpe_tokenizer(context_length: int):
    """The standard CLIP BPE tokenizer (open_clip's SimpleTokenizer, vocabulary shipped with open_clip),
    padding to ``context_length`` tokens."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


def tiny_clip(seed: int = 0, device: str | torch.device = "cpu") -> Clip:
    """A random-weight miniature CLIP (ViT, width 32, 2 layers, 224 px input, 32-d embeddings).

    Built straight from ``open_clip.CLIP`` with a config dict (the class ``create_model``
    instantiates for built-in configs) so open_clip's global model registry is left untouched.
    It uses the standard CLIP tokenizer. Same seed -> same weights; the global RNG is not disturbed.
    """
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**_TINY_CFG)
    open_clip.set_model_preprocess_cfg(model, {"size": _TINY_CFG["vision_cfg"]["image_size"],
                                               "mean": OPENAI_MEAN, "std": OPENAI_STD})
    model.to(device)
    return _wrap(model, _tokenizer("ViT-B-16-quickgelu"), OPENAI_MEAN, OPENAI_STD, device,
                 f"tiny-clip/seed{seed}")


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------

def _resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic resize of the shorter side to ``size`` then a centre crop (CLIP's preprocessing).

    No antialiasing, as the authors' tensor pipeline (torchvision ``Resize`` on tensors at the time).
    """
    height, width = x.shape[-2:]
    if (height, width) != (size, size):
        if height <= width:
            new_hw = (size, int(size * width / height))
        else:
            new_hw = (int(size * height / width), size)
        x = F.interpolate(x, size=new_hw, mode="bicubic", align_corners=False)
    top = int(round((x.shape[-2] - size) / 2.0))  # torchvision CenterCrop's rounding
    left = int(round((x.shape[-1] - size) / 2.0))
    return x[..., top:top + size, left:left + size]


def _clip_input(clip: Clip, x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images -> the normalised tensor CLIP's image encoder expects (differentiable)."""
    x = (x.to(clip.device, torch.float32) + 1.0) / 2.0
    x = _resize_center_crop(x, clip.image_size)
    mean = torch.tensor(clip.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(clip.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def encode_images(clip: Clip, x: torch.Tensor) -> torch.Tensor:
    """E_I(x) for images in [-1, 1], shape (N, 3, H, W) -> (N, D), L2-normalised, differentiable."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images of shape (N, 3, H, W) in [-1, 1], got {tuple(x.shape)}")
    return F.normalize(clip.model.encode_image(_clip_input(clip, x)).float(), dim=-1)
