"""Loading the shipped toy models: the DDPM (``load_unet("toy")``), the CLIP (``load_clip("toy")``) and the judge.

The files live in ``dclip/toy/models/`` (package data): ``<name>.safetensors`` beside a ``<name>.json``
sidecar with the training settings, the domain version and hash, the CPU time and the final metrics.
``make toy-models`` (``python -m dclip.toy train all``) rewrites them.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch

from .train import CLIP_CONFIG, MODELS_DIR, Judge, clip_tokenizer

__all__ = ["model_file", "sidecar", "load_toy_unet", "load_toy_clip", "load_judge", "MODEL_NAMES"]

MODEL_NAMES = ("toy_ddpm", "toy_clip", "toy_judge")


def model_file(name: str, folder: Path = MODELS_DIR) -> Path:
    """The shipped ``<name>.safetensors``; a clear error when it is missing."""
    path = Path(folder) / f"{name}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"the toy model '{name}' is not at {path}. It ships with dclip; in a source "
                                "checkout rebuild it with `make toy-models` (python -m dclip.toy train all).")
    return path


def sidecar(name: str, folder: Path = MODELS_DIR) -> dict:
    """The JSON sidecar of a shipped toy model (settings, domain, metrics)."""
    return json.loads(model_file(name, folder).with_suffix(".json").read_text())


def _float_state(path: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}


def load_toy_unet(folder: Path = MODELS_DIR):
    """The toy DDPM as a diffusers ``UNet2DModel`` in eval mode (architecture from its sidecar)."""
    from ..models.unet import build_unet

    meta = sidecar("toy_ddpm", folder)
    return build_unet(meta["unet_config"], _float_state(model_file("toy_ddpm", folder)))


def load_toy_clip(device: str | torch.device = "cpu", folder: Path = MODELS_DIR):
    """The toy CLIP as a frozen :class:`dclip.clip_loss.Clip` (stored in fp16, run in fp32)."""
    import open_clip

    from ..models.clip import _wrap

    meta = sidecar("toy_clip", folder)
    model = open_clip.CLIP(**meta.get("clip_config", CLIP_CONFIG))  # (its attention mask is a non-saved buffer)
    model.load_state_dict(_float_state(model_file("toy_clip", folder)), strict=True)
    return _wrap(model.to(device), _tokenizer(), meta["mean"], meta["std"], device, "toy-clip")


@lru_cache(maxsize=1)
def _tokenizer():
    return clip_tokenizer()


def load_judge(device: str | torch.device = "cpu", folder: Path = MODELS_DIR) -> Judge:
    """The judge classifier (eval mode, frozen)."""
    judge = Judge()
    judge.load_state_dict(_float_state(model_file("toy_judge", folder)))
    return judge.to(device).eval().requires_grad_(False)
