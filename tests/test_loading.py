"""load_unet: presets, files of every layout, diffusers folders, and clear errors (offline included)."""
import json
import socket
from pathlib import Path

import pytest
import torch

import dclip
from dclip.models.unet import PRESETS, load_state_dict

from conftest import FIXTURES


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No weights folder, an empty HF cache, HF_HUB_OFFLINE=1, and any socket use is a failure."""
    monkeypatch.setenv("DCLIP_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))

    def no_network(*args, **kwargs):
        raise AssertionError("tried to open a network connection while offline")

    monkeypatch.setattr(socket, "create_connection", no_network)
    return tmp_path


def out(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, 32, 32, generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([123.0])).sample


def test_tiny_preset_is_seeded_32px_and_in_eval_mode():
    a, b = dclip.load_unet("tiny"), dclip.load_unet("tiny")
    assert a.config.sample_size == 32 and not a.training
    torch.testing.assert_close(out(a), out(b), rtol=0, atol=0)


def test_ddim_file_finds_its_preset_by_shape():
    model = dclip.load_unet(FIXTURES / "ddim_tiny.ckpt")  # the fixture has the tiny preset's architecture
    io = torch.load(FIXTURES / "ddim_tiny_io.pt", weights_only=True)
    with torch.no_grad():
        torch.testing.assert_close(model(io["x"], io["t"]).sample, io["out"], rtol=1e-4, atol=1e-5)


def test_dataparallel_prefix_loads(tmp_path):
    sd = load_state_dict(FIXTURES / "ddim_tiny.ckpt")
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "ft.pth")
    torch.testing.assert_close(out(dclip.load_unet(tmp_path / "ft.pth", "tiny")),
                               out(dclip.load_unet(FIXTURES / "ddim_tiny.ckpt", "tiny")))


def test_local_diffusers_folder_loads(tmp_path):
    model = dclip.load_unet("tiny")
    model.save_pretrained(tmp_path / "unet")
    torch.testing.assert_close(out(dclip.load_unet(str(tmp_path / "unet"))), out(model), rtol=1e-4, atol=1e-5)
    # a pipeline-style folder with the UNet in a subfolder works too
    torch.testing.assert_close(out(dclip.load_unet(str(tmp_path))), out(model), rtol=1e-4, atol=1e-5)


def test_safetensors_with_sidecar_loads(tmp_path):
    from safetensors.torch import save_file

    model = dclip.load_unet("tiny")
    save_file(model.state_dict(), tmp_path / "edit.safetensors")
    with pytest.raises(ValueError, match="sidecar"):
        dclip.load_unet(tmp_path / "edit.safetensors")
    (tmp_path / "edit.json").write_text(json.dumps({"unet_config": dict(model.config)}))
    torch.testing.assert_close(out(dclip.load_unet(tmp_path / "edit.safetensors")), out(model), rtol=1e-4, atol=1e-5)


def test_wrong_preset_names_offending_keys():
    with pytest.raises(ValueError, match="celeba_hq") as err:
        dclip.load_unet(FIXTURES / "ddim_tiny.ckpt", config="celeba_hq")
    assert "down." in str(err.value) or "conv_in" in str(err.value)


def test_layout_and_preset_disagree():
    with pytest.raises(ValueError, match="adm layout but preset 'celeba_hq'"):
        dclip.load_unet(FIXTURES / "adm_tiny.pt", config="celeba_hq")


def test_truncated_checkpoint_is_an_error_naming_keys(tmp_path):
    sd = load_state_dict(FIXTURES / "ddim_tiny.ckpt")
    del sd["mid.attn_1.q.weight"]
    torch.save(sd, tmp_path / "broken.ckpt")
    with pytest.raises(ValueError, match="attn_1.q.weight|mid_block.attentions.0.to_q.weight"):
        dclip.load_unet(tmp_path / "broken.ckpt", config="tiny")


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(1), "note": Path("x")}, tmp_path / "evil.ckpt")
    with pytest.raises(ValueError, match="tensors-only"):
        dclip.load_unet(tmp_path / "evil.ckpt")


def test_unknown_source_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="preset"):
        dclip.load_unet("no_such_thing")


def test_missing_weights_offline_fail_at_once_naming_file_and_fix(offline):
    with pytest.raises(dclip.WeightsNotFoundError) as err:
        dclip.load_unet("celeba_hq")
    message = str(err.value)
    assert "celeba_hq.ckpt" in message and "google/ddpm-ema-celebahq-256" in message
    assert "DCLIP_WEIGHTS" in message and str(offline / "weights") in message


def test_afhq_dog_offline_points_to_the_original_download(offline):
    with pytest.raises(dclip.WeightsNotFoundError) as err:
        dclip.load_unet("afhq_dog")
    assert "afhq_dog_4m.pt" in str(err.value) and "drive.google.com" in str(err.value)


def test_preset_file_in_weights_folder_is_used(offline):
    folder = offline / "weights"
    folder.mkdir()
    # stand a tiny checkpoint in for lsun_church's file: the preset's architecture must reject it
    (folder / "church_outdoor.ckpt").write_bytes((FIXTURES / "ddim_tiny.ckpt").read_bytes())
    with pytest.raises(ValueError, match="lsun_church"):
        dclip.load_unet("lsun_church")


def test_presets_describe_the_paper_models():
    assert {"celeba_hq", "lsun_church", "lsun_bedroom", "afhq_dog", "tiny"} <= set(PRESETS)
    assert PRESETS["afhq_dog"].layout == "adm" and PRESETS["celeba_hq"].config["ch"] == 128


# ------------------------------------------------------------------------ the google/ddpm-* Hub copies

@pytest.fixture
def hf_cache(offline, monkeypatch):
    """The HF Hub cache in ``offline``/hf (set on the already imported huggingface_hub)."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(offline / "hf"))
    return offline / "hf"


def _put_2022_repo(offline, hf_cache, repo_id):
    """A google/ddpm-ema-*-256 repository in its 2022 format (tiny config) in the HF cache layout."""
    from standins import GOOGLE_DDPM_TINY, ddpm_2022_state, hf_cache_put, write_ddpm_2022_folder

    state = ddpm_2022_state(GOOGLE_DDPM_TINY, seed=3)
    folder = offline / "raw" / repo_id
    write_ddpm_2022_folder(folder, GOOGLE_DDPM_TINY, state)
    hf_cache_put(hf_cache, repo_id, {p.name: p for p in folder.iterdir()})
    return state


def test_google_ddpm_copy_in_the_hf_cache_loads_quietly(hf_cache, offline, capfd):
    from standins import current_names

    state = _put_2022_repo(offline, hf_cache, "google/ddpm-ema-bedroom-256")
    assert any(k.endswith("attentions.0.query.weight") for k in state)  # the 2022 names, renamed on load
    capfd.readouterr()
    for source in ("lsun_bedroom", "google/ddpm-ema-bedroom-256"):
        model = dclip.load_unet(source)
        expected = current_names(state)
        assert set(model.state_dict()) == set(expected)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())
    printed = capfd.readouterr()
    text = (printed.out + printed.err).lower()
    assert "error" not in text and "unsafe" not in text and "warn" not in text, text


def test_a_real_failure_of_a_hub_copy_still_explains_itself(hf_cache, offline):
    from standins import GOOGLE_DDPM_TINY, hf_cache_put

    folder = offline / "raw" / "church"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(GOOGLE_DDPM_TINY))
    hf_cache_put(hf_cache, "google/ddpm-ema-church-256", {"config.json": folder / "config.json"})  # no weights
    with pytest.raises(dclip.WeightsNotFoundError, match="church_outdoor.ckpt") as err:
        dclip.load_unet("lsun_church")
    assert "google/ddpm-ema-church-256" in str(err.value) and "offline" in str(err.value)
