"""The live editor's state and actions (notebook 06), without widgets: everything a click does, testable
without a browser. :mod:`dclip.editor.widgets` wires ipywidgets to it.

:class:`Editor` holds the image, the fine-tuned models, the degree of change r, the γ weights and the history of
rendered edits, and does the work: fine-tuning (Sec. 3, eq. 10; stoppable after any update), inversion with the
original model, generation with the noise mix ε = (1 − r)·ε_original + r·Σ_i γ_i ε_i (the degree of change of
Sec. 3.2 and the multi-attribute mix of eq. 14, with constant γ; :mod:`dclip.editor.mix_edit`), undo/redo
(:mod:`dclip.editor.history`), saving an edit with its settings (:mod:`dclip.editor.saved_edit`) and a drawing
projected into the model's domain (eq. 1, K rounds; :mod:`dclip.editor.drawing`).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..method.attributes import Attribute
from ..method.mixing import change_weights
from .editor_images import PROJECT_T0, TOY_FACE, TOY_SAMPLES, TOY_UPLOAD_NOTE, ImageChoice  # noqa: F401
from .history import History, Navigation, Snapshot, describe_settings
from .mix_edit import generate_mix, invert_image

__all__ = ["Editor", "static_edit", "FinetuneProgress", "png_bytes", "compare_png", "TOY_UPLOAD_NOTE", "TOY_SAMPLES", "TOY_FACE",
           "PROJECT_T0", "PREVIEW_STEPS"]

#: Latents the editor keeps (image, t0), most recent last.
LATENT_CACHE = 16

#: DDIM steps of the preview a slider move shows at once, before the full render (the profile's S_inv / S_gen):
#: the fine-tune's own S_gen while training (Sec. 4: 6), so the preview is the image the loss was computed on.
PREVIEW_STEPS = 6


def png_bytes(images: list[torch.Tensor], height: int = 256) -> bytes:
    """Images (each (1, 3, H, W) in [-1, 1]) side by side as PNG bytes, scaled to ``height`` pixels."""
    from PIL import Image

    from ..data.images import to_pil

    row = to_pil(torch.cat([x.cpu() for x in images], dim=3))[0]
    scale = height / row.height
    row = row.resize((max(1, round(row.width * scale)), height), Image.NEAREST)
    return _encoded(row)


def _encoded(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def compare_png(before: torch.Tensor, after: torch.Tensor, fraction: float, height: int = 256) -> bytes:
    """Before | after split at ``fraction`` of the width, as PNG bytes ``height`` pixels high: the left part shows
    ``before``, the rest ``after``, with a white line at the split (0: ``after`` alone, 1: ``before`` alone)."""
    from PIL import Image, ImageDraw

    fraction = min(max(float(fraction), 0.0), 1.0)
    if fraction == 0.0:
        return png_bytes([after], height)
    if fraction == 1.0:
        return png_bytes([before], height)
    left, right = (Image.open(io.BytesIO(png_bytes([x], height))).convert("RGB") for x in (before, after))
    cut = round(fraction * right.width)
    right.paste(left.crop((0, 0, cut, left.height)), (0, 0))
    ImageDraw.Draw(right).line([(cut, 0), (cut, right.height)], fill=(255, 255, 255), width=2)
    return _encoded(right)


@dataclass
class _Tuned:
    """A fine-tuned model in the mix: its label, the model, its γ and its training record (FinetuneResult)."""

    label: str
    model: torch.nn.Module
    gamma: float = 1.0
    result: object | None = None


@dataclass(frozen=True)
class FinetuneProgress:
    """Where a fine-tune is: ``done`` of ``total`` updates, the last update's loss (eq. 10)."""

    done: int
    total: int
    loss: float | None

    @property
    def fraction(self) -> float:
        return min(self.done / self.total, 1.0) if self.total else 1.0

    def text(self) -> str:
        loss = f" · loss {self.loss:.4f}" if self.loss is not None else ""
        return f"update {self.done}/{self.total}{loss}"


@dataclass
class Editor(ImageChoice, Navigation):
    """State and actions of the live editor (no widgets here)."""

    ctx: object
    domain: str = "celeba_hq"
    t0: int = 400
    ratio: float = 1.0
    image: torch.Tensor | None = None
    tuned: list[_Tuned] = field(default_factory=list)
    image_name: str = ""
    origin: dict | None = None
    history: History = field(default_factory=History, repr=False)
    save_dir: str = ""
    _latents: dict = field(default_factory=dict, repr=False)
    _model_files: dict = field(default_factory=dict, repr=False)

    # -- models -------------------------------------------------------------------------------------

    def train(self, source: str, target: str, t0: int | None = None, progress=None, *, on_update=None,
              stop=None) -> _Tuned:
        """Fine-tune the domain's model on ``source`` → ``target`` (eq. 10); the mix is left as it is (:meth:`add`).

        ``progress(fraction)`` is called after each optimizer step and with 1.0 at the end of a finished fine-tune
        (also one the session had already: then only that); ``on_update(FinetuneProgress)`` after each step, with
        its loss. ``stop()`` is asked after every update: when it returns True training ends there, and the
        model keeps what it learnt so far, labelled "(stopped at update k/n)"; such a model is not remembered by
        the session (:meth:`dclip.notebook.context.Context.finetune_result`)."""
        t0 = int(t0 or self.t0)
        attr = Attribute(source.strip(), target.strip(), t0, domain=self.domain)
        config = self.ctx.world.finetune_config(attr)
        total = config.n_iter * math.ceil(self.ctx.world.n_train_images(self.domain) / config.batch_size)
        done = []

        def step(row):
            done.append(1)
            if progress is not None:
                progress(min(len(done) / total, 1.0))
            if on_update is not None:
                on_update(FinetuneProgress(len(done), total, row.get("loss")))

        result = self.ctx.finetune_result(attr, callback=step, stop=stop)
        label = f"{attr.target} (t0={t0})"
        if result.stopped:
            label += f" (stopped at update {len(result.history)}/{total})"
        elif progress is not None:
            progress(1.0)  # also when the model came from the session's cache
        return _Tuned(label, result.model, result=result)

    def add(self, tuned: _Tuned) -> bool:
        """Put ``tuned`` into the mix with its γ; False (nothing changes) when a model of that label is in it."""
        if any(t.label == tuned.label for t in self.tuned):
            return False
        self.tuned.append(tuned)
        return True

    def finetune(self, source: str, target: str, t0: int | None = None, progress=None, *, on_update=None,
                 stop=None) -> str:
        """:meth:`train` and :meth:`add` the model with γ = 1. Returns the model's label."""
        tuned = self.train(source, target, t0, progress, on_update=on_update, stop=stop)
        self.add(tuned)
        return tuned.label

    def set_gamma(self, index: int, value: float) -> None:
        self.tuned[index].gamma = float(value)

    def weights(self) -> list[float]:
        """Current mix weights of [original, fine-tuned models...]."""
        return change_weights(self.ratio, [t.gamma for t in self.tuned])

    # -- output -------------------------------------------------------------------------------------

    def _cached_latent(self) -> torch.Tensor | None:
        """The cached x_t0 of the current image and t0, or None."""
        if self.image is None:
            raise ValueError("no image yet: pick a sample photo or upload one.")
        known = self._latents.get((id(self.image), self.t0))
        return known[1] if known is not None and known[0] is self.image else None

    def latent(self) -> torch.Tensor:
        """x_t0 of the image under the original model (kept for the last few images and t0)."""
        x_lat = self._cached_latent()
        if x_lat is None:
            key = (id(self.image), self.t0)
            x_lat = invert_image(self.ctx.unet(self.domain), self.image, self.t0, self.ctx.profile.n_inv)
            self._latents.pop(key, None)
            self._latents[key] = (self.image, x_lat)
            while len(self._latents) > LATENT_CACHE:
                self._latents.pop(next(iter(self._latents)))
        return x_lat

    def preview(self) -> torch.Tensor:
        """A quick look at the edit for the current r and γ: :data:`PREVIEW_STEPS` generation steps instead of the
        profile's S_gen, from the cached x_t0 when there is one (a move of r or γ), else from a
        :data:`PREVIEW_STEPS`-step inversion (a move of t0; not cached). Not recorded in the history: the full
        render (:meth:`rendered`) is."""
        steps = min(PREVIEW_STEPS, self.ctx.profile.n_gen)
        x_lat = self._cached_latent()
        if x_lat is None:
            x_lat = invert_image(self.ctx.unet(self.domain), self.image, self.t0, steps)
        return generate_mix(self.ctx.unet(self.domain), [t.model for t in self.tuned], x_lat, self.t0, steps,
                            self.ratio, [t.gamma for t in self.tuned], fast=self.ctx.profile.fast)

    def render(self) -> torch.Tensor:
        """The edited image for the current r and γ (the reconstruction when r = 0 or nothing is tuned)."""
        return generate_mix(self.ctx.unet(self.domain), [t.model for t in self.tuned], self.latent(), self.t0,
                            self.ctx.profile.n_gen, self.ratio, [t.gamma for t in self.tuned],
                            fast=self.ctx.profile.fast)

    def rendered(self) -> Snapshot:
        """The edit for the current settings as a history entry: the one shown when nothing changed since, else
        rendered now and recorded (:class:`~dclip.editor.history.History`)."""
        if self.is_rendered():
            return self.history.current
        output = self.render()
        return self.history.record(Snapshot(self.image, self.image_name, int(self.t0), float(self.ratio),
                                            tuple(replace(t) for t in self.tuned), output.detach(), self.origin))

    def is_rendered(self) -> bool:
        """Whether the history's current edit is the one for the current settings (nothing to render)."""
        current = self.history.current
        return current is not None and current.settings_key() == self._settings_key()

    def _settings_key(self) -> tuple:
        return (id(self.image), int(self.t0), float(self.ratio), tuple((id(t.model), t.gamma) for t in self.tuned))

    def settings(self) -> str:
        """The current settings on one line (prompt pairs, t0, r, γ)."""
        return describe_settings(self.tuned, self.t0, self.ratio)

    # -- saving --------------------------------------------------------------------------------------

    def default_save_dir(self) -> Path:
        """Where Save writes without a folder given: :attr:`save_dir`, else ``edits/`` in the figures folder."""
        return Path(self.save_dir) if self.save_dir else Path(self.ctx.outputs.folder) / "edits"

    def save(self, folder: str | Path | None = None):
        """Write the edit shown now with everything to redo it (:func:`dclip.editor.saved_edit.save_edit`) into
        ``folder`` (default: :meth:`default_save_dir`). Returns the :class:`~dclip.editor.saved_edit.SavedEdit`."""
        from .saved_edit import save_edit

        snapshot = self.history.current
        if snapshot is None:
            raise ValueError("nothing to save yet: pick or upload an image first.")
        from ..runtime.fast import resolve

        p = self.ctx.profile
        return save_edit(snapshot, Path(folder) if folder else self.default_save_dir(),
                         base_model=p.unet_for(self.domain), profile=p.name, n_inv=p.n_inv, n_gen=p.n_gen,
                         seed=p.seed, model_files=self._model_files, mode=resolve(p.fast, self.ctx.device).name)


def static_edit(editor: Editor, source: str, target: str, ratios=(0.0, 0.5, 1.0)):
    """What the editor shows, without widgets: fine-tune once, render each degree of change r.

    Works on a copy of ``editor`` (same image, t0 and inversion): ``editor`` itself gains no model.

    Returns a :class:`dclip.studies.experiments.Study`: rows of r and S_dir (none at r = 0, the
    reconstruction), and a one-row grid original | edit at each r.
    """
    from ..studies.experiments import Study
    from ..method.metrics import directional_similarity

    editor = replace(editor, tuned=[], history=History())  # its own model: the live editor opens with none
    editor.finetune(source, target)
    study = Study(images={"original": editor.image.cpu()})
    for r in ratios:
        editor.ratio = float(r)
        edited = editor.render()
        study.images[f"r={r:g}"] = edited.cpu()
        s_dir = float(directional_similarity(editor.ctx.clip, editor.image, edited, source, target).mean()) \
            if r > 0 else None
        study.rows.append({"ratio": float(r), "s_dir": s_dir})
    study.layout(list(study.images), ["original"] + [f"degree of change {k}" for k in list(study.images)[1:]],
                 title=f"live editor, static run: '{source}' -> '{target}' at t0 = {editor.t0}")
    return study
