"""The live editor: its state and actions, and the widget callbacks triggered as a user would."""
import datetime
import threading
import io

import pytest
import torch

from dclip.method.mixing import change_weights
from dclip.editor import widgets
from dclip.method.ddim import generate, invert


@pytest.fixture
def editor(quick_context):
    ed = widgets.Editor(quick_context, t0=300)
    ed.load_sample("astronaut")
    return ed


def reconstruction(editor):
    unet, p = editor.ctx.unet(editor.domain), editor.ctx.profile
    with torch.no_grad():
        return generate(unet, invert(unet, editor.image, editor.t0, p.n_inv), editor.t0, p.n_gen)


def test_mix_weights():
    assert change_weights(1.0, []) == [1.0]
    assert change_weights(0.5, [1.0, 3.0]) == [0.5, 0.125, 0.375]
    assert change_weights(0.0, [1.0]) == [1.0, 0.0]
    assert change_weights(0.7, [0.0, 0.0]) == [1.0, 0.0, 0.0]  # no model weighted: the reconstruction
    with pytest.raises(ValueError, match="degree of change"):
        change_weights(1.5, [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        change_weights(0.5, [-1.0])


def test_without_a_model_the_editor_shows_the_reconstruction(editor):
    torch.testing.assert_close(editor.render(), reconstruction(editor))


def test_finetune_reports_progress_and_ratio_zero_is_the_reconstruction(editor):
    seen = []
    label = editor.finetune("face", "tanned face", progress=seen.append)
    assert label == "tanned face (t0=300)" and len(editor.tuned) == 1
    assert seen[-1] == 1.0 and seen == sorted(seen)
    edited = editor.render()
    assert not torch.allclose(edited, reconstruction(editor))
    editor.ratio = 0.0
    torch.testing.assert_close(editor.render(), reconstruction(editor))
    editor.finetune("face", "tanned face")  # same pair again: no second model
    assert len(editor.tuned) == 1


def test_finetune_counts_the_training_images_without_reading_them(editor, monkeypatch):
    ctx, reads = editor.ctx, []
    real = ctx.world._read
    monkeypatch.setattr(ctx.world, "_read", lambda *args: reads.append(args) or real(*args))
    seen = []
    editor.finetune("face", "tanned face", progress=seen.append)
    editor.finetune("face", "angry face", progress=seen.append)
    assert len(reads) == 1  # read once, by the first fine-tune; counted for the progress bar without reading
    assert seen == [0.5, 1.0, 1.0] * 2  # 2 training images, batch 1, one pass; then the final 1.0


def test_latent_is_cached_per_image_and_t0(editor):
    first = editor.latent()
    assert editor.latent() is first
    editor.t0 = 400
    assert editor.latent() is not first


def test_no_image_is_a_clear_error(quick_context):
    with pytest.raises(ValueError, match="pick a sample photo"):
        widgets.Editor(quick_context).render()


def test_upload_bytes_are_centre_cropped_to_the_model_size(editor):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (60, 40), (255, 0, 0)).save(buffer, format="PNG")
    note = editor.load_bytes(buffer.getvalue())
    assert note == "centre-cropped" and editor.image.shape == (1, 3, 32, 32)
    assert editor.image[0, 0].min() == 1.0 and editor.image[0, 1].max() == -1.0


def test_png_bytes_places_images_side_by_side():
    from PIL import Image

    data = widgets.png_bytes([torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)], height=16)
    assert Image.open(io.BytesIO(data)).size == (32, 16)


def test_widget_callbacks_drive_the_editor(editor):
    ui = widgets.build_ui(editor, sample="grace_hopper", source="face", target="tanned face")
    assert ui.view.value[:4] == b"\x89PNG" and ui.gamma_box.children == ()
    ui.button.click()
    widgets.wait_for_finetune(ui)
    assert ui.progress.value == 1.0 and len(ui.gamma_box.children) == 1 and not ui.button.disabled
    assert ui.status.value == "weights: original 0 · tanned face (t0=300) 1"
    assert ui.gamma_box.children[0].disabled and "only r matters" in ui.gamma_note.value  # a lone γ does nothing
    shown = ui.view.value
    ui.ratio.value = 0.5
    assert editor.ratio == 0.5 and editor.weights() == [0.5, 0.5] and ui.view.value != shown
    ui.target.value = "angry face"
    ui.button.click()
    widgets.wait_for_finetune(ui)
    assert len(ui.gamma_box.children) == 2 and not any(s.disabled for s in ui.gamma_box.children)
    assert [s.description for s in ui.gamma_box.children] == ["γ tanned face (t0=300)", "γ angry face (t0=300)"]
    shown = ui.view.value
    ui.gamma_box.children[1].value = 0.0
    assert editor.weights() == [0.5, 0.5, 0.0] and ui.view.value != shown
    ui.button.click()  # the same pair again: no second copy, and the status says why
    widgets.wait_for_finetune(ui)
    assert len(ui.gamma_box.children) == 2 and "already in the mix" in ui.status.value
    ui.t0.value = 250
    assert editor.t0 == 250
    before = editor.image
    ui.picker.value = "chelsea"
    assert not torch.equal(before, editor.image)


def test_upload_widget_loads_the_file(editor):
    from PIL import Image

    ui = widgets.build_ui(editor)
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (0, 0, 255)).save(buffer, format="PNG")
    ui.upload.value = ({"name": "blue.png", "type": "image/png", "size": len(buffer.getvalue()),
                        "content": memoryview(buffer.getvalue()),
                        "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)
    assert editor.image[0, 2].min() == 1.0 and ui.status.value.startswith("blue.png: centre-cropped")
    assert ui.picker.value is None and ui.upload.value == ()  # the picker no longer claims the old photo
    ui.picker.value = "grace_hopper"  # the choice shown before the upload is a change again
    assert editor.image[0, 2].min() < 1.0


def upload(ui, name, data):
    ui.upload.value = ({"name": name, "type": "", "size": len(data), "content": memoryview(data),
                        "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)


def test_a_bad_upload_is_an_error_on_screen_and_keeps_the_image(editor):
    ui = widgets.build_ui(editor)
    before, shown = editor.image, ui.view.value
    upload(ui, "notes.txt", b"not an image")
    assert ui.status.value.startswith("error: 'notes.txt' is not an image") and "PNG or JPEG" in ui.status.value
    assert ui.status.style.text_color and editor.image is before and ui.view.value == shown
    assert ui.picker.value == "grace_hopper"
    ui.ratio.value = 0.5  # the next action clears the error
    assert ui.status.value.startswith("weights") and not ui.status.style.text_color


def test_an_unexpected_callback_error_shows_in_the_status_line(editor, monkeypatch):
    ui = widgets.build_ui(editor)
    monkeypatch.setattr(editor, "render", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # outside a kernel it propagates; in one, ui.log shows it
        ui.ratio.value = 0.5
    assert ui.status.value.startswith("error: ZeroDivisionError")


def test_the_live_editor_starts_without_the_static_edit_model(editor):
    widgets.static_edit(editor, "face", "tanned face", ratios=(1.0,))
    assert editor.tuned == [] and editor.ratio == 1.0
    ui = widgets.build_ui(editor)
    assert ui.gamma_box.children == () and ui.status.value == "weights: original 1"
    ui.button.click()  # the static edit's pair: the session's model, with its slider, and the status says so
    widgets.wait_for_finetune(ui)
    assert len(ui.gamma_box.children) == 1 and ui.status.value.endswith("this session: reused)")


def test_every_control_has_a_tooltip(editor):
    ui = widgets.build_ui(editor)
    ui.button.click()
    widgets.wait_for_finetune(ui)
    controls = [ui.picker, ui.upload, ui.source, ui.target, ui.t0, ui.button, ui.stop, ui.progress, ui.ratio,
                *ui.gamma_box.children, ui.compare, ui.undo, ui.redo, ui.save, ui.save_to,
                *[c for item in ui.history_box.children for c in item.children[1:]],
                *[getattr(ui.pad, n) for n in ("colour", "brush", "rounds", "t0", "blank", "over_image", "undo_stroke",
                                               "generate")]]
    assert all(c.tooltip for c in controls)
    assert ui.pad.canvas.tooltip is None  # ipycanvas 0.14's view breaks in JupyterLab 4 with one


def test_finetune_errors_show_in_the_status_line(editor):
    ui = widgets.build_ui(editor)
    ui.target.value = "  "
    ui.button.click()
    widgets.wait_for_finetune(ui)
    assert ui.status.value.startswith("error:") and not ui.button.disabled


def test_static_edit_and_launch(editor, capsys):
    study = widgets.static_edit(editor, "face", "tanned face", ratios=(0.0, 1.0))
    assert [r["ratio"] for r in study.rows] == [0.0, 1.0]
    assert study.rows[0]["s_dir"] is None and isinstance(study.rows[1]["s_dir"], float)
    assert len(study.grid[0]) == 3
    assert widgets.launch(editor, interactive=False) is None
    assert "static edit" in capsys.readouterr().out
    assert widgets.launch(editor, interactive=True).children


# -- stop, loss, the background fine-tune ------------------------------------------------------------

@pytest.fixture
def long_editor(quick_profile, tmp_path):
    """An editor whose fine-tunes take 6 updates (2 images x 3 passes)."""
    import dataclasses

    from dclip.notebook.context import Context

    ctx = Context(dataclasses.replace(quick_profile, n_iter=3), output_dir=str(tmp_path / "figures"))
    ed = widgets.Editor(ctx, t0=300)
    ed.load_sample("astronaut")
    return ed


def test_stop_ends_the_finetune_at_that_update_and_keeps_its_model(long_editor):
    seen, updates = [], []
    label = long_editor.finetune("face", "tanned face", progress=seen.append, on_update=updates.append,
                                 stop=lambda: len(seen) >= 2)
    assert label == "tanned face (t0=300) (stopped at update 2/6)"
    assert seen == [1 / 6, 2 / 6]  # no final 1.0: the bar stays where it stopped
    assert [(u.done, u.total) for u in updates] == [(1, 6), (2, 6)] and all(u.loss > 0 for u in updates)
    assert updates[-1].text() == f"update 2/6 · loss {updates[-1].loss:.4f}"
    stopped = long_editor.tuned[0]
    assert stopped.result.stopped and len(stopped.result.history) == 2
    assert not torch.allclose(long_editor.render(), reconstruction(long_editor))  # it edits with what it learnt
    seen.clear()
    assert long_editor.finetune("face", "tanned face", progress=seen.append) == "tanned face (t0=300)"
    assert len(seen) == 7 and len(long_editor.tuned) == 2  # trained again in full, beside the stopped one


def test_a_stop_after_the_last_update_finishes_the_model_as_complete(long_editor):
    """Stop pressed while the last update runs: all 6 updates are done, so the model is complete, not "stopped"."""
    seen = []
    label = long_editor.finetune("face", "tanned face", progress=seen.append, stop=lambda: len(seen) >= 6)
    assert label == "tanned face (t0=300)" and seen[-1] == 1.0
    assert not long_editor.tuned[0].result.stopped and len(long_editor.tuned[0].result.history) == 6


def test_the_stop_button_ends_a_running_finetune_and_the_editor_stays_usable(long_editor, monkeypatch):
    ui = widgets.build_ui(long_editor)
    reached, resume, shown = threading.Event(), threading.Event(), []
    real = widgets.show_update

    def show_update(ui_, update):  # the training thread pauses after update 2, as if a click arrived then
        real(ui_, update)
        shown.append((ui_.loss.value, ui_.progress.value))
        if update.done == 2:
            reached.set()
            resume.wait(60)

    monkeypatch.setattr(widgets, "show_update", show_update)
    ui.button.click()
    assert reached.wait(60), "the fine-tune never reached its second update"
    assert ui.busy and not ui.stop.disabled and ui.button.disabled and ui.ratio.disabled and ui.t0.disabled
    assert ui.loss.value.startswith("update 2/6 · loss ") and ui.progress.value == pytest.approx(2 / 6)
    ui.compare.value = 0.5  # what needs no model works meanwhile
    ui.stop.click()
    assert ui.stop.disabled and ui.status.value.startswith("stopping")
    resume.set()
    widgets.wait_for_finetune(ui, timeout=60)
    assert len(shown) == 2  # nothing trained after the update Stop came in
    label = "tanned face (t0=300) (stopped at update 2/6)"
    assert ui.status.value.startswith(f"stopped: '{label}' keeps its 2 updates")
    assert [s.description for s in ui.gamma_box.children] == [f"γ {label}"]
    assert not ui.busy and ui.stop.disabled and not ui.button.disabled and not ui.ratio.disabled
    ui.ratio.value = 0.5  # usable again: renders with the stopped model
    assert ui.status.value == f"weights: original 0.5 · {label} 0.5"
    ui.button.click()  # and a fine-tune after a stop trains in full
    widgets.wait_for_finetune(ui, timeout=120)
    assert len(long_editor.tuned) == 2 and ui.progress.value == 1.0 and ui.loss.value.startswith("update 6/6")


def test_a_finetune_error_in_the_thread_shows_and_frees_the_controls(editor, monkeypatch):
    ui = widgets.build_ui(editor)
    monkeypatch.setattr(editor.ctx, "finetune_result", lambda *a, **k: 1 / 0)
    ui.button.click()
    widgets.wait_for_finetune(ui, timeout=60)
    assert ui.status.value.startswith("error: ZeroDivisionError") and ui.status.style.text_color
    assert not ui.busy and not ui.button.disabled and ui.stop.disabled


# -- compare, history, undo and redo -----------------------------------------------------------------

def test_compare_png_splits_before_and_after():
    from PIL import Image

    before, after = -torch.ones(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    assert widgets.compare_png(before, after, 0.0, 16) == widgets.png_bytes([after], 16)
    assert widgets.compare_png(before, after, 1.0, 16) == widgets.png_bytes([before], 16)
    half = Image.open(io.BytesIO(widgets.compare_png(before, after, 0.5, 16))).convert("RGB")
    assert half.size == (16, 16) and half.getpixel((2, 5)) == (0, 0, 0) and half.getpixel((13, 5)) == (255, 255, 255)


def test_history_records_each_edit_once_and_undo_redo_walk_it(editor):
    ui = widgets.build_ui(editor)
    ui.button.click()
    widgets.wait_for_finetune(ui)
    history = editor.history
    assert len(history.entries) == 2 and ui.undo.disabled is False and ui.redo.disabled  # reconstruction, edit
    at_one = ui.view.value
    ui.ratio.value = 0.5
    at_half = ui.view.value
    ui.ratio.value = 0.5  # no change, no new entry
    assert len(history.entries) == 3 and len(ui.history_box.children) == 3
    assert ui.history_box.children[2].children[2].value.endswith("face → tanned face · t0 300 · r 0.5 · γ 1</div>")
    assert ui.history_box.children[2].children[1].button_style == "info"
    ui.undo.click()
    assert editor.ratio == 1.0 and ui.ratio.value == 1.0 and ui.view.value == at_one and not ui.redo.disabled
    assert ui.status.value.startswith("edit #2 restored (face → tanned face · t0 300 · r 1 · γ 1)")
    assert len(history.entries) == 3  # a restore is no new edit
    ui.redo.click()
    assert editor.ratio == 0.5 and ui.view.value == at_half and ui.redo.disabled
    ui.history_box.children[0].children[1].click()  # the first thumbnail: the reconstruction, before any model
    assert editor.tuned == [] and ui.gamma_box.children == () and editor.ratio == 1.0
    torch.testing.assert_close(history.current.output, reconstruction(editor))
    ui.undo.click()  # back to where the click came from, model and slider included
    assert editor.ratio == 0.5 and [t.label for t in editor.tuned] == ["tanned face (t0=300)"]
    assert len(ui.gamma_box.children) == 1 and ui.view.value == at_half
    ui.t0.value = 250  # a new edit after an undo: appended, and there is nothing to redo
    assert len(history.entries) == 4 and ui.redo.disabled and history.current.t0 == 250


def test_a_restored_edit_keeps_its_own_gammas(editor):
    ui = widgets.build_ui(editor)
    for target in ("tanned face", "angry face"):
        ui.target.value = target
        ui.button.click()
        widgets.wait_for_finetune(ui)
    both = ui.view.value
    ui.gamma_box.children[1].value = 0.0
    assert editor.weights() == [0.0, 1.0, 0.0]
    ui.undo.click()
    assert [s.value for s in ui.gamma_box.children] == [1.0, 1.0] and editor.weights() == [0.0, 0.5, 0.5]
    assert ui.view.value == both


def test_history_forgets_the_oldest_beyond_its_limit():
    from dclip.editor.history import History, Snapshot

    history = History(limit=3)
    shots = [Snapshot(torch.zeros(1), "x", 300, r / 10, (), torch.zeros(1)) for r in range(5)]
    for shot in shots:
        history.record(shot)
    assert history.entries == shots[2:] and history.current is shots[4]
    history.undo()
    history.undo()
    assert history.current is shots[2] and not history.can_undo  # shots[1] left the strip
    with pytest.raises(ValueError, match="nothing to undo"):
        history.undo()


# -- the toy world's own samples ---------------------------------------------------------------------

@pytest.fixture
def toy_editor(tmp_path):
    import dataclasses

    from dclip.notebook.context import Context
    from dclip.notebook.profiles import get_profile

    profile = dataclasses.replace(get_profile("toy"), n_train=2, n_iter=1, n_test=2, num_threads=0)
    return widgets.Editor(Context(profile, output_dir=str(tmp_path / "figures")), t0=201)


def test_at_toy_a_word_the_toy_clip_never_saw_gets_a_note(toy_editor, editor):
    """"Pixar" is outside the toy CLIP's training captions: the note under the prompts names it and the known
    words; "glasses" is inside, so no note; at a photo profile there is no such list, so never a note."""
    from dclip.toy.train import caption_vocabulary

    ui = widgets.build_ui(toy_editor, source="face", target="Pixar face")
    note = ui.prompt_note.value
    assert note.startswith("the toy CLIP never saw 'pixar' in training") and len(note.splitlines()) == 1
    assert "the words it knows: " + " ".join(sorted(caption_vocabulary())) in note
    ui.target.value = "person with glasses"
    assert ui.prompt_note.value == ""
    ui.source.value = "Photo of a Face"  # case-folded
    assert ui.prompt_note.value == ""
    assert {"glasses", "tanned", "sketch", "pixel", "art", "gray", "angry", "smiling"} <= caption_vocabulary()
    assert widgets.build_ui(editor, target="Pixar face").prompt_note.value == ""


def test_the_toy_picker_lists_toy_faces(toy_editor, quick_context):
    from dclip.editor.mix_edit import quantised
    from dclip.toy.domain import HELD_OUT_SEED, face_set

    ui = widgets.build_ui(toy_editor)  # the notebook's image = "grace_hopper" stands for toy face 0
    assert ui.picker.options == tuple(f"toy face {i}" for i in range(8)) and ui.picker.value == "toy face 0"
    torch.testing.assert_close(toy_editor.image, quantised(face_set(HELD_OUT_SEED, 1)[0]))
    ui.picker.value = "toy face 3"
    torch.testing.assert_close(toy_editor.image, quantised(face_set(HELD_OUT_SEED + 3, 1)[0]))
    with pytest.raises(ValueError, match="toy face 0"):
        toy_editor.load_sample("toy face x")
    assert widgets.Editor(quick_context).sample_names() == ["grace_hopper", "astronaut", "chelsea", "coffee"]


def test_an_upload_at_the_toy_profile_is_shrunk_into_the_toy_world_with_a_note(toy_editor, editor):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (0, 0, 255)).save(buffer, format="PNG")
    ui = widgets.build_ui(toy_editor)
    assert ui.world_note.value == ""
    upload(ui, "photo.png", buffer.getvalue())
    assert toy_editor.image.shape == (1, 3, 32, 32) and ui.status.value.startswith("photo.png: centre-cropped")
    assert ui.world_note.value.startswith("toy profile: the upload is shrunk to 32×32 px")
    assert "only seen 32-px synthetic faces" in ui.world_note.value
    ui.picker.value = "toy face 1"
    assert ui.world_note.value == ""
    other = widgets.build_ui(editor)  # photos' profiles: no such note
    upload(other, "photo.png", buffer.getvalue())
    assert other.world_note.value == ""


# -- the drawing pad -----------------------------------------------------------------------------------

def test_strokes_become_the_image_they_paint():
    from dclip.editor.drawing import Stroke, parse_colour, strokes_to_tensor

    assert torch.equal(strokes_to_tensor([], 8, canvas_px=48), torch.ones(1, 3, 8, 8))
    red = Stroke("#ff0000", 12, [(-10, 23.5), (60, 23.5)])  # a band across the middle: canvas rows 18-29, image rows 3-4
    x = strokes_to_tensor([red], 8, canvas_px=48)
    assert torch.equal(x[0, :, 3:5, :], torch.tensor([1.0, -1.0, -1.0])[:, None, None].expand(3, 2, 8))
    assert torch.equal(x[0, :, :2], torch.ones(3, 2, 8)) and torch.equal(x[0, :, 6:], torch.ones(3, 2, 8))
    background = torch.linspace(-1, 1, 3 * 8 * 8).reshape(1, 3, 8, 8)
    painted = strokes_to_tensor([Stroke("#00f", 12, [(8.5, 8.5)])], 8, canvas_px=48, background=background)
    from dclip.editor.mix_edit import quantised

    assert torch.equal(painted[..., 4:, :], quantised(background)[..., 4:, :])  # unpainted: the image
    assert torch.equal(painted[0, :, 1, 1], torch.tensor([-1.0, -1.0, 1.0]))  # the dot
    assert parse_colour("#c08060") == (192, 128, 96)
    with pytest.raises(ValueError, match="#rrggbb"):
        parse_colour("brown")


def test_the_pad_draws_projects_and_edits(editor):
    ui = widgets.build_ui(editor)
    pad = ui.pad
    pad.colour.value, pad.brush.value, pad.rounds.value = "#203040", 30, 2
    widgets.pad_down(ui, 20, 20)
    widgets.pad_move(ui, 100, 100)
    widgets.pad_move(ui, 170, 40)
    widgets.pad_up(ui)
    widgets.pad_move(ui, 5, 5)  # the brush is up: no stroke
    assert [(s.colour, s.width, len(s.points)) for s in pad.strokes] == [("#203040", 30.0, 3)]
    drawing = widgets.pad_drawing(ui)
    assert drawing.shape == (1, 3, 32, 32) and drawing.min() < 0.0
    pad.generate.click()
    assert editor.image_name == "drawing" and editor.origin["K"] == 2 and ui.picker.value is None
    assert ui.status.value.startswith("drawing projected into the model's domain (K = 2 rounds")
    first = editor.image
    assert not torch.equal(first, drawing)
    pad.generate.click()  # seeded: the same drawing projects to the same image
    torch.testing.assert_close(editor.image, first)
    pad.t0.value = 300  # the projection's t0: another projection, recorded in the drawing's origin
    pad.generate.click()
    assert editor.origin["t0"] == 300 and "to t0 = 300" in ui.status.value
    assert not torch.equal(editor.image, first)
    pad.undo_stroke.click()
    assert pad.strokes == []
    pad.over_image.click()
    assert torch.equal(widgets.pad_drawing(ui), editor.image.cpu())


def test_a_slider_move_shows_a_quick_preview_then_the_full_render(quick_profile, tmp_path):
    """The preview is PREVIEW_STEPS DDIM steps of the same mix from the cached x_t0 (after a t0 move, from as many
    inversion steps); the full render follows it on screen and is the one the history records."""
    import dataclasses

    from dclip.editor.editor import PREVIEW_STEPS, compare_png
    from dclip.method.mixing import noise_mix
    from dclip.notebook.context import Context

    ctx = Context(dataclasses.replace(quick_profile, n_inv=10, n_gen=10), output_dir=str(tmp_path))
    editor = widgets.Editor(ctx, t0=300)
    ui = widgets.build_ui(editor, sample="astronaut", source="face", target="tanned face")
    editor.finetune("face", "tanned face")
    unet, model = ctx.unet(editor.domain), editor.tuned[0].model
    seen = []
    ui.view.observe(lambda change: seen.append(change["new"]), names="value")
    entries = len(editor.history.entries)

    def expected(t0, n_inv, n_gen):
        with torch.no_grad():
            return generate(noise_mix(unet, [model], ratio=0.5), invert(unet, editor.image, t0, n_inv), t0, n_gen)

    ui.ratio.value = 0.5
    preview, full = expected(300, 10, PREVIEW_STEPS), expected(300, 10, 10)
    assert (preview - full).abs().max() > 1e-3  # the two differ, so the order below says something
    assert seen == [compare_png(editor.image, preview, 0.0, widgets.VIEW_PX),
                    compare_png(editor.image, full, 0.0, widgets.VIEW_PX)]
    assert len(editor.history.entries) == entries + 1 and torch.allclose(editor.history.current.output, full,
                                                                         atol=1e-5)
    seen.clear()
    ui.t0.value = 250  # no cached x_t0 at 250 yet: the preview inverts in PREVIEW_STEPS steps too
    assert seen[0] == compare_png(editor.image, expected(250, PREVIEW_STEPS, PREVIEW_STEPS), 0.0, widgets.VIEW_PX)
    assert seen[-1] == compare_png(editor.image, expected(250, 10, 10), 0.0, widgets.VIEW_PX)
    seen.clear()
    ui.ratio.value = 0.5  # nothing changed: no preview, no render
    assert seen == []
