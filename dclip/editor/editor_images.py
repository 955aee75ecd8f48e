"""How the live editor gets the image it edits (:class:`~dclip.editor.editor.Editor` inherits these): the picker's
entries (held-out toy faces at the toy profile, the shipped sample photos elsewhere), an upload (face-aligned at the
paper profile, shrunk into the toy world at the toy profile, with a note), or a drawing projected into the model's
domain (eq. 1, K rounds; Fig. 7b).

The methods use the editor's ``ctx``, ``domain`` and ``set_image``.
"""
from __future__ import annotations

import torch

from .mix_edit import quantised

__all__ = ["ImageChoice", "TOY_SAMPLES", "TOY_FACE", "TOY_UPLOAD_NOTE", "PROJECT_T0"]

#: How many held-out toy faces the picker offers at the toy profile.
TOY_SAMPLES = 8
TOY_FACE = "toy face"
#: What an upload means at the toy profile (shown beside the picker).
TOY_UPLOAD_NOTE = ("toy profile: the upload is shrunk to {size}×{size} px and edited in the toy world. The toy DDPM "
                   "has only seen {size}-px synthetic faces, so inverting and editing pull the picture towards one "
                   "of them; use profile = 'paper' to edit photos.")
#: The return step a drawing is projected to (the paper's stroke-to-image setting, as notebook 05's).
PROJECT_T0 = 500


class ImageChoice:
    """The editor's image sources (a base class of :class:`~dclip.editor.editor.Editor`)."""

    @property
    def is_toy(self) -> bool:
        return bool(getattr(self.ctx.profile, "is_toy", False))

    def vocabulary_note(self, *prompts: str) -> str:
        """At the toy profile, one line naming the words of ``prompts`` the toy CLIP never saw in training
        (:func:`dclip.toy.train.unknown_words`) and the words it knows; "" when it knows them all, or elsewhere
        (a real CLIP has no such list)."""
        if not self.is_toy:
            return ""
        from ..toy.train import caption_vocabulary, unknown_words

        unknown = unknown_words(" ".join(prompts))
        if not unknown:
            return ""
        words = ", ".join(f"'{w}'" for w in unknown)
        return (f"the toy CLIP never saw {words} in training, so an edit will not follow "
                f"{'it' if len(unknown) == 1 else 'them'}; the words it knows: {' '.join(sorted(caption_vocabulary()))}")

    def set_image(self, x: torch.Tensor, name: str = "", origin: dict | None = None) -> None:
        """Use ``x`` ((1, 3, H, W) in [-1, 1], the model's size) as the image to edit, on the 8-bit grid a PNG
        holds (:func:`~dclip.editor.mix_edit.quantised`: a saved edit's input file reads back as this image).
        ``origin``: how a drawing was made (see :class:`~dclip.editor.history.Snapshot`)."""
        self.image = quantised(x).to(self.ctx.device)
        self.image_name, self.origin = name, origin

    def sample_names(self) -> list[str]:
        """What the picker offers: held-out toy faces at the toy profile, else the shipped sample photos."""
        from ..data.images import SAMPLE_PHOTOS

        if self.is_toy:
            return [f"{TOY_FACE} {i}" for i in range(TOY_SAMPLES)]
        return list(SAMPLE_PHOTOS)

    def sample_for(self, name: str) -> str:
        """The picker's entry for a notebook's ``image`` parameter: at the toy profile a photo's name stands for the
        toy face at its position in :data:`~dclip.data.images.SAMPLE_PHOTOS` (toy face 0 for grace_hopper)."""
        from ..data.images import SAMPLE_PHOTOS

        if self.is_toy and name in SAMPLE_PHOTOS:
            return f"{TOY_FACE} {list(SAMPLE_PHOTOS).index(name)}"
        return name

    def load_sample(self, name: str) -> None:
        """A picker entry (:meth:`sample_names`): a shipped sample photo (see
        :data:`dclip.data.images.SAMPLE_PHOTOS`), aligned if the profile aligns faces, or a held-out toy face.

        At the toy profile a photo is outside the toy DDPM's world: a photo's name then stands for a held-out toy
        face (:meth:`sample_for`), with a note."""
        from ..data.images import sample_photo

        if self.is_toy:
            from ..toy.domain import HELD_OUT_SEED, face_set

            entry = self.sample_for(name)
            if entry != name:
                self.ctx.note(f"toy profile: the sample '{name}' is held-out {entry}.")
            index = _toy_index(entry)
            self.set_image(face_set(HELD_OUT_SEED + index, 1)[0], name=entry)
            return
        self.set_image(self._prepare(sample_photo(name)), name=name)

    def load_bytes(self, data: bytes, name: str = "the uploaded file") -> str:
        """An uploaded image file's bytes (``name``: the file's name, for messages), read like every image file
        (:func:`dclip.data.images.read_image`: a broken one raises
        :class:`~dclip.runtime.errors.UnreadableFileError`). Returns a note on how it was framed."""
        from ..data.images import read_image

        x, note = self._prepare(read_image(bytes(data), name=name), with_note=True)
        self.set_image(x, name=name)
        return note

    def world_note(self) -> str:
        """What an upload means in this profile's world ("" where the model's world is photos)."""
        return TOY_UPLOAD_NOTE.format(size=self.ctx.profile.image_size) if self.is_toy else ""

    def _prepare(self, image, with_note: bool = False):
        from ..data.faces import photo_to_tensor

        align = self.ctx.profile.align_faces and self.domain == "celeba_hq"
        x, note = photo_to_tensor(image, self.ctx.profile.image_size, align=align, crop_without_face=True)
        return (x, note) if with_note else x

    def draw(self, drawing: torch.Tensor, repeats: int, t0: int = PROJECT_T0) -> torch.Tensor:
        """Use ``drawing`` ((1, 3, H, W) in [-1, 1], e.g. :func:`dclip.editor.drawing.strokes_to_tensor`) pulled
        into the model's domain: ``repeats`` (K) rounds of the stochastic forward process to ``t0`` (default
        :data:`PROJECT_T0`)
        (eq. 1) and the profile's few DDIM steps with the original model (:func:`dclip.method.edit.project_to_domain`,
        Fig. 7b), seeded by the profile. Returns the projected image, now the one to edit."""
        from ..method.edit import project_to_domain

        p = self.ctx.profile
        if not 1 <= int(t0) <= 999:
            raise ValueError(f"the projection's t0 must be in [1, 999]; got {t0}.")
        projected = project_to_domain(self.ctx.unet(self.domain), drawing.to(self.ctx.device), int(t0),
                                      repeats=int(repeats), steps=p.project_steps, generator=self.ctx.world.generator())
        self.set_image(projected, name="drawing", origin={"strokes": quantised(drawing).cpu(), "K": int(repeats),
                                                          "t0": int(t0), "steps": p.project_steps})
        return self.image


def _toy_index(entry: str) -> int:
    """N of a picker entry "toy face N"; a clear error for anything else."""
    number = entry[len(TOY_FACE):].strip() if entry.startswith(TOY_FACE) else ""
    if not number.isdigit():
        raise ValueError(f"unknown sample '{entry}' at the toy profile; choose 'toy face 0' ... "
                         f"'toy face {TOY_SAMPLES - 1}' (or a sample photo's name, which stands for one).")
    return int(number)
