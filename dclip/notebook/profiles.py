"""Run profiles for the notebooks: which models, how many images and steps, which device.

A profile is a frozen record of literal settings. Two are real:

* ``paper``: the pretrained 256² diffusion models, OpenAI CLIP ViT-B/16, ArcFace IR-SE50 (else VGGFace2),
  LPIPS on ImageNet AlexNet, and the paper's hyper-parameters (Sec. 4: S_inv = 40 and S_gen = 6
  while fine-tuning, 40/40 at test time, lr 1e-6, the attribute's own t0). Needs a CUDA GPU.
* ``toy``: the miniature world that ships with dclip (:mod:`dclip.toy`): a DDPM, a CLIP and a judge
  classifier trained on synthetic 32 px cartoon faces, on the CPU. The paper's method, code path and
  settings (S_inv/S_gen 40/6 while training, 40/40 at test) on small models and images, so every
  notebook shows its claim in minutes; the paper's attributes are replaced by toy stand-ins
  (:data:`dclip.method.attributes.TOY_STAND_INS`) and edits are scored by the judge.
* ``toy-check``: the toy profile on 8 test faces and one fine-tune per edit: what ``make test`` runs the
  notebooks at (nbval); ``make figures`` shows the full toy profile.
* ``smoke``: the ``tiny`` random-weight UNet, :func:`dclip.method.losses.tiny_clip`, a random face
  model and a random LPIPS backbone at 32 px, with a handful of images and steps, on the CPU.
  Every notebook runs end to end in well under a minute; the numbers mean nothing about the paper.

Each also names the GAN baselines of notebook 02 (StyleCLIP, StyleGAN-NADA; Fig. 5, Tables 1 and 3):
``gan`` picks their models (``pretrained``: the FFHQ StyleGAN2 and the baselines' own CLIP, face and
LPIPS models; ``toy``: the shipped toy StyleGAN2 and e4e with the toy CLIP and the judge; ``tiny``: :func:`dclip.baselines.stylegan2.tiny_stylegan2` with the profile's own CLIP, face model
and LPIPS) and ``gan_settings`` their step counts (a key of :data:`dclip.baselines.comparison.GAN_SETTINGS`).

``auto`` picks one: ``$DCLIP_PROFILE`` when set, else ``paper`` on a machine with CUDA and
``toy`` (with a one-line explanation) elsewhere.

:func:`customise` changes a profile for one run: the device (a notebook's ``device`` parameter or
``$DCLIP_DEVICE``; ``cpu`` runs even the paper profile, slowly) and the amount of work (images,
DDIM steps, training images, optimisation steps), so that the real models can be seen working on
one image on a machine without a GPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

__all__ = ["Profile", "PROFILES", "get_profile", "customise", "resolve_device", "SMOKE_STAMP", "TOY_STAMP"]

SMOKE_STAMP = "smoke profile: tiny untrained models, not the paper's result"
TOY_STAMP = "toy profile: miniature models trained on synthetic faces"


@dataclass(frozen=True)
class Profile:
    """Every setting a notebook takes from its profile (all literals)."""

    name: str
    unet: str | None            # UNet preset for every domain; None = the domain's own pretrained model
    clip: str                   # "tiny" or an open_clip architecture name
    clip_pretrained: str | None  # open_clip pretrained tag ("openai") when ``clip`` is a name
    face_pretrained: bool       # pretrained identity network, ArcFace or VGGFace2 (else a random facenet)
    lpips_pretrained: bool      # ImageNet AlexNet backbone for LPIPS (else random)
    align_faces: bool           # FFHQ-align the shipped sample portraits (MTCNN)
    image_size: int
    n_test: int                 # images per experiment (edited / reconstructed)
    n_ablation: int             # images in the S_inv x S_gen study (Fig. 8a; up to 200 + 200 steps each)
    n_train: int                # training images per fine-tune (the paper: 50)
    n_inv: int                  # S_inv at test time (the paper: 40)
    n_gen: int                  # S_gen at test time (the paper: 40)
    n_inv_train: int            # S_inv of the training latents (the paper: 40)
    n_gen_train: int            # S_gen while fine-tuning (the paper: 6)
    n_iter: int                 # passes over the training latents
    lr: float                   # initial learning rate (the paper: 1e-6)
    latent_opt_iterations: int  # Fig. 9 baseline: Adam steps on x_t0
    latent_opt_lr: float
    project_repeats: int        # K rounds of forward noising + denoising (Sec. 3.2: K > 8)
    project_steps: int          # DDIM steps per round
    device: str
    num_threads: int            # torch CPU threads; 0 leaves torch's default
    seed: int
    stamp: str                  # written on every figure; "" for real results
    figures_subdir: str         # figures/<subdir>; "" for the real figures
    disk_cache: bool            # keep latents and fine-tuned models in the disk cache (dclip.runtime.cache)
    gan: str                    # GAN baselines' models: "pretrained" (load_gan_baselines), "toy" (shipped) or "tiny" (random)
    gan_settings: str           # their steps: a key of dclip.baselines.comparison.GAN_SETTINGS ("paper", "smoke")
    world: str = "paper"        # "paper": the paper's attributes and test photos; "toy": dclip.toy's faces,
                                # stand-in attributes and the judge (see dclip.method.attributes.TOY_STAND_INS)
    n_runs: int = 1             # independent fine-tunes per judged edit (toy world: own training faces each)
    lora_lr: float = 1e-4       # initial learning rate of a LoRA fine-tune (adapter="lora"; beyond the paper).
                                # toy: chosen on validation faces (bench/recipes.py --choose); paper: diffusers'
                                # LoRA examples' 1e-4, not measured at 256²
    precision: str = "auto"     # edits and fine-tunes: "auto" = the device's fast path (bf16 on CUDA and on CPUs
                                # with native bf16, dclip.runtime.fast); "fp32" = fp32 on every CPU, for profiles
                                # whose numbers are checked or published, so that none depends on the CPU

    @property
    def fast(self) -> str:
        """The ``fast=`` argument of this profile's edits and fine-tunes (:func:`dclip.runtime.fast.fixed_precision`);
        inversions and reconstructions are fp32 everywhere (``RECONSTRUCTION``)."""
        from ..runtime.fast import EDITING, fixed_precision

        return fixed_precision(EDITING, self.precision)

    @property
    def is_smoke(self) -> bool:
        return self.name == "smoke"

    @property
    def is_toy(self) -> bool:
        return self.world == "toy"

    def unet_for(self, domain: str) -> str:
        """The UNet preset that stands for a domain (``celeba_hq``, ``lsun_church``, ...)."""
        return self.unet or domain

    def describe(self) -> str:
        """One line: name, device, image size, steps."""
        return (f"profile {self.name}: {self.image_size} px on {self.device}, S_inv/S_gen {self.n_inv}/{self.n_gen} "
                f"at test time, {self.n_inv_train}/{self.n_gen_train} while fine-tuning, {self.n_train} training "
                f"images, {self.n_iter} pass(es), lr {self.lr:g}")


PROFILES: dict[str, Profile] = {
    "paper": Profile(
        name="paper", unet=None, clip="ViT-B-16-quickgelu", clip_pretrained="openai", face_pretrained=True,
        lpips_pretrained=True, align_faces=True, image_size=256, n_test=8, n_ablation=8, n_train=50, n_inv=40,
        n_gen=40, n_inv_train=40, n_gen_train=6, n_iter=1, lr=1e-6, latent_opt_iterations=50, latent_opt_lr=0.01,
        project_repeats=10, project_steps=6, device="cuda", num_threads=0, seed=0, stamp="",
        figures_subdir="", disk_cache=True, gan="pretrained", gan_settings="paper"),
    "smoke": Profile(
        name="smoke", unet="tiny", clip="tiny", clip_pretrained=None, face_pretrained=False,
        lpips_pretrained=False, align_faces=False, image_size=32, n_test=2, n_ablation=1, n_train=2, n_inv=10,
        n_gen=10, n_inv_train=8, n_gen_train=3, n_iter=2, lr=2e-4, latent_opt_iterations=4, latent_opt_lr=0.05,
        project_repeats=2, project_steps=3, device="cpu", num_threads=1, seed=0, stamp=SMOKE_STAMP,
        figures_subdir="smoke", disk_cache=False, gan="tiny", gan_settings="smoke", precision="fp32"),
    "toy": Profile(
        name="toy", unet="toy", clip="toy", clip_pretrained=None, face_pretrained=False,
        lpips_pretrained=False, align_faces=False, image_size=32, n_test=32, n_ablation=32, n_train=8, n_inv=40,
        n_gen=40, n_inv_train=40, n_gen_train=6, n_iter=6, lr=3e-5, latent_opt_iterations=20, latent_opt_lr=0.05,
        project_repeats=4, project_steps=6, device="cpu", num_threads=0, seed=0, stamp=TOY_STAMP,
        figures_subdir="toy", disk_cache=False, gan="toy", gan_settings="toy", world="toy", n_runs=3,
        lora_lr=1e-3, precision="fp32"),
}
#: The toy profile's recipe per edit: what each toy edit changes in it (lr, passes ``n_iter``, λ_L1), as the paper
#: and the authors' configs set them per attribute. Chosen on the validation faces by ``python bench/recipes.py
#: --choose edits`` (its search: bench/results-recipes-choose-cpu.json, bench/RESULTS.md), never on the test faces;
#: an edit missing here takes the toy profile's recipe as it is. No t0 here: the studies apply an edit at its
#: attribute's t0 (:data:`dclip.method.attributes.ATTRIBUTES`), so the fine-tune must learn it there; the search
#: measures t0 ± 100 all the same (tests/test_cli.py keeps t0 out).
#: Empty while the shipped toy CLIP is the contrastive one: the first search (bench/RESULTS.md, docs/toy.md) ran on
#: the CLIP trained on true-edit directions (not shipped yet) and chose 12 passes for smiling and gray hair there.
TOY_EDIT_RECIPES: dict[str, dict] = {}


def edit_recipe(profile: Profile, edit: str | None) -> dict:
    """What ``profile`` changes for the edit called ``edit`` (:data:`TOY_EDIT_RECIPES` at the toy profiles; ``{}``
    elsewhere and for free text)."""
    return dict(TOY_EDIT_RECIPES.get(edit, {})) if profile.is_toy and edit else {}


#: What ``make test`` (nbval) runs: the toy profile on 8 test faces with one fine-tune per edit, so the notebooks'
#: checked cells run in a few minutes; ``make figures`` runs the full toy profile (32 faces, 3 fine-tunes).
PROFILES["toy-check"] = replace(PROFILES["toy"], name="toy-check", n_test=8, n_ablation=8, n_runs=1,
                                figures_subdir="toy-check", gan_settings="toy-check")


def _auto() -> tuple[str, str]:
    """(profile name, why) for ``auto``."""
    forced = os.environ.get("DCLIP_PROFILE", "").strip()
    if forced and forced != "auto":
        return forced, f"DCLIP_PROFILE={forced} is set"
    import torch

    if torch.cuda.is_available():
        return "paper", f"a CUDA GPU is available ({torch.cuda.get_device_name(0)})"
    return "toy", ("no CUDA GPU here, so the notebook runs the CPU toy profile: the paper's method on miniature "
                   "models trained on synthetic 32 px faces (profile = 'paper' on a GPU for the real figures)")


def get_profile(name: str = "auto", *, verbose: bool = True) -> Profile:
    """The profile called ``name`` (``paper``, ``toy``, ``smoke`` or ``auto``); ``auto`` says what it chose."""
    if name == "auto":
        name, why = _auto()
        if verbose:
            print(f"profile 'auto' -> '{name}': {why}.")
    if name not in PROFILES:
        raise ValueError(f"unknown profile '{name}'; choose 'auto', 'paper', 'toy', 'toy-check' or 'smoke'.")
    return PROFILES[name]


def resolve_device(device: str = "", default: str = "cpu") -> str:
    """The torch device to run on: ``device`` when given (not ``""``/``"auto"``), else ``$DCLIP_DEVICE``,
    else ``default`` (the profile's)."""
    for choice in (device, os.environ.get("DCLIP_DEVICE", "")):
        choice = (choice or "").strip()
        if choice and choice != "auto":
            return choice
    return default


def customise(profile: Profile, *, device: str = "", n_images: int = 0, n_steps: int = 0, n_train: int = 0,
              n_train_steps: int = 0, latent_steps: int = 0) -> Profile:
    """``profile`` with its device and amount of work changed; ``""``/``0`` keep the profile's value.

    Args:
        device: torch device (see :func:`resolve_device`; ``$DCLIP_DEVICE`` applies when empty).
        n_images: test images per experiment (``n_test``), also in the S_inv x S_gen study.
        n_steps: S_inv = S_gen at test time (the paper: 40).
        n_train: training images per fine-tune; with the paper's one pass, also the number of updates.
        n_train_steps: S_inv of the training latents and S_gen while fine-tuning (the paper: 40 and 6).
        latent_steps: Adam steps of the latent-optimisation baseline (Fig. 9) and DDIM steps per
            round of the forward-noising projection (Sec. 3.2).
    """
    changes: dict = {"device": resolve_device(device, profile.device)}
    for value, fields in [(n_images, ("n_test", "n_ablation")), (n_steps, ("n_inv", "n_gen")),
                          (n_train, ("n_train",)), (n_train_steps, ("n_inv_train", "n_gen_train")),
                          (latent_steps, ("latent_opt_iterations", "project_steps"))]:
        if int(value) < 0:
            raise ValueError(f"{fields[0]} override must be >= 0 (0 keeps the profile's), got {value}.")
        if value:
            changes.update({field: int(value) for field in fields})
    return replace(profile, **changes)
