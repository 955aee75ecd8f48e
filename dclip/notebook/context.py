"""The starting point of every notebook: a profile with its models, input images and output folder.

:class:`Context` loads each model once, on first use (the diffusion UNet per domain, CLIP, the
face model, LPIPS, the GAN baselines' models), finds the input images (a folder the notebook names,
else photos shipped with installed packages; nothing is downloaded) and fine-tunes attributes with
the profile's settings, remembering each fine-tuned model -- and each GAN baselines run -- for the
rest of the session. Work that several results share is done once per session too: reading (and
aligning) the input images, hashing a base model's weights for the disk cache, and inverting a set
of images to a t0 (:meth:`Context.latents`, shared by fine-tuning, editing and reconstruction).
"""
from __future__ import annotations

import weakref
from dataclasses import asdict
from functools import cached_property
from pathlib import Path

import torch

from ..method.attributes import Attribute, attribute
from ..runtime.fast import EDITING, RECONSTRUCTION
from ..method.latents import Latents, fingerprint
from .outputs import figures_dir, save_figure, save_table
from .profiles import Profile, customise, get_profile

__all__ = ["Context", "SAMPLE_SETS"]

#: Shipped photos standing in for a domain's test images when no folder is given (faces first).
SAMPLE_SETS: dict[str, tuple[str, ...]] = {
    "celeba_hq": ("grace_hopper", "astronaut"),
    "other": ("chelsea", "coffee"),
}


def _as_attribute(item: str | Attribute) -> Attribute:
    return attribute(item) if isinstance(item, str) else item


def _duration(seconds: float) -> str:
    """A rough duration for people: "40 s", "12 min", "3.5 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Context:
    """A profile's models, images and figure folder for one notebook session."""

    def __init__(self, profile: Profile, *, image_dir: str = "", train_dir: str = "",
                 image_dirs: dict[str, str] | None = None, train_dirs: dict[str, str] | None = None,
                 output_dir: str = ""):
        """``image_dirs`` / ``train_dirs`` map a domain to its test / training image folder ("" or
        missing: shipped sample photos / the test images); ``image_dir`` and ``train_dir`` are the
        CelebA-HQ entries. ``output_dir`` overrides the figures root (see :func:`figures_dir`)."""
        if profile.device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"profile '{profile.name}' runs on a CUDA GPU and none is available here. Use "
                               "profile = 'smoke' (or 'auto'), or run the real models on the CPU, slowly: "
                               "device = 'cpu' (or DCLIP_DEVICE=cpu), with n_images = 1 and few steps.")
        if profile.num_threads:
            torch.set_num_threads(profile.num_threads)
        torch.manual_seed(profile.seed)
        self.profile = profile
        self.device = torch.device(profile.device)
        self.image_dirs = {**(image_dirs or {}), **({"celeba_hq": image_dir} if image_dir else {})}
        self.train_dirs = {**(train_dirs or {}), **({"celeba_hq": train_dir} if train_dir else {})}
        self.figures = figures_dir(profile, output_dir)
        self.notes: list[str] = []
        self._unets: dict[str, torch.nn.Module] = {}
        self._finetuned: dict[tuple, torch.nn.Module] = {}
        self._gan_models: dict | None = None
        self._gan_runs: dict[tuple, dict] = {}
        self._images: dict[tuple, torch.Tensor] = {}
        self._fingerprints: dict[int, tuple[weakref.ref, str]] = {}
        self._latents: dict[tuple, Latents] = {}
        self._inverted: dict[tuple, torch.Tensor] = {}

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

    # -- models -----------------------------------------------------------------------------------

    def unet(self, domain: str = "celeba_hq") -> torch.nn.Module:
        """The pretrained diffusion model standing for ``domain`` (the ``tiny`` UNet at the smoke profile)."""
        from ..models.unet import load_unet

        name = self.profile.unet_for(domain)
        if name not in self._unets:
            self._unets[name] = load_unet(name).to(self.device)
            if self.device.type == "cpu" and self.profile.image_size >= 128:
                print(self.expected_time(self._unets[name], domain))
        return self._unets[name]

    def expected_time(self, model: torch.nn.Module, domain: str = "celeba_hq") -> str:
        """What the profile's settings cost with ``model`` on this device: one UNet evaluation is timed
        and multiplied by the evaluations of a fine-tune (eq. 10) on the domain's training images and
        of an edit (eqs. 12-13)."""
        import time

        p, x = self.profile, torch.zeros(1, 3, self.profile.image_size, self.profile.image_size, device=self.device)
        n_train = self.n_train_images(domain)
        with torch.no_grad():
            start = time.perf_counter()
            model(x, torch.tensor([500], device=self.device))
            step = time.perf_counter() - start
        # latents: S_inv + S_inv (inversion and reconstruction) per image; each update: S_gen steps
        # forward and backward (about 3 evaluations each); an edit: S_inv + S_gen
        finetune = (2 * p.n_inv_train * n_train + 3 * p.n_gen_train * n_train * p.n_iter) * step
        edit = (p.n_inv + p.n_gen) * step
        return (f"expected time on {self.device}: one {p.image_size} px UNet evaluation takes {step:.1f} s here, "
                f"so about {_duration(finetune)} per fine-tune ({n_train} image(s), S_inv {p.n_inv_train}, "
                f"S_gen {p.n_gen_train}) and {_duration(edit)} per edited image (S_inv/S_gen {p.n_inv}/{p.n_gen}); "
                "a notebook runs several of each (fewer with n_images, n_steps, n_train, n_train_steps).")

    def fingerprint(self, model: torch.nn.Module) -> str:
        """:func:`dclip.method.latents.fingerprint` of ``model``'s weights, hashed once per model object.

        Meant for models that are not changed in place (the base UNets): the digest is remembered
        for as long as the object lives.
        """
        entry = self._fingerprints.get(id(model))
        if entry is None or entry[0]() is not model:
            entry = (weakref.ref(model), fingerprint(model.state_dict()))
            self._fingerprints[id(model)] = entry
        return entry[1]

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

    def attribute_names(self, names) -> list[str]:
        """``names`` as this profile edits them: unchanged, or at the toy profile each paper attribute's
        toy stand-in (:data:`dclip.method.attributes.TOY_STAND_INS`, said in a note; those without one are left out)."""
        if not self.profile.is_toy:
            return list(names)
        from ..method.attributes import toy_stand_in

        out = []
        for name in names:
            stand_in = toy_stand_in(name)
            if stand_in is None:
                self.note(f"toy profile: '{name}' has no toy stand-in and is left out.")
            elif stand_in not in out:
                if stand_in != name:
                    self.note(f"toy profile: '{name}' is played by the toy edit '{stand_in}'.")
                out.append(stand_in)
        return out

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

    @property
    def identity_network(self) -> str:
        """Which network :attr:`face_model` is, for the ID columns ("ArcFace IR-SE50", ...)."""
        from ..models.identity import identity_name

        name = identity_name(self.face_model)
        return name if self.profile.face_pretrained else f"{name} (random)"

    @cached_property
    def lpips(self) -> torch.nn.Module:
        """LPIPS (AlexNet); a seeded random trunk at the smoke profile."""
        from ..method.metrics import load_lpips

        return load_lpips(self.profile.lpips_pretrained, device=self.device, seed=self.profile.seed)

    def gan_models(self) -> dict:
        """The GAN baselines' models, loaded once, as keyword arguments of :func:`run_gan_baselines`.

        Profile ``gan = "pretrained"``: :func:`dclip.baselines.comparison.load_gan_baselines` (FFHQ StyleGAN2,
        the e4e encoder, CLIP ViT-B/32 and ViT-B/16, LPIPS) with this context's identity network.
        ``"tiny"``: a random :func:`dclip.baselines.stylegan2.tiny_stylegan2` at the profile's image size with a
        seeded :func:`dclip.baselines.e4e.tiny_e4e` encoder, and this context's own CLIP, face model and
        LPIPS (smoke profile).
        """
        if self._gan_models is None:
            self._gan_models = self._load_gan_models()
        return self._gan_models

    def _load_gan_models(self) -> dict:
        kind = self.profile.gan
        if kind == "none":
            raise RuntimeError(f"profile '{self.profile.name}' has no GAN baselines (no StyleGAN2 of the toy faces); "
                               "the StyleCLIP and StyleGAN-NADA columns need the paper profile.")
        if kind == "pretrained":
            from ..baselines.comparison import load_gan_baselines

            return load_gan_baselines(self.device, face_model=self.face_model)
        if kind != "tiny":
            raise ValueError(f"profile '{self.profile.name}': unknown gan '{kind}'; use 'pretrained' or 'tiny'.")
        from ..baselines.e4e import tiny_e4e
        from ..models.lpips import perceptual_distance
        from ..baselines.stylegan2 import tiny_stylegan2

        generator, latent_avg = tiny_stylegan2(self.profile.image_size, seed=self.profile.seed, device=self.device)
        return {"generator": generator, "latent_avg": latent_avg, "clips": [self.clip],
                "encoder": tiny_e4e(generator, seed=self.profile.seed),
                "face_model": self.face_model, "perceptual": perceptual_distance(self.lpips)}

    @cached_property
    def gan_settings(self):
        """The GAN baselines' steps (:data:`dclip.baselines.comparison.GAN_SETTINGS` by the profile's
        ``gan_settings``); assign a :class:`GanBaselineSettings` to change them for this session."""
        from ..baselines.comparison import GAN_SETTINGS

        return GAN_SETTINGS[self.profile.gan_settings]

    def gan_baselines(self, faces: torch.Tensor, prompts) -> dict:
        """StyleCLIP (from e4e and from the W+ projection) and StyleGAN-NADA on ``faces`` for each
        ``(source, target)`` prompt (Fig. 5, Table 3).

        One W+ projection is shared by the optimisation-based rows (:func:`dclip.baselines.comparison.run_gan_baselines`),
        and the whole run is remembered for the session per (faces, prompts, settings), so asking for
        each method in turn costs one run. Returns ``{method: BaselineOutput}`` at 256 px on the CPU.
        """
        from ..baselines.comparison import run_gan_baselines

        prompts = tuple(tuple(p) for p in prompts)
        key = (fingerprint([faces]), prompts, self.gan_settings)
        if key not in self._gan_runs:
            self._gan_runs[key] = run_gan_baselines(faces, prompts, settings=self.gan_settings, **self.gan_models())
        return self._gan_runs[key]

    # -- images -----------------------------------------------------------------------------------

    def note(self, text: str) -> None:
        """Print ``note: <text>`` once per session and keep it in :meth:`meta` (saved with the tables)."""
        if text not in self.notes:
            self.notes.append(text)
            print(f"note: {text}")

    def _sample_images(self, domain: str, n: int) -> torch.Tensor:
        from ..data.images import sample_photo

        names = SAMPLE_SETS.get(domain, SAMPLE_SETS["other"])[:n]
        self.note(f"no image folder given for {domain}: using the shipped sample photos {', '.join(names)} "
                   "(the paper's numbers are over that dataset's test images).")
        size, align = self.profile.image_size, self.profile.align_faces and domain == "celeba_hq"
        from ..data.faces import photo_to_tensor

        return torch.cat([photo_to_tensor(sample_photo(name), size, align=align)[0] for name in names])

    def _folder(self, domain: str, folder: str) -> str:
        return folder or self.image_dirs.get(domain, "")

    def images(self, domain: str = "celeba_hq", n: int | None = None, *, folder: str = "") -> torch.Tensor:
        """Up to ``n`` (default: the profile's ``n_test``) test images for ``domain``, in [-1, 1], on the device.

        From ``folder`` (else the domain's folder in ``image_dirs``), assumed already aligned/cropped
        as the model expects; without one, the shipped sample photos (aligned with MTCNN when the
        profile asks for it). Read once per session per (domain, n, folder); each call gets a copy.
        """
        n, folder = n or self.profile.n_test, self._folder(domain, folder)
        key = (domain, n, folder, self.profile.image_size)
        if key not in self._images:
            self._images[key] = self._load_images(domain, n, folder)
        return self._images[key].clone()

    def _load_images(self, domain: str, n: int, folder: str, *, train: bool = False) -> torch.Tensor:
        from ..data.images import load_folder

        if folder:
            return load_folder(folder, size=self.profile.image_size, limit=n).to(self.device)
        if self.profile.is_toy:
            return self._toy_images(n, train).to(self.device)
        return self._sample_images(domain, n).to(self.device)

    def _toy_images(self, n: int, train: bool) -> torch.Tensor:
        """Toy faces: held-out seeds for test images, training seeds for fine-tuning images."""
        from ..toy.domain import HELD_OUT_SEED, evaluation_set, face_set

        if train:
            self.note(f"toy profile: fine-tuning on {n} training-seed toy faces.")
            return face_set(HELD_OUT_SEED // 2, n)[0]
        self.note(f"toy profile: test images are {n} held-out toy faces (seeds {HELD_OUT_SEED}+, every other one "
                  "without glasses).")
        return evaluation_set(n)[0]

    def unseen_images(self, portraits: torch.Tensor) -> torch.Tensor:
        """Inputs from outside the model's domain for Fig. 7a: the portraits themselves (the paper's inputs
        are artworks already), or at the toy profile the same held-out toy faces drawn as sketches (a style
        the toy DDPM never saw)."""
        if not self.profile.is_toy or self.image_dirs.get("celeba_hq"):
            return portraits
        from ..toy.domain import HELD_OUT_SEED, face_set

        self.note("toy profile: the unseen-domain inputs are the test faces drawn as sketches.")
        return face_set(HELD_OUT_SEED, len(portraits), "sketch")[0].to(portraits.device)

    def train_images(self, domain: str = "celeba_hq") -> torch.Tensor:
        """The fine-tuning images: ``train_dir`` (the paper: 50 training images), else the test inputs
        (at the toy profile: other toy faces than the test images)."""
        folder = self.train_dirs.get(domain, "")
        if self.profile.is_toy and not self._folder(domain, folder):
            key = ("train", self.profile.n_train)
            if key not in self._images:
                self._images[key] = self._load_images(domain, self.profile.n_train, "", train=True)
            return self._images[key].clone()
        return self.images(domain, self.profile.n_train, folder=folder)

    def n_train_images(self, domain: str = "celeba_hq") -> int:
        """How many images :meth:`train_images` gives, counted without reading them."""
        from ..data.images import image_files

        n, folder = self.profile.n_train, self._folder(domain, self.train_dirs.get(domain, ""))
        if not folder and self.profile.is_toy:
            return n
        names = image_files(folder) if folder else SAMPLE_SETS.get(domain, SAMPLE_SETS["other"])
        return len(names[:n])

    def generator(self, offset: int = 0) -> torch.Generator:
        """A random generator on the context's device, seeded from the profile (the stochastic forward
        process of Sec. 3.2 draws its noise there)."""
        return torch.Generator(device=self.device).manual_seed(self.profile.seed + offset)

    # -- fine-tuning and editing --------------------------------------------------------------------

    def finetune_config(self, item: str | Attribute, t0: int | None = None):
        """The :class:`FinetuneConfig` for an attribute under this profile (paper recipe, Sec. 4)."""
        from ..method.finetune import attribute_config

        attr, p = _as_attribute(item), self.profile
        overrides = {"t0": int(t0)} if t0 else {}
        if p.is_toy:  # the toy world has no identity network
            overrides["lambda_id"] = 0.0
        return attribute_config(attr, "paper", n_gen=p.n_gen_train, n_iter=p.n_iter, lr=p.lr, seed=p.seed,
                                **overrides)

    def _cache_dir(self) -> Path | None:
        """The disk cache (:func:`dclip.runtime.cache.cache_root`) when the profile keeps one, else None."""
        from ..runtime.cache import cache_root

        return cache_root() if self.profile.disk_cache else None

    def _cache_key(self, model, x0: torch.Tensor, t0: int, steps: int, **options) -> str:
        """:func:`dclip.method.latents.cache_key` of ``model`` (whose weights are hashed once per session)."""
        from ..method.latents import cache_key

        return cache_key(model, x0, t0, steps, weights=self.fingerprint(model), **options)

    def latents(self, x0: torch.Tensor, t0: int, domain: str = "celeba_hq", steps: int | None = None, *,
                progress: bool | None = None) -> Latents:
        """``x0`` inverted to ``t0`` with the domain's original model in ``steps`` (default: the profile's
        test-time S_inv) DDIM steps and reconstructed with as many (:func:`dclip.method.latents.precompute`).

        Computed once per session per (model, images, t0, steps), so edits, reconstructions and
        fine-tunes that share them invert once; with the profile's ``disk_cache`` also kept in the disk
        cache's ``latents/`` folder (:mod:`dclip.runtime.cache`), as :func:`precompute` would with ``cache_dir``.
        """
        steps = int(steps or self.profile.n_inv)
        key = (self.profile.unet_for(domain), fingerprint([x0]), int(t0), steps)
        if key not in self._latents:
            self._latents[key] = self._precompute(self.unet(domain), x0, int(t0), steps, progress)
        return self._latents[key]

    def _precompute(self, model, x0: torch.Tensor, t0: int, steps: int, progress: bool | None) -> Latents:
        """:func:`precompute` with the profile's disk cache, keyed without hashing the weights again."""
        from ..method.latents import precompute

        cache = self._cache_dir()
        latents = precompute(model, x0, t0, steps, progress=progress, weights=self.fingerprint(model),
                             cache_dir=cache / "latents" if cache is not None else None, fast=RECONSTRUCTION)
        if cache is not None:
            from ..runtime.cache import enforce_limit

            enforce_limit()
        return latents

    def latent(self, x0: torch.Tensor, t0: int, domain: str = "celeba_hq") -> torch.Tensor:
        """x_t0 of ``x0`` under the domain's original model at the profile's test-time S_inv, once per
        session: from :meth:`latents` when those were computed, else inverted alone (no reconstruction)."""
        from ..method.accelerated import invert_fast

        key = (self.profile.unet_for(domain), fingerprint([x0]), int(t0), self.profile.n_inv)
        if key in self._latents:
            return self._latents[key].x_lat
        if key not in self._inverted:
            # at the one precision of latents (as :meth:`latents`): every edit of the session starts from it
            self._inverted[key] = invert_fast(self.unet(domain), x0, int(t0), self.profile.n_inv, fast=RECONSTRUCTION)
        return self._inverted[key]

    def finetune(self, item: str | Attribute, t0: int | None = None, *, progress: bool | None = None,
                 callback=None) -> torch.nn.Module:
        """Fine-tune the domain's model for an attribute (eq. 10) once per session; returns the model.

        ``item`` is an :data:`~dclip.method.attributes.ATTRIBUTES` name or an :class:`Attribute`; ``t0``
        overrides the attribute's return step (Fig. 8b). With the profile's ``disk_cache`` the model is
        also kept in the disk cache's ``finetuned/`` folder (:mod:`dclip.runtime.cache`) for later sessions.
        """
        attr = _as_attribute(item)
        config = self.finetune_config(attr, t0)
        key = (attr.domain, config)
        if key not in self._finetuned:
            model = self._finetune(attr.domain, config, progress, callback)
            self._finetuned[key] = model.requires_grad_(False)
        return self._finetuned[key]

    def _finetune(self, domain: str, config, progress: bool | None, callback) -> torch.nn.Module:
        """Load the fine-tuned model from the disk cache, or train it on the shared training latents
        (:func:`dclip.method.finetune.finetune_cached`)."""
        from ..method.finetune import finetune_cached

        base, images = self.unet(domain), self.train_images(domain)
        steps = self.profile.n_inv_train
        return finetune_cached(base, images, self.clip, config, inversion_steps=steps, cache=self._cache_dir(),
                               latents=lambda: self.latents(images, config.t0, domain, steps, progress=progress),
                               weights=self.fingerprint(base), base_name=self.profile.unet_for(domain),
                               face_model=lambda: self.face_model, progress=progress, callback=callback).model

    def _finetuned_path(self, base, images: torch.Tensor, config) -> Path | None:
        """Where the disk cache keeps this fine-tune (:func:`dclip.method.finetune.finetuned_cache_path`)."""
        from ..method.finetune import finetuned_cache_path

        cache = self._cache_dir()
        if cache is None:
            return None
        return finetuned_cache_path(cache, base, images, config, self.profile.n_inv_train,
                                    weights=self.fingerprint(base))

    def edit(self, finetuned, x0: torch.Tensor, t0: int, domain: str = "celeba_hq", *, ratio: float = 1.0,
             x_lat: torch.Tensor | None = None) -> torch.Tensor:
        """Edit with the profile's test-time steps (S_inv, S_gen): invert with the original, generate
        with ``finetuned`` (Sec. 3.2). The inversion is ``x_lat`` when given, else :meth:`latent`'s
        (shared by every edit of the same images at the same t0)."""
        from ..method.edit import edit

        x_lat = self.latent(x0, t0, domain) if x_lat is None else x_lat
        return edit(self.unet(domain), finetuned, x0, int(t0), n_inv=self.profile.n_inv,
                    n_gen=self.profile.n_gen, ratio=ratio, x_lat=x_lat, fast=EDITING)

    # -- outputs ------------------------------------------------------------------------------------

    def meta(self) -> dict:
        """What produced a result: the profile's settings and the notes about its inputs."""
        return {"profile": asdict(self.profile), "notes": list(self.notes), "image_dirs": self.image_dirs,
                "train_dirs": self.train_dirs}

    def save_figure(self, fig, name: str) -> Path:
        """Save ``fig`` as ``<figures>/<name>.png`` and say where."""
        path = save_figure(fig, self.figures, name)
        print(f"wrote {path.name} to the figures folder")
        return path

    def save_table(self, rows, name: str) -> Path:
        """Save ``rows`` as ``<figures>/<name>.csv`` and ``.json`` and say where."""
        path = save_table(rows, self.figures, name, self.meta())
        print(f"wrote {path.name} and {path.with_suffix('.json').name} to the figures folder")
        return path

    def describe(self) -> str:
        """One line: profile, device, image size, steps."""
        p = self.profile
        return (f"profile {p.name}: {p.image_size} px on {p.device}, S_inv/S_gen {p.n_inv}/{p.n_gen} at test time, "
                f"{p.n_inv_train}/{p.n_gen_train} while fine-tuning, {p.n_train} training images, "
                f"{p.n_iter} pass(es), lr {p.lr:g}")
