"""The starting point of every notebook: a profile with its models, its world and its output folder.

:class:`Context` is a registry of the models a notebook uses, each loaded once on first use (the diffusion
UNet per domain, CLIP, the face model, LPIPS, the toy judge, the GAN baselines' models), and a memo of what
several results share (:class:`~dclip.notebook.memo.Memo`: images, the latents of a set of images at a t0,
fine-tuned models, GAN baseline runs). Where the images come from and which attributes can be edited is the
world's business (:attr:`Context.world`, :mod:`dclip.notebook.worlds`); where results go is
:attr:`Context.outputs` (:class:`~dclip.notebook.outputs.Outputs`). The verbs hand finished objects to the
method (:mod:`dclip.method`), never callbacks into the notebook layer.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch

from ..method.attributes import Attribute
from ..method.latents import Latents, fingerprint
from ..runtime.fast import RECONSTRUCTION
from .costs import expected_time
from .memo import Memo
from .outputs import Outputs, figures_dir
from .profiles import Profile, customise, get_profile
from .worlds import SAMPLE_SETS, as_attribute, world_for

__all__ = ["Context", "SAMPLE_SETS", "disk_cache"]


class Context:
    """A profile's models, world and figure folder for one notebook session."""

    def __init__(self, profile: Profile, *, image_dir: str = "", train_dir: str = "",
                 image_dirs: dict[str, str] | None = None, train_dirs: dict[str, str] | None = None,
                 output_dir: str = ""):
        """``image_dirs`` / ``train_dirs`` map a domain to its test / training image folder ("" or
        missing: the world's own images / the test images); ``image_dir`` and ``train_dir`` are the
        CelebA-HQ entries. ``output_dir`` overrides the figures root (see :func:`figures_dir`)."""
        if profile.device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"profile '{profile.name}' runs on a CUDA GPU and none is available here. Use "
                               "profile = 'smoke' (or 'auto'), or run the real models on the CPU, slowly: "
                               "device = 'cpu' (or DCLIP_DEVICE=cpu), with n_images = 1 and few steps.")
        if profile.num_threads:
            torch.set_num_threads(profile.num_threads)
        torch.manual_seed(profile.seed)
        self.profile, self.device = profile, torch.device(profile.device)
        image_dirs = {**(image_dirs or {}), **({"celeba_hq": image_dir} if image_dir else {})}
        train_dirs = {**(train_dirs or {}), **({"celeba_hq": train_dir} if train_dir else {})}
        self.notes: list[str] = []
        self.memo = Memo()
        self.world = world_for(profile, self.device, self.memo, self.note, image_dirs=image_dirs,
                               train_dirs=train_dirs)
        self.outputs = Outputs(figures_dir(profile, output_dir), profile, self.notes, image_dirs, train_dirs)
        from ..baselines.comparison import GAN_SETTINGS

        #: The GAN baselines' steps (by the profile's ``gan_settings``); assign a ``GanBaselineSettings``
        #: to change them for this session.
        self.gan_settings = GAN_SETTINGS[profile.gan_settings]

    @classmethod
    def create(cls, profile: str = "auto", *, device: str = "", n_images: int = 0, n_steps: int = 0,
               n_train: int = 0, n_train_steps: int = 0, latent_steps: int = 0, gan_steps: int = 0,
               **kwargs) -> "Context":
        """A context for the profile called ``profile`` (``auto`` prints what it chose), with the
        device and amount of work a notebook's parameters ask for (:func:`dclip.notebook.profiles.customise`;
        ``""``/``0``: the profile's). ``gan_steps`` caps each GAN-baseline optimisation's steps."""
        chosen = customise(get_profile(profile), device=device, n_images=n_images, n_steps=n_steps, n_train=n_train,
                           n_train_steps=n_train_steps, latent_steps=latent_steps)
        ctx = cls(chosen, **kwargs)
        if gan_steps:
            ctx.gan_settings = ctx.gan_settings.capped(int(gan_steps))
        return ctx

    def note(self, text: str) -> None:
        """Print ``note: <text>`` once per session and keep it with the saved tables."""
        if text not in self.notes:
            self.notes.append(text)
            print(f"note: {text}")

    # -- models -----------------------------------------------------------------------------------

    def unet(self, domain: str = "celeba_hq") -> torch.nn.Module:
        """The pretrained diffusion model standing for ``domain`` (the ``tiny`` UNet at the smoke profile)."""
        from ..models.unet import load_unet

        def load():
            model = load_unet(self.profile.unet_for(domain)).to(self.device)
            if self.device.type == "cpu" and self.profile.image_size >= 128:
                print(expected_time(self.profile, model, self.device, self.world.n_train_images(domain)))
            return model

        return self.memo.get(("unet", self.profile.unet_for(domain)), load)

    @cached_property
    def clip(self):
        """CLIP: OpenAI ViT-B/16 at the paper profile, the toy CLIP at the toy profile, :func:`tiny_clip`
        at the smoke profile."""
        from ..models.clip import load_clip, tiny_clip

        if self.profile.clip == "tiny":
            return tiny_clip(seed=self.profile.seed, device=self.device)
        return load_clip(self.profile.clip, self.profile.clip_pretrained, device=self.device)

    @cached_property
    def judge(self):
        """The toy world's judge classifier (:func:`dclip.toy.nets.load_judge`); toy profile only."""
        if not self.profile.is_toy:
            raise RuntimeError(f"the judge scores toy-world edits only; profile '{self.profile.name}' has none. "
                               "Use profile = 'toy'.")
        from ..toy.nets import load_judge

        return load_judge(self.device)

    @cached_property
    def face_model(self) -> torch.nn.Module:
        """The face-identity network: with pretrained weights, ArcFace IR-SE50 (the paper's) when
        ``model_ir_se50.pth`` is available, else facenet VGGFace2 with a note
        (:func:`dclip.models.identity.load_identity_model`); a random facenet at the smoke profile."""
        from ..models.identity import load_face_model, load_identity_model

        if self.profile.face_pretrained:
            model, note = load_identity_model(self.device)
            if note:
                self.note(note)
            return model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.profile.seed)
            return load_face_model(self.device, pretrained=False)

    @cached_property
    def lpips(self) -> torch.nn.Module:
        """LPIPS (AlexNet); a seeded random trunk at the smoke profile."""
        from ..method.metrics import load_lpips

        return load_lpips(self.profile.lpips_pretrained, device=self.device, seed=self.profile.seed)

    def gan_models(self) -> dict:
        """The GAN baselines' models, loaded once, as keyword arguments of
        :func:`dclip.baselines.comparison.run_gan_baselines` (:func:`dclip.notebook.gan.load_gan_models`)."""
        from .gan import load_gan_models

        return self.memo.get(("gan models",), lambda: load_gan_models(self))

    def gan_baselines(self, faces: torch.Tensor, prompts) -> dict:
        """StyleCLIP (from e4e and from the W+ projection) and StyleGAN-NADA on ``faces`` for each
        ``(source, target)`` prompt (Fig. 5, Table 3), run once per session per (faces, prompts, settings):
        asking for each method in turn costs one run. Returns ``{method: BaselineOutput}`` at 256 px on the CPU.
        """
        from ..baselines.comparison import run_gan_baselines

        prompts = tuple(tuple(p) for p in prompts)
        key = ("gan run", fingerprint([faces]), prompts, self.gan_settings)
        return self.memo.get(key, lambda: run_gan_baselines(faces, prompts, settings=self.gan_settings,
                                                            **self.gan_models()))

    # -- the method: invert, fine-tune, edit -----------------------------------------------------------

    def latents(self, x0: torch.Tensor, t0: int, domain: str = "celeba_hq", steps: int | None = None, *,
                progress: bool | None = None) -> Latents:
        """``x0`` inverted to ``t0`` with the domain's original model in ``steps`` (default: the profile's
        test-time S_inv) DDIM steps and reconstructed with as many (:func:`dclip.method.latents.precompute`).

        Computed once per session per (model, images, t0, steps), so edits, reconstructions and
        fine-tunes that share them invert once; with the profile's ``disk_cache`` also kept in the disk
        cache's ``latents/`` folder (:mod:`dclip.runtime.cache`).
        """
        from ..method.latents import precompute
        from ..runtime.cache import enforce_limit

        steps, model, cache = int(steps or self.profile.n_inv), self.unet(domain), disk_cache(self.profile)

        def compute() -> Latents:
            latents = precompute(model, x0, int(t0), steps, progress=progress, weights=self.memo.fingerprint(model),
                                 cache_dir=cache / "latents" if cache is not None else None, fast=RECONSTRUCTION)
            if cache is not None:
                enforce_limit()
            return latents

        return self.memo.get(("latents", self.profile.unet_for(domain), fingerprint([x0]), int(t0), steps), compute)

    def latent(self, x0: torch.Tensor, t0: int, domain: str = "celeba_hq") -> torch.Tensor:
        """x_t0 of ``x0`` under the domain's original model at the profile's test-time S_inv, once per
        session: from :meth:`latents` when those were computed, else inverted alone (no reconstruction)."""
        from ..method.accelerated import invert_fast

        key = (self.profile.unet_for(domain), fingerprint([x0]), int(t0), self.profile.n_inv)
        known = self.memo.peek(("latents", *key))
        if known is not None:
            return known.x_lat
        # at the one precision of latents (as :meth:`latents`): every edit of the session starts from it
        return self.memo.get(("inverted", *key), lambda: invert_fast(self.unet(domain), x0, int(t0),
                                                                     self.profile.n_inv, fast=RECONSTRUCTION))

    def finetune(self, item: str | Attribute, t0: int | None = None, *, replicate: int = 0,
                 progress: bool | None = None, callback=None, stop=None) -> torch.nn.Module:
        """Fine-tune the domain's model for an attribute (eq. 10) once per session; returns the model.

        ``item`` is an :data:`~dclip.method.attributes.ATTRIBUTES` name or an :class:`Attribute`; ``t0``
        overrides the attribute's return step (Fig. 8b); ``replicate`` 1, 2, ... are independent fine-tunes
        (their own seed and, in the toy world, their own training faces). With the profile's ``disk_cache``
        the model is also kept in the disk cache's ``finetuned/`` folder (:mod:`dclip.runtime.cache`) for
        later sessions. ``stop``: see :meth:`finetune_result`.
        """
        return self.finetune_result(item, t0, replicate=replicate, progress=progress, callback=callback,
                                    stop=stop).model

    def finetune_result(self, item: str | Attribute, t0: int | None = None, *, replicate: int = 0,
                        progress: bool | None = None, callback=None, stop=None):
        """:meth:`finetune`'s :class:`~dclip.method.finetune.FinetuneResult` (settings, history, ``stopped``).

        ``stop``: a function of no arguments asked after every update (:func:`dclip.method.finetune.finetune`);
        when it returns True training ends there and the result, ``stopped=True``, keeps the weights so far. A
        stopped fine-tune is neither remembered for the session nor written to the disk cache: asking again
        trains again, from the start.
        """
        attr = as_attribute(item)
        config = self.world.finetune_config(attr, t0, replicate)
        key = ("finetuned", attr.domain, config, replicate)
        known = self.memo.peek(key)
        if known is not None:
            return known
        result = _train_or_read(self, attr.domain, config, replicate, progress, callback, stop)
        result.model.requires_grad_(False)
        return result if result.stopped else self.memo.get(key, lambda: result)

    def edit(self, finetuned, x0: torch.Tensor, t0: int, domain: str = "celeba_hq", *, ratio: float = 1.0,
             x_lat: torch.Tensor | None = None) -> torch.Tensor:
        """Edit with the profile's test-time steps (S_inv, S_gen): invert with the original, generate
        with ``finetuned`` (Sec. 3.2). The inversion is ``x_lat`` when given, else :meth:`latent`'s
        (shared by every edit of the same images at the same t0)."""
        from ..method.edit import edit

        x_lat = self.latent(x0, t0, domain) if x_lat is None else x_lat
        return edit(self.unet(domain), finetuned, x0, int(t0), n_inv=self.profile.n_inv,
                    n_gen=self.profile.n_gen, ratio=ratio, x_lat=x_lat, fast=self.profile.fast)


def _train_or_read(self: Context, domain: str, config, replicate: int, progress: bool | None, callback, stop=None):
    """For a context ``self``: read the fine-tune from the disk cache, or train it on the session's training latents (a stopped
    one is not written to the cache). Returns the :class:`~dclip.method.finetune.FinetuneResult`."""
    from ..method.finetune import finetune, finetuned_cache_path, read_cached_finetune, store_finetune

    base, images, steps, cache = self.unet(domain), self.world.train_images(domain, replicate), \
        self.profile.n_inv_train, disk_cache(self.profile)
    weights = self.memo.fingerprint(base)
    path = None if cache is None else finetuned_cache_path(cache, base, images, config, steps, weights=weights)
    cached = read_cached_finetune(path, base, config)
    if cached is not None:  # then nothing is inverted
        return cached
    result = finetune(base, self.latents(images, config.t0, domain, steps, progress=progress), self.clip, config,
                      face_model=self.face_model if config.lambda_id > 0 else None, progress=progress,
                      callback=callback, stop=stop, fast=self.profile.fast)
    if path is not None and not result.stopped:
        store_finetune(result, path, cache, self.profile.unet_for(domain))
    return result


def disk_cache(profile: Profile) -> Path | None:
    """The disk cache (:func:`dclip.runtime.cache.cache_root`) when the profile keeps one, else None."""
    from ..runtime.cache import cache_root

    return cache_root() if profile.disk_cache else None
