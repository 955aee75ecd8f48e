"""dclip: a reproducible companion to DiffusionCLIP (Kim, Kwon & Ye, CVPR 2022).

The core: :func:`invert` and :func:`generate` (DDIM on the paper's grid, eqs. 12-13), noise mixes
(:class:`RatioMix`, :class:`ThresholdMix`, eq. 14) and :func:`load_unet` for every checkpoint.

Three layers: :mod:`dclip.engine` (the paper's method), :mod:`dclip.baselines` (the GAN comparators,
which import only the engine) and :mod:`dclip.notebook` (what the notebooks need). The command line
(:mod:`dclip.cli`, ``python -m dclip``) and the toy world (:mod:`dclip.toy`) sit beside them.
"""
from .method.ddim import generate, invert, q_sample
from .models.unet import PRESETS, load_unet
from .method.mixing import RatioMix, ThresholdMix
from .models.weights import WeightsNotFoundError
from .method.edit import edit
from .method.finetune import finetune
from .method.latents import precompute
from .models.clip import load_clip

from .version import __version__
__all__ = ["invert", "generate", "q_sample", "precompute", "finetune", "edit", "load_unet", "load_clip", "PRESETS",
           "RatioMix", "ThresholdMix", "WeightsNotFoundError", "__version__"]
