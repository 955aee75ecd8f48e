"""The studies behind the numbered notebooks, as plain functions of a :class:`~dclip.notebook.context.Context`.

Each returns a :class:`Study`: the rows of its table and the images of its figure, so a notebook
is a parameters cell, one call, one figure and one printed table. Each paper result has its module
in :mod:`dclip.studies`; this one gathers them under one name for the notebooks:

* :mod:`.reconstruction`      -- notebook 01, Table 1 / Fig. 1a; notebook 03, Fig. 8a (:func:`step_ablation`).
* :mod:`.manipulation`        -- notebook 02, Fig. 5 and Tables 1 and 3, with the :data:`BASELINES` hook.
* :mod:`.ablation`            -- notebook 03, Fig. 8b (:func:`t0_ablation`).
* :mod:`.latent_vs_finetune`  -- notebook 04, Fig. 9.
* :mod:`.novel`               -- notebook 05, Fig. 7.
* :mod:`.judged_edits`        -- notebook 02 at the toy profile: every toy edit against the true edit.
* :mod:`.edit_failures`       -- notebook 02 at the toy profile: what stops each toy edit (CLIP, generator, recipe).
* :mod:`.toy_table3`          -- notebooks 01 and 02 at the toy profile: the GAN baselines in the toy StyleGAN2.
* :mod:`.toy_gan`             -- the toy StyleGAN2's and e4e's files and their bars.
* :mod:`.common`              -- :class:`Study`, :class:`EditSet` and the helpers they share.
"""
from .ablation import t0_ablation
from .common import GAN_DOMAIN, EditSet, Study, judged, mean, reconstruction_scores
from .edit_failures import edit_failures
from .judged_edits import judged_edits
from .composition import null_edits
from .latent_vs_finetune import latent_vs_finetune
from .manipulation import (BASELINES, DIFFUSION_RECONSTRUCTION, GAN_INVERSION, GAN_METHODS, diffusionclip_edits,
                           edit_rows, gan_edit_sets, gan_outputs, manipulation_study, register_baseline, run_baseline,
                           summary_rows)
from .novel import novel_applications
from .reconstruction import (diffusion_reconstruction_rows, diffusion_reconstructions, gan_inversion_rows,
                             reconstruction_study, step_ablation)
from .toy_gan import describe_quality as describe_gan_quality, recorded_quality as toy_gan_quality
from .toy_table3 import comparable_claim, gan_inversion_claim, toy_comparison, toy_inversions

__all__ = ["Study", "EditSet", "BASELINES", "GAN_METHODS", "GAN_DOMAIN", "GAN_INVERSION", "DIFFUSION_RECONSTRUCTION",
           "register_baseline", "run_baseline", "reconstruction_study", "gan_outputs", "gan_edit_sets",
           "diffusionclip_edits", "diffusion_reconstructions", "edit_rows", "summary_rows", "gan_inversion_rows",
           "diffusion_reconstruction_rows", "manipulation_study", "step_ablation", "t0_ablation", "latent_vs_finetune",
           "novel_applications", "judged_edits", "edit_failures", "judged", "mean", "reconstruction_scores", "toy_gan_quality", "describe_gan_quality", "null_edits",
           "toy_comparison", "toy_inversions", "comparable_claim", "gan_inversion_claim"]
