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

from ..method.attributes import Attribute
from ..method.accelerated import generate_fast, invert_fast
from ..runtime.fast import EDITING, RECONSTRUCTION
from ..method.mixing import change_weights, noise_mix

__all__ = ["Editor", "EditorUI", "build_ui", "static_edit", "launch", "png_bytes"]


def png_bytes(images: list[torch.Tensor], height: int = 256) -> bytes:
    """Images (each (1, 3, H, W) in [-1, 1]) side by side as PNG bytes, scaled to ``height`` pixels."""
    from PIL import Image

    from ..data.images import to_pil

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
        """A shipped sample photo (see :data:`dclip.data.images.SAMPLE_PHOTOS`), aligned if the profile aligns faces.

        At the toy profile a photo is outside the toy DDPM's world: the sample is then a held-out toy face
        (the photo's position in the list picks which)."""
        from ..data.images import SAMPLE_PHOTOS, sample_photo

        if getattr(self.ctx.profile, "is_toy", False):
            from ..toy.domain import HELD_OUT_SEED, face_set

            index = list(SAMPLE_PHOTOS).index(name) if name in SAMPLE_PHOTOS else 0
            self.ctx.note(f"toy profile: the sample '{name}' is held-out toy face {index}.")
            self.set_image(face_set(HELD_OUT_SEED + index, 1)[0])
            return
        self.set_image(self._prepare(sample_photo(name)))

    def load_bytes(self, data: bytes, name: str = "the uploaded file") -> str:
        """An uploaded image file's bytes (``name``: the file's name, for messages), read like every image file
        (:func:`dclip.data.images.read_image`: a broken one raises
        :class:`~dclip.runtime.errors.UnreadableFileError`). Returns a note on how it was framed."""
        from ..data.images import read_image

        x, note = self._prepare(read_image(bytes(data), name=name), with_note=True)
        self.set_image(x)
        return note

    def _prepare(self, image, with_note: bool = False):
        from ..data.faces import photo_to_tensor

        align = self.ctx.profile.align_faces and self.domain == "celeba_hq"
        x, note = photo_to_tensor(image, self.ctx.profile.image_size, align=align, crop_without_face=True)
        return (x, note) if with_note else x

    # -- models -------------------------------------------------------------------------------------

    def finetune(self, source: str, target: str, t0: int | None = None, progress=None) -> str:
        """Fine-tune the domain's model on ``source`` → ``target`` (eq. 10) and add it with γ = 1.

        ``progress(fraction)`` is called after each optimizer step. Returns the model's label.
        """
        t0 = int(t0 or self.t0)
        attr = Attribute(source.strip(), target.strip(), t0, domain=self.domain)
        config = self.ctx.world.finetune_config(attr)
        total = config.n_iter * math.ceil(self.ctx.world.n_train_images(self.domain) / config.batch_size)
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
        return change_weights(self.ratio, [t.gamma for t in self.tuned])

    # -- output -------------------------------------------------------------------------------------

    def latent(self) -> torch.Tensor:
        """x_t0 of the image under the original model (cached per image and t0)."""
        if self.image is None:
            raise ValueError("no image yet: pick a sample photo or upload one.")
        if self._latent is None or self._latent[0] != self.t0:
            x_lat = invert_fast(self.ctx.unet(self.domain), self.image, self.t0, self.ctx.profile.n_inv,
                           fast=RECONSTRUCTION)
            self._latent = (self.t0, x_lat)
        return self._latent[1]

    def render(self) -> torch.Tensor:
        """The edited image for the current r and γ (the reconstruction when r = 0 or nothing is tuned)."""
        mix = noise_mix(self.ctx.unet(self.domain), [t.model for t in self.tuned], ratio=self.ratio,
                        gammas=[t.gamma for t in self.tuned])
        with torch.no_grad():
            return generate_fast(mix, self.latent(), self.t0, self.ctx.profile.n_gen, fast=EDITING)


# ------------------------------------------------------------------------------------------------
# Widgets
# ------------------------------------------------------------------------------------------------

VIEW_PX = 192  # the side of the original and edited images on screen, whatever the model's size

GAMMA_ONE = "γ mixes several fine-tuned models (eq. 14); with one model only r matters."
GAMMA_MANY = "γ: each fine-tuned model's share of the edit (normalised to sum to 1)."


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
    gamma_note: object
    gamma_box: object
    status: object
    log: object
    original: object
    view: object
    root: object


def say(ui: EditorUI, text: str, error: bool = False) -> None:
    """Show ``text`` in the status line (red when it is an error)."""
    ui.status.value = text
    ui.status.style.text_color = "#c62828" if error else None


def refresh(ui: EditorUI) -> None:
    """Redraw original | edited and the mix weights, or say why not."""
    editor = ui.editor
    if editor.image is None:
        say(ui, "pick or upload an image")
        return
    ui.original.value = png_bytes([editor.image], height=VIEW_PX)
    ui.view.value = png_bytes([editor.render()], height=VIEW_PX)
    names = ["original"] + [t.label for t in editor.tuned]
    say(ui, "weights: " + " · ".join(f"{n} {w:.3g}" for n, w in zip(names, editor.weights())))


def on_pick(ui: EditorUI, change) -> None:
    if change["new"] is None:  # cleared after an upload
        return
    ui.editor.load_sample(change["new"])
    refresh(ui)


def on_upload(ui: EditorUI, change) -> None:
    """Load the uploaded file; a broken file or one that is not an image is an error on screen (the message of
    :class:`~dclip.runtime.errors.UnreadableFileError`: what is wrong, and the fix), the image stays."""
    files = change["new"]
    if not files:
        return
    name = files[0]["name"]
    try:
        note = ui.editor.load_bytes(files[0]["content"], name=name)
    except ValueError as err:  # UnreadableFileError is one
        say(ui, f"error: {err}", error=True)
        return
    finally:
        ui.upload.value = ()  # so that uploading the same file again is a change too
    ui.picker.value = None  # the picker no longer names the image shown; any choice is a change again
    refresh(ui)
    say(ui, f"{name}: {note}. " + ui.status.value)


def on_t0(ui: EditorUI, change) -> None:
    ui.editor.t0 = int(change["new"])
    refresh(ui)


def on_ratio(ui: EditorUI, change) -> None:
    ui.editor.ratio = float(change["new"])
    refresh(ui)


def on_gamma(ui: EditorUI, index: int, change) -> None:
    ui.editor.set_gamma(index, change["new"])
    refresh(ui)


def _sync_gammas(ui: EditorUI) -> None:
    """One γ slider per fine-tuned model; they only act (and are enabled) with two or more models."""
    import ipywidgets as w

    sliders = list(ui.gamma_box.children)
    for index in range(len(sliders), len(ui.editor.tuned)):
        tuned = ui.editor.tuned[index]
        slider = w.FloatSlider(value=tuned.gamma, min=0.0, max=1.0, step=0.05, description=f"γ {tuned.label}",
                               tooltip=f"weight of '{tuned.label}' in the mix of fine-tuned models",
                               style={"description_width": "initial"}, continuous_update=False)
        slider.observe(_handler(ui, on_gamma, index), names="value")
        sliders.append(slider)
    for slider in sliders:
        slider.disabled = len(sliders) < 2
    ui.gamma_box.children = tuple(sliders)
    ui.gamma_note.value = "" if not sliders else GAMMA_ONE if len(sliders) == 1 else GAMMA_MANY


def on_finetune(ui: EditorUI, _button=None) -> None:
    """Fine-tune on the current texts and t0, with the progress bar; add a γ slider for the new model."""
    ui.button.disabled = True
    ui.progress.value = 0.0
    say(ui, f"fine-tuning '{ui.source.value}' -> '{ui.target.value}' ...")
    try:
        before, reports = len(ui.editor.tuned), []

        def progress(fraction):
            reports.append(fraction)
            ui.progress.value = fraction

        label = ui.editor.finetune(ui.source.value, ui.target.value, ui.t0.value, progress=progress)
        _sync_gammas(ui)
        refresh(ui)
        if len(ui.editor.tuned) == before:
            say(ui, f"'{label}' is already in the mix (nothing new to train). " + ui.status.value)
        elif len(reports) == 1:  # only the final 1.0: no optimizer step ran
            say(ui, ui.status.value + f" ('{label}' was trained earlier in this session: reused)")
    except (ValueError, FileNotFoundError) as err:
        say(ui, f"error: {err}", error=True)
    finally:
        ui.button.disabled = False


def _handler(ui: EditorUI, callback, *args):
    """``callback(ui, *args, change)`` as a widget handler whose errors show on screen.

    In a kernel, an exception inside ``with ui.log`` is printed in that Output widget (under the status
    line) instead of JupyterLab's log console; the status line says that it happened.
    """
    def handle(change=None):
        ui.log.clear_output()
        with ui.log:
            try:
                callback(ui, *args, change)
            except Exception as err:
                say(ui, f"error: {type(err).__name__}: {err} (traceback below)", error=True)
                raise
    return handle


def build_ui(editor: Editor, *, sample: str = "grace_hopper", source: str = "face",
             target: str = "tanned face") -> EditorUI:
    """The editor's widgets, wired to ``editor``; shows ``sample`` at once."""
    import ipywidgets as w

    from ..data.images import SAMPLE_PHOTOS

    def image(caption: str):
        view = w.Image(format="png", layout=w.Layout(width=f"{VIEW_PX}px", height=f"{VIEW_PX}px"))
        return view, w.VBox([w.Label(caption), view])

    original, original_box = image("original")
    view, view_box = image("edited")
    ui = EditorUI(
        editor=editor,
        picker=w.Dropdown(options=list(SAMPLE_PHOTOS), value=sample, description="image",
                          tooltip="a sample photo shipped with matplotlib / scikit-image"),
        upload=w.FileUpload(accept="image/*", multiple=False, description="upload",
                            tooltip="edit your own image (PNG or JPEG)"),
        source=w.Text(value=source, description="source", tooltip="text describing the image now"),
        target=w.Text(value=target, description="target", tooltip="text describing the edit"),
        t0=w.IntSlider(value=editor.t0, min=100, max=900, step=1, description="t0", continuous_update=False,
                       tooltip="return step: larger t0 allows larger changes"),
        button=w.Button(description="fine-tune", button_style="primary",
                        tooltip="fine-tune a copy of the model on source -> target (eq. 10)"),
        progress=w.FloatProgress(value=0.0, min=0.0, max=1.0, description="training",
                                 tooltip="fine-tuning progress"),
        ratio=w.FloatSlider(value=editor.ratio, min=0.0, max=1.0, step=0.05, description="change r",
                            continuous_update=False, tooltip="degree of change: 0 is the reconstruction"),
        gamma_note=w.Label(value=""),
        gamma_box=w.VBox([]),
        status=w.Label(value=""),
        log=w.Output(),
        original=original,
        view=view,
        root=None,
    )
    for name in ("picker", "upload", "source", "target", "t0", "button", "progress", "ratio", "gamma_note",
                 "gamma_box", "status", "log", "original", "view"):
        getattr(ui, name).add_class(f"dclip-{name.replace('_', '-')}")  # stable hooks for the browser test
    ui.picker.observe(_handler(ui, on_pick), names="value")
    ui.upload.observe(_handler(ui, on_upload), names="value")
    ui.t0.observe(_handler(ui, on_t0), names="value")
    ui.ratio.observe(_handler(ui, on_ratio), names="value")
    ui.button.on_click(_handler(ui, on_finetune))
    ui.root = w.VBox([w.HBox([ui.picker, ui.upload]), w.HBox([ui.source, ui.target]), ui.t0,
                      w.HBox([ui.button, ui.progress]), ui.ratio, ui.gamma_note, ui.gamma_box,
                      ui.status, ui.log, w.HBox([original_box, view_box])])
    editor.load_sample(sample)
    _sync_gammas(ui)
    refresh(ui)
    return ui


def static_edit(editor: Editor, source: str, target: str, ratios=(0.0, 0.5, 1.0)):
    """What the editor shows, without widgets: fine-tune once, render each degree of change r.

    Works on a copy of ``editor`` (same image, t0 and inversion): ``editor`` itself gains no model.

    Returns a :class:`dclip.studies.experiments.Study`: rows of r and S_dir (none at r = 0, the
    reconstruction), and a one-row grid original | edit at each r.
    """
    from dataclasses import replace

    from ..studies.experiments import Study
    from ..method.metrics import directional_similarity

    editor = replace(editor, tuned=[])  # its own model: the live editor opens with none the user did not ask for
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
