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
from .data.images import load_folder, load_image, save_image
from .method.attributes import ATTRIBUTES
from .method.ddim import generate, invert, q_sample
from .method.edit import edit
from .method.finetune import FinetuneConfig, attribute_config, finetune, load_finetuned
from .method.latents import precompute
from .method.mixing import RatioMix, ThresholdMix
from .models.clip import load_clip
from .models.unet import PRESETS, load_unet
from .models.weights import WeightsNotFoundError
from .runtime.errors import UnreadableFileError
from .version import __version__

__all__ = ["invert", "generate", "q_sample", "precompute", "finetune", "edit", "FinetuneConfig", "attribute_config",
           "load_finetuned", "ATTRIBUTES", "load_unet", "load_clip", "load_image", "load_folder", "save_image",
           "PRESETS", "RatioMix", "ThresholdMix", "WeightsNotFoundError", "UnreadableFileError", "__version__"]
