"""dclip: a reproducible companion to DiffusionCLIP (Kim, Kwon & Ye, CVPR 2022).

The front door: the paper's verbs -- :func:`invert` and :func:`generate` (DDIM on the paper's grid, eqs. 12-13),
:func:`precompute` (the training latents), :func:`finetune` (eq. 10), :func:`edit` (Sec. 3.2), noise mixes
(:class:`RatioMix`, :class:`ThresholdMix`, eq. 14) -- and the loaders :func:`load_unet`, :func:`load_clip`,
:func:`load_image`, :func:`load_folder`, and their errors (:class:`WeightsNotFoundError`: a file that is not on this
machine; :class:`UnreadableFileError`: one that is there but truncated, damaged or of the wrong kind).
``python -m dclip`` (:mod:`dclip.cli`) is the command line.

The folders are the layers (docs/layout.md): :mod:`dclip.runtime`, :mod:`dclip.data`, :mod:`dclip.models`,
:mod:`dclip.method` (the paper), :mod:`dclip.baselines` and :mod:`dclip.toy`, :mod:`dclip.studies`,
:mod:`dclip.notebook`; an import only goes down.
"""
from __future__ import annotations

import importlib

from .version import __version__

#: Each name of the front door and the module it comes from, imported on first use (PEP 562), so that
#: ``import dclip`` and ``python -m dclip --help`` stay light (no torch until a name needs it).
_FRONT_DOOR = {
    "load_folder": "data.images", "load_image": "data.images", "save_image": "data.images",
    "ATTRIBUTES": "method.attributes",
    "generate": "method.ddim", "invert": "method.ddim", "q_sample": "method.ddim",
    "edit": "method.edit",
    "FinetuneConfig": "method.finetune", "attribute_config": "method.finetune", "finetune": "method.finetune",
    "load_finetuned": "method.finetune",
    "precompute": "method.latents",
    "RatioMix": "method.mixing", "ThresholdMix": "method.mixing",
    "load_clip": "models.clip",
    "PRESETS": "models.unet", "load_unet": "models.unet",
    "WeightsNotFoundError": "models.weights",
    "UnreadableFileError": "runtime.errors",
}

__all__ = ["invert", "generate", "q_sample", "precompute", "finetune", "edit", "FinetuneConfig", "attribute_config",
           "load_finetuned", "ATTRIBUTES", "load_unet", "load_clip", "load_image", "load_folder", "save_image",
           "PRESETS", "RatioMix", "ThresholdMix", "WeightsNotFoundError", "UnreadableFileError", "__version__"]


def __getattr__(name: str):
    if name not in _FRONT_DOOR:
        raise AttributeError(f"module 'dclip' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{_FRONT_DOOR[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
