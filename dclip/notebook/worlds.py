"""The worlds a notebook runs in: where its test and training images come from, which attributes it can edit,
and how it measures identity.

* :class:`PhotoWorld` (the paper and smoke profiles): image folders the notebook names, else photos shipped
  with installed packages (aligned with MTCNN when the profile asks for it); the paper's attributes as named;
* :class:`ToyWorld` (the toy profile): dclip's synthetic faces -- held-out seeds for test images, training
  seeds for fine-tuning, the same faces drawn as sketches for the unseen domain -- and each paper attribute
  played by its toy stand-in; no identity network (λ_ID = 0).

:func:`world_for` picks one from a profile. A world reads nothing twice: it memoises through the context's
:class:`~dclip.notebook.memo.Memo`.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..method.attributes import Attribute, attribute
from .memo import Memo
from .profiles import Profile

__all__ = ["SAMPLE_SETS", "PhotoWorld", "ToyWorld", "world_for", "profile_recipe"]

#: Shipped photos standing in for a domain's test images when no folder is given (faces first).
SAMPLE_SETS: dict[str, tuple[str, ...]] = {
    "celeba_hq": ("grace_hopper", "astronaut"),
    "other": ("chelsea", "coffee"),
}


def profile_recipe(profile: Profile, adapter: str = "none", edit: str | None = None) -> dict:
    """What a profile changes in the paper recipe of a fine-tune: S_gen, passes and learning rate (the toy
    profile's are also what the CLI's ``--model toy`` fine-tunes with), and for a named toy edit its own recipe
    (:func:`dclip.notebook.profiles.edit_recipe`: lr, passes, λ_L1). A LoRA
    fine-tune (``adapter="lora"``) takes the profile's ``lora_lr`` and no per-edit recipe (chosen for full
    fine-tunes)."""
    from .profiles import edit_recipe

    lr = profile.lora_lr if adapter == "lora" else profile.lr
    own = edit_recipe(profile, edit) if adapter == "none" else {}
    return {"n_gen": profile.n_gen_train, "n_iter": profile.n_iter, "lr": lr, **own}


def as_attribute(item: str | Attribute) -> Attribute:
    return attribute(item) if isinstance(item, str) else item


class PhotoWorld:
    """Photos: a folder per domain, else the shipped sample photos."""

    def __init__(self, profile: Profile, device: torch.device, memo: Memo, note: Callable[[str], None], *,
                 image_dirs: dict[str, str], train_dirs: dict[str, str]):
        self.profile, self.device, self.memo, self.note = profile, device, memo, note
        self.image_dirs, self.train_dirs = image_dirs, train_dirs

    # -- images ---------------------------------------------------------------------------------------

    def images(self, domain: str = "celeba_hq", n: int | None = None, *, folder: str = "") -> torch.Tensor:
        """Up to ``n`` (default: the profile's ``n_test``) test images for ``domain``, in [-1, 1], on the device.

        From ``folder`` (else the domain's folder in ``image_dirs``), assumed already aligned/cropped
        as the model expects; without one, the world's own images. Read once per session per
        (domain, n, folder); each call gets a copy.
        """
        n, folder = n or self.profile.n_test, folder or self.image_dirs.get(domain, "")
        key = ("images", domain, n, folder, self.profile.image_size)
        return self.memo.get(key, lambda: self._read(domain, n, folder)).clone()

    def train_images(self, domain: str = "celeba_hq", replicate: int = 0) -> torch.Tensor:
        """The fine-tuning images: ``train_dirs[domain]`` (the paper: 50 training images), else the test inputs.
        Photos are the same for every ``replicate`` (independent fine-tunes differ by their seed only)."""
        return self.images(domain, self.profile.n_train, folder=self.train_folder(domain))

    def train_folder(self, domain: str) -> str:
        """The folder fine-tuning images come from: the domain's training folder, else its test folder ("": none)."""
        return self.train_dirs.get(domain, "") or self.image_dirs.get(domain, "")

    def n_train_images(self, domain: str = "celeba_hq") -> int:
        """How many images :meth:`train_images` gives, counted without reading them."""
        from ..data.images import image_files

        folder = self.train_folder(domain)
        names = image_files(folder) if folder else SAMPLE_SETS.get(domain, SAMPLE_SETS["other"])
        return len(names[:self.profile.n_train])

    def unseen_images(self, portraits: torch.Tensor) -> torch.Tensor:
        """Inputs from outside the model's domain for Fig. 7a: the portraits themselves (the paper's inputs are
        artworks already)."""
        return portraits

    def edit_images(self, item: str | Attribute | tuple, n: int | None = None) -> torch.Tensor:
        """The test images an edit towards ``item`` (or several, a tuple, for a mix) is measured on: the
        domain's test images."""
        return self.images(as_attribute(item[0] if isinstance(item, tuple) else item).domain, n)

    def records(self, images: torch.Tensor) -> list | None:
        """The toy faces ``images`` were drawn from (None: photos have no ground truth)."""
        return None

    def generator(self, offset: int = 0) -> torch.Generator:
        """A random generator on the device, seeded from the profile (the stochastic forward process of
        Sec. 3.2 draws its noise there)."""
        return torch.Generator(device=self.device).manual_seed(self.profile.seed + offset)

    def _read(self, domain: str, n: int, folder: str) -> torch.Tensor:
        from ..data.images import load_folder

        if folder:
            return load_folder(folder, size=self.profile.image_size, limit=n).to(self.device)
        return self._own_images(domain, n).to(self.device)

    def _own_images(self, domain: str, n: int) -> torch.Tensor:
        from ..data.faces import photo_to_tensor
        from ..data.images import sample_photo

        names = SAMPLE_SETS.get(domain, SAMPLE_SETS["other"])[:n]
        self.note(f"no image folder given for {domain}: using the shipped sample photos {', '.join(names)} "
                  "(the paper's numbers are over that dataset's test images).")
        size, align = self.profile.image_size, self.profile.align_faces and domain == "celeba_hq"
        return torch.cat([photo_to_tensor(sample_photo(name), size, align=align)[0] for name in names])

    # -- what the world edits and measures ------------------------------------------------------------

    def attribute_names(self, names) -> list[str]:
        """``names`` as this world edits them."""
        return list(names)

    def finetune_config(self, item: str | Attribute, t0: int | None = None, replicate: int = 0):
        """The :class:`FinetuneConfig` for an attribute under this profile (paper recipe, Sec. 4); ``t0``
        overrides the attribute's return step (Fig. 8b); independent fine-tunes (``replicate`` 0, 1, ...)
        take the profile's seed plus ``replicate``."""
        from ..method.attributes import preset_name
        from ..method.finetune import attribute_config

        p = self.profile
        recipe = profile_recipe(p, edit=item if isinstance(item, str) else preset_name(item))
        return attribute_config(as_attribute(item), "paper", **recipe, seed=p.seed + replicate,
                                **self._config_overrides(t0))

    def _config_overrides(self, t0: int | None) -> dict:
        return {"t0": int(t0)} if t0 else {}

    def identity_label(self, face_model: torch.nn.Module) -> str:
        """Which network measures identity, for the ID columns ("ArcFace IR-SE50", ...)."""
        from ..models.identity import identity_name

        name = identity_name(face_model)
        return name if self.profile.face_pretrained else f"{name} (random)"


class ToyWorld(PhotoWorld):
    """dclip's synthetic faces (:mod:`dclip.toy.domain`): what the toy profile edits on a CPU."""

    def train_images(self, domain: str = "celeba_hq", replicate: int = 0, n: int | None = None) -> torch.Tensor:
        """Fine-tuning images: a training folder when given, else ``n`` (default: the profile's) training-seed toy
        faces (never the test or validation faces); each ``replicate`` (an independent fine-tune) its own faces."""
        if self.train_folder(domain):
            return super().train_images(domain, replicate)
        n = n or self.profile.n_train
        return self.memo.get(("train", n, replicate), lambda: self._toy_train(n, replicate).to(self.device)).clone()

    def n_train_images(self, domain: str = "celeba_hq") -> int:
        if self.train_folder(domain):
            return super().n_train_images(domain)
        return self.profile.n_train

    def unseen_images(self, portraits: torch.Tensor) -> torch.Tensor:
        """The same held-out toy faces drawn as sketches, a style the toy DDPM never saw (Fig. 7a)."""
        if self.image_dirs.get("celeba_hq"):
            return portraits
        from ..toy.domain import HELD_OUT_SEED, face_set

        self.note("toy profile: the unseen-domain inputs are the test faces drawn as sketches.")
        return face_set(HELD_OUT_SEED, len(portraits), "sketch")[0].to(portraits.device)

    def _own_images(self, domain: str, n: int) -> torch.Tensor:
        """Held-out toy faces, every other one without glasses."""
        from ..toy.domain import HELD_OUT_SEED, evaluation_set

        self.note(f"toy profile: test images are {n} held-out toy faces (seeds {HELD_OUT_SEED}+, every other one "
                  "without glasses).")
        return self._remember(*evaluation_set(n))

    def edit_images(self, item: str | Attribute, n: int | None = None, *, split: str = "test") -> torch.Tensor:
        """The ``n`` (default: the profile's ``n_test``) faces an edit towards ``item`` (a toy edit's name, or a
        tuple of names for a mix) is measured on: held-out faces whose true attributes lack its target(s), from
        the ``test`` faces or the ``validation`` faces (where settings are chosen)."""
        from ..toy.domain import HELD_OUT_SEED, VALIDATION_SEED
        from ..toy.judging import lacking_faces

        name = item if isinstance(item, (str, tuple)) else None
        if name is None or self.image_dirs.get("celeba_hq"):
            return super().edit_images(item, n)
        starts = {"test": HELD_OUT_SEED, "validation": VALIDATION_SEED}
        if split not in starts:
            raise ValueError(f"split must be 'test' or 'validation'; got '{split}'.")
        n = n or self.profile.n_test
        return self.memo.get(("edit images", name, n, split),
                             lambda: self._remember(*lacking_faces(name, n, starts[split]))).clone()

    def records(self, images: torch.Tensor) -> list | None:
        """The toy faces (:class:`dclip.toy.domain.Face`) that ``images`` show, when this world drew them."""
        from ..method.latents import fingerprint

        return self.memo.peek(("records", fingerprint([images.cpu().float()])))

    def _remember(self, images: torch.Tensor, records: list) -> torch.Tensor:
        from ..method.latents import fingerprint

        self.memo.get(("records", fingerprint([images.float()])), lambda: records)
        return images.to(self.device)

    def _toy_train(self, n: int, replicate: int) -> torch.Tensor:
        from ..toy.domain import FINETUNE_SEED, face_set

        self.note(f"toy profile: fine-tuning on {n} training-seed toy faces.")
        return self._remember(*face_set(FINETUNE_SEED + 1000 * replicate, n))  # records: the truth fine-tune's x0

    def attribute_names(self, names) -> list[str]:
        """Each paper attribute's toy stand-in (:data:`dclip.method.attributes.TOY_STAND_INS`, said in a note);
        those without one are left out."""
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

    def _config_overrides(self, t0: int | None) -> dict:
        from ..method.finetune import world_settings

        return {**super()._config_overrides(t0), **world_settings("toy")}  # the toy world has no identity network


def world_for(profile: Profile, device: torch.device, memo: Memo, note: Callable[[str], None], *,
              image_dirs: dict[str, str], train_dirs: dict[str, str]) -> PhotoWorld:
    """The world of ``profile``: :class:`ToyWorld` at the toy profile, else :class:`PhotoWorld`."""
    kind = ToyWorld if profile.is_toy else PhotoWorld
    return kind(profile, device, memo, note, image_dirs=image_dirs, train_dirs=train_dirs)
