"""Save with settings: the live editor's Save writes a PNG that holds everything to redo the edit, and
``python -m dclip edit --from-png`` redoes it (at the toy profile, on the shipped toy models)."""
import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from dclip.cli import main
from dclip.editor import widgets
from dclip.editor.saved_edit import TEXT_KEY, read_settings, sha256_of


@pytest.fixture(scope="module")
def toy_ctx(tmp_path_factory):
    from dclip.notebook.context import Context
    from dclip.notebook.profiles import get_profile

    profile = dataclasses.replace(get_profile("toy"), n_train=2, n_iter=1, n_test=2, num_threads=0)
    return Context(profile, output_dir=str(tmp_path_factory.mktemp("figures")))


@pytest.fixture
def edited(toy_ctx):
    """A toy face edited by two fine-tuned models at r = 0.7, γ = (1, 0.4)."""
    editor = widgets.Editor(toy_ctx, t0=201)
    editor.load_sample("toy face 1")
    editor.finetune("face", "tanned face")
    editor.finetune("face", "angry face")
    editor.ratio = 0.7
    editor.set_gamma(1, 0.4)
    editor.rendered()
    return editor


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_save_writes_the_settings_and_from_png_redoes_the_edit(edited, tmp_path, capsys):
    saved = edited.save(tmp_path / "edits")
    assert saved.png.name == "edit-001.png" and saved.input.name == "edit-001-input.png"
    assert [p.name for p in saved.models] == ["model-tanned-face-t0-201.safetensors",
                                              "model-angry-face-t0-201.safetensors"]
    with Image.open(saved.png) as image:
        chunks = dict(image.text)
        assert image.size == (32, 32)
    settings = json.loads(chunks[TEXT_KEY])
    assert settings == json.loads(saved.sidecar.read_text()) == read_settings(saved.png)
    assert settings["prompts"] == [["face", "tanned face"], ["face", "angry face"]]
    assert (settings["t0"], settings["r"], settings["gammas"]) == (201, 0.7, [1.0, 0.4])
    assert (settings["S_inv"], settings["S_gen"], settings["seed"], settings["base_model"]) == (40, 40, 0, "toy")
    assert settings["mode"] == "fp32"  # the toy profile generates in fp32 on every CPU; a redo runs in the same mode
    from dclip.version import __version__

    assert settings["dclip_version"] == __version__ and settings["K"] is None
    assert json.loads(chunks["t0"]) == 201 and json.loads(chunks["gammas"]) == [1.0, 0.4]
    assert [m["sha256"] for m in settings["models"]] == [sha256_of(p) for p in saved.models]
    from dclip.data.images import to_pil

    shown = np.asarray(to_pil(edited.history.current.output)[0], dtype=np.int16)
    assert np.array_equal(pixels(saved.png), shown)  # the PNG is the edit the editor showed

    out = tmp_path / "again.png"
    assert main(["edit", "--from-png", str(saved.png), "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert np.abs(pixels(out) - pixels(saved.png)).max() <= 1  # ≤ 1/255: the same edit
    edited.ratio = 0.0
    reconstruction = np.asarray(to_pil(edited.render())[0], dtype=np.int16)
    assert np.abs(pixels(out) - reconstruction).max() > 2  # and the edit, not the reconstruction


def test_a_second_save_points_at_the_model_files_already_written(edited, tmp_path):
    first = edited.save(tmp_path)
    edited.ratio = 0.3
    edited.rendered()
    second = edited.save(tmp_path)
    assert second.png.name == "edit-002.png" and second.models == first.models
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


@pytest.mark.parametrize("lost", ["model weights", "model sidecar", "input"])
def test_from_png_names_the_one_missing_file(edited, tmp_path, capsys, lost):
    saved = edited.save(tmp_path)
    gone = {"model weights": saved.models[1], "model sidecar": saved.models[0].with_suffix(".json"),
            "input": saved.input}[lost]
    gone.unlink()
    assert main(["edit", "--from-png", str(saved.png), "--out", str(tmp_path / "x.png"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"error: '{gone}' is missing" in err and err.count("is missing") == 1
    assert not (tmp_path / "x.png").exists()


def test_from_png_refuses_a_changed_model_file(edited, tmp_path, capsys):
    saved = edited.save(tmp_path)
    with open(saved.models[0], "ab") as f:
        f.write(b"\0")
    assert main(["edit", "--from-png", str(saved.png), "--out", str(tmp_path / "x.png"), "--no-progress"]) == 2
    assert "is not the file the edit" in capsys.readouterr().err


def test_from_png_of_a_png_without_settings_is_a_clear_error(tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert main(["edit", "--from-png", str(tmp_path / "plain.png"), "--out", str(tmp_path / "x.png")]) == 2
    assert "holds no dclip edit settings" in capsys.readouterr().err


def test_edit_without_finetuned_or_from_png_is_a_clear_error(tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    assert main(["edit", "--model", "toy", "--image", str(tmp_path / "a.png"), "--out", str(tmp_path / "x.png")]) == 2
    assert "edit needs --finetuned" in capsys.readouterr().err


def test_a_stopped_model_is_saved_as_stopped(toy_ctx, tmp_path):
    editor = widgets.Editor(toy_ctx, t0=201)
    editor.load_sample("toy face 0")
    editor.finetune("face", "pale face", stop=lambda: True)
    editor.rendered()
    settings = read_settings(editor.save(tmp_path).png)
    assert settings["models"][0]["stopped"] and settings["models"][0]["updates"] == 1
    assert settings["models"][0]["label"] == "pale face (t0=201) (stopped at update 1/2)"


def test_the_save_button_says_where_and_how_to_redo_it(toy_ctx, tmp_path):
    editor = widgets.Editor(toy_ctx, t0=201, save_dir=str(tmp_path / "mine"))
    ui = widgets.build_ui(editor)
    assert ui.save_to.value == str(tmp_path / "mine")
    ui.save.click()
    png = tmp_path / "mine" / "edit-001.png"
    assert png.is_file() and read_settings(png)["models"] == []  # the reconstruction, before any model
    assert ui.status.value.startswith(f"saved {png}") and f"--from-png {png}" in ui.status.value
