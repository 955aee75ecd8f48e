"""The live editor: its state and actions, and the widget callbacks triggered as a user would."""
import datetime
import io

import pytest
import torch

from dclip.method.mixing import change_weights
from dclip.notebook import widgets
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
    assert ui.progress.value == 1.0 and len(ui.gamma_box.children) == 1 and not ui.button.disabled
    assert ui.status.value == "weights: original 0 · tanned face (t0=300) 1"
    assert ui.gamma_box.children[0].disabled and "only r matters" in ui.gamma_note.value  # a lone γ does nothing
    shown = ui.view.value
    ui.ratio.value = 0.5
    assert editor.ratio == 0.5 and editor.weights() == [0.5, 0.5] and ui.view.value != shown
    ui.target.value = "angry face"
    ui.button.click()
    assert len(ui.gamma_box.children) == 2 and not any(s.disabled for s in ui.gamma_box.children)
    assert [s.description for s in ui.gamma_box.children] == ["γ tanned face (t0=300)", "γ angry face (t0=300)"]
    shown = ui.view.value
    ui.gamma_box.children[1].value = 0.0
    assert editor.weights() == [0.5, 0.5, 0.0] and ui.view.value != shown
    ui.button.click()  # the same pair again: no second copy, and the status says why
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
    assert len(ui.gamma_box.children) == 1 and ui.status.value.endswith("this session: reused)")


def test_every_control_has_a_tooltip(editor):
    ui = widgets.build_ui(editor)
    ui.button.click()
    controls = [ui.picker, ui.upload, ui.source, ui.target, ui.t0, ui.button, ui.progress, ui.ratio,
                *ui.gamma_box.children]
    assert all(c.tooltip for c in controls)


def test_finetune_errors_show_in_the_status_line(editor):
    ui = widgets.build_ui(editor)
    ui.target.value = "  "
    ui.button.click()
    assert ui.status.value.startswith("error:") and not ui.button.disabled


def test_static_edit_and_launch(editor, capsys):
    study = widgets.static_edit(editor, "face", "tanned face", ratios=(0.0, 1.0))
    assert [r["ratio"] for r in study.rows] == [0.0, 1.0]
    assert study.rows[0]["s_dir"] is None and isinstance(study.rows[1]["s_dir"], float)
    assert len(study.grid[0]) == 3
    assert widgets.launch(editor, interactive=False) is None
    assert "static edit" in capsys.readouterr().out
    assert widgets.launch(editor, interactive=True).children
