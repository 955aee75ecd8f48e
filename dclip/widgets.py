"""The live editor of notebook 06: pick or upload an image, fine-tune on a text pair, then steer the edit.

Two layers, so everything a click does can be tested without a browser:

* :class:`Editor` holds the state (image, fine-tuned models, degree of change r, γ weights) and
  does the work: fine-tuning (Sec. 3, eq. 10), inversion with the original model, and generation
  with the noise mix ε = (1 − r)·ε_original + r·Σ_i γ_i ε_i (the degree of change of Sec. 3.2 and
  the multi-attribute mix of eq. 14, with constant γ).
* :func:`build_ui` wires ipywidgets to the editor: each widget callback is a module-level function
  of (ui, editor) that tests call or trigger by setting a widget's value / clicking its button.

Under papermill (``interactive = False``) the notebook shows :func:`static_edit` instead.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import torch

from .attributes import Attribute
from .ddim import generate, invert
from .mixing import ThresholdMix

__all__ = ["Editor", "EditorUI", "build_ui", "static_edit", "launch", "mix_weights", "png_bytes"]


def mix_weights(ratio: float, gammas: list[float]) -> list[float]:
    """Weights of [original, model_1, ..., model_M]: (1 − r) and r·γ_i / Σγ (all to the original if Σγ = 0)."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"the degree of change must lie in [0, 1]; got {ratio}.")
    if any(g < 0 for g in gammas):
        raise ValueError(f"γ weights must be non-negative; got {gammas}.")
    total = float(sum(gammas))
    if total == 0.0 or ratio == 0.0:
        return [1.0] + [0.0] * len(gammas)
    return [1.0 - ratio] + [ratio * g / total for g in gammas]


def png_bytes(images: list[torch.Tensor], height: int = 256) -> bytes:
    """Images (each (1, 3, H, W) in [-1, 1]) side by side as PNG bytes, scaled to ``height`` pixels."""
    from PIL import Image

    from .images import to_pil

    row = to_pil(torch.cat([x.cpu() for x in images], dim=3))[0]
    scale = height / row.height
    row = row.resize((max(1, round(row.width * scale)), height), Image.NEAREST)
    buffer = io.BytesIO()
    row.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class _Tuned:
    label: str
    model: torch.nn.Module
    gamma: float = 1.0


@dataclass
class Editor:
    """State and actions of the live editor (no widgets here)."""

    ctx: object
    domain: str = "celeba_hq"
    t0: int = 400
    ratio: float = 1.0
    image: torch.Tensor | None = None
    tuned: list[_Tuned] = field(default_factory=list)
    _latent: tuple | None = field(default=None, repr=False)

    # -- image --------------------------------------------------------------------------------------

    def set_image(self, x: torch.Tensor) -> None:
        """Use ``x`` ((1, 3, H, W) in [-1, 1], the model's size) as the image to edit."""
        self.image, self._latent = x.to(self.ctx.device), None

    def load_sample(self, name: str) -> None:
        """A shipped sample photo (see :data:`dclip.images.SAMPLE_PHOTOS`), aligned if the profile aligns faces.

        At the toy profile a photo is outside the toy DDPM's world: the sample is then a held-out toy face
        (the photo's position in the list picks which)."""
        from .images import SAMPLE_PHOTOS, sample_photo

        if getattr(self.ctx.profile, "is_toy", False):
            from .toy.domain import HELD_OUT_SEED, face_set

            index = list(SAMPLE_PHOTOS).index(name) if name in SAMPLE_PHOTOS else 0
            self.ctx.note(f"toy profile: the sample '{name}' is held-out toy face {index}.")
            self.set_image(face_set(HELD_OUT_SEED + index, 1)[0])
            return
        self.set_image(self._prepare(sample_photo(name)))

    def load_bytes(self, data: bytes) -> str:
        """An uploaded image file's bytes. Returns a note on how it was framed."""
        from PIL import Image

        with Image.open(io.BytesIO(bytes(data))) as image:
            x, note = self._prepare(image.convert("RGB"), with_note=True)
        self.set_image(x)
        return note

    def _prepare(self, image, with_note: bool = False):
        from .images import to_tensor

        size, note = self.ctx.profile.image_size, "centre-cropped"
        if self.ctx.profile.align_faces and self.domain == "celeba_hq":
            from .faces import NoFaceError, align_face

            try:
                image, note = align_face(image, size), "face aligned"
            except NoFaceError:
                note = "no face found; centre-cropped"
        x = to_tensor(image, size)
        return (x, note) if with_note else x

    # -- models -------------------------------------------------------------------------------------

    def finetune(self, source: str, target: str, t0: int | None = None, progress=None) -> str:
        """Fine-tune the domain's model on ``source`` → ``target`` (eq. 10) and add it with γ = 1.

        ``progress(fraction)`` is called after each optimizer step. Returns the model's label.
        """
        t0 = int(t0 or self.t0)
        attr = Attribute(source.strip(), target.strip(), t0, domain=self.domain)
        config = self.ctx.finetune_config(attr)
        total = config.n_iter * math.ceil(self.ctx.n_train_images(self.domain) / config.batch_size)
        done = []

        def step(_row):
            done.append(1)
            if progress is not None:
                progress(min(len(done) / total, 1.0))

        model = self.ctx.finetune(attr, callback=step)
        if progress is not None:
            progress(1.0)  # also when the model came from the session's cache
        label = f"{attr.target} (t0={t0})"
        if all(t.label != label for t in self.tuned):
            self.tuned.append(_Tuned(label, model))
        return label

    def set_gamma(self, index: int, value: float) -> None:
        self.tuned[index].gamma = float(value)

    def weights(self) -> list[float]:
        """Current mix weights of [original, fine-tuned models...]."""
        return mix_weights(self.ratio, [t.gamma for t in self.tuned])

    # -- output -------------------------------------------------------------------------------------

    def latent(self) -> torch.Tensor:
        """x_t0 of the image under the original model (cached per image and t0)."""
        if self.image is None:
            raise ValueError("no image yet: pick a sample photo or upload one.")
        if self._latent is None or self._latent[0] != self.t0:
            x_lat = invert(self.ctx.unet(self.domain), self.image, self.t0, self.ctx.profile.n_inv)
            self._latent = (self.t0, x_lat)
        return self._latent[1]

    def render(self) -> torch.Tensor:
        """The edited image for the current r and γ (the reconstruction when r = 0 or nothing is tuned)."""
        models = [self.ctx.unet(self.domain)] + [t.model for t in self.tuned]
        mix = ThresholdMix(models, {0: self.weights()})
        with torch.no_grad():
            return generate(mix, self.latent(), self.t0, self.ctx.profile.n_gen)


# ------------------------------------------------------------------------------------------------
# Widgets
# ------------------------------------------------------------------------------------------------

@dataclass
class EditorUI:
    """The editor's widgets; ``root`` is the box to display."""

    editor: Editor
    picker: object
    upload: object
    source: object
    target: object
    t0: object
    button: object
    progress: object
    ratio: object
    gamma_box: object
    status: object
    view: object
    root: object


def refresh(ui: EditorUI) -> None:
    """Redraw original | edited, or say why not."""
    editor = ui.editor
    if editor.image is None:
        ui.status.value = "pick or upload an image"
        return
    ui.view.value = png_bytes([editor.image, editor.render()])
    ui.status.value = f"weights (original, models...): {[round(w, 3) for w in editor.weights()]}"


def on_pick(ui: EditorUI, change) -> None:
    ui.editor.load_sample(change["new"])
    refresh(ui)


def on_upload(ui: EditorUI, change) -> None:
    files = change["new"]
    if not files:
        return
    note = ui.editor.load_bytes(files[0]["content"])
    refresh(ui)
    ui.status.value = f"{files[0]['name']}: {note}. " + ui.status.value


def on_t0(ui: EditorUI, change) -> None:
    ui.editor.t0 = int(change["new"])
    refresh(ui)


def on_ratio(ui: EditorUI, change) -> None:
    ui.editor.ratio = float(change["new"])
    refresh(ui)


def on_gamma(ui: EditorUI, index: int, change) -> None:
    ui.editor.set_gamma(index, change["new"])
    refresh(ui)


def _add_gamma_slider(ui: EditorUI, label: str) -> None:
    import ipywidgets as w

    index = len(ui.gamma_box.children)
    slider = w.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description=f"γ {label}",
                           style={"description_width": "initial"}, continuous_update=False)
    slider.observe(lambda change: on_gamma(ui, index, change), names="value")
    ui.gamma_box.children = (*ui.gamma_box.children, slider)


def on_finetune(ui: EditorUI, _button=None) -> None:
    """Fine-tune on the current texts and t0, with the progress bar; add a γ slider for the new model."""
    ui.button.disabled = True
    ui.progress.value = 0.0
    ui.status.value = f"fine-tuning '{ui.source.value}' -> '{ui.target.value}' ..."
    try:
        before = len(ui.editor.tuned)
        label = ui.editor.finetune(ui.source.value, ui.target.value, ui.t0.value,
                                   progress=lambda f: setattr(ui.progress, "value", f))
        if len(ui.editor.tuned) > before:
            _add_gamma_slider(ui, label)
        refresh(ui)
    except (ValueError, FileNotFoundError) as err:
        ui.status.value = f"error: {err}"
    finally:
        ui.button.disabled = False


def build_ui(editor: Editor, *, sample: str = "grace_hopper", source: str = "face",
             target: str = "tanned face") -> EditorUI:
    """The editor's widgets, wired to ``editor``; shows ``sample`` at once."""
    import ipywidgets as w

    from .images import SAMPLE_PHOTOS

    ui = EditorUI(
        editor=editor,
        picker=w.Dropdown(options=list(SAMPLE_PHOTOS), value=sample, description="image"),
        upload=w.FileUpload(accept="image/*", multiple=False, description="upload"),
        source=w.Text(value=source, description="source"),
        target=w.Text(value=target, description="target"),
        t0=w.IntSlider(value=editor.t0, min=100, max=900, step=1, description="t0", continuous_update=False),
        button=w.Button(description="fine-tune", button_style="primary"),
        progress=w.FloatProgress(value=0.0, min=0.0, max=1.0, description="training"),
        ratio=w.FloatSlider(value=editor.ratio, min=0.0, max=1.0, step=0.05, description="change r",
                            continuous_update=False),
        gamma_box=w.VBox([]),
        status=w.Label(value=""),
        view=w.Image(format="png"),
        root=None,
    )
    ui.picker.observe(lambda change: on_pick(ui, change), names="value")
    ui.upload.observe(lambda change: on_upload(ui, change), names="value")
    ui.t0.observe(lambda change: on_t0(ui, change), names="value")
    ui.ratio.observe(lambda change: on_ratio(ui, change), names="value")
    ui.button.on_click(lambda button: on_finetune(ui, button))
    ui.root = w.VBox([w.HBox([ui.picker, ui.upload]), w.HBox([ui.source, ui.target]), ui.t0,
                      w.HBox([ui.button, ui.progress]), ui.ratio, ui.gamma_box, ui.view, ui.status])
    editor.load_sample(sample)
    refresh(ui)
    return ui


def static_edit(editor: Editor, source: str, target: str, ratios=(0.0, 0.5, 1.0)):
    """What the editor shows, without widgets: fine-tune once, render each degree of change r.

    Returns a :class:`dclip.experiments.Study`: rows of r and S_dir (none at r = 0, the
    reconstruction), and a one-row grid original | edit at each r.
    """
    from .experiments import Study
    from .metrics import directional_similarity

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


def launch(editor: Editor, interactive: bool, **kwargs):
    """The editor's widget box when ``interactive``; otherwise None and a note (papermill runs)."""
    if not interactive:
        print("non-interactive run: the static edit above stands in for the live editor.")
        return None
    return build_ui(editor, **kwargs).root
