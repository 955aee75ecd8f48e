"""dclip.baselines.stylegan2 against rosinality's StyleGAN2 Generator (fixture outputs computed with its CPU code)."""
import json

import pytest
import torch

from dclip.baselines.stylegan2 import Generator, infer_config, load_stylegan2, tiny_stylegan2
from dclip.models.weights import WeightsNotFoundError

from conftest import FIXTURES, rel_err

CKPT = FIXTURES / "stylegan2_small.pt"
TOL = 1e-4


@pytest.fixture(scope="module")
def loaded():
    return load_stylegan2(str(CKPT))


@pytest.fixture(scope="module")
def io():
    return torch.load(FIXTURES / "stylegan2_small_io.pt", weights_only=True)


@pytest.fixture(scope="module")
def g_ema():
    return torch.load(CKPT, weights_only=True)["g_ema"]


@pytest.mark.parametrize("case", ["z", "w_plus", "z_trunc0.7"])
def test_matches_rosinality(loaded, io, case):
    generator, latent_avg = loaded
    with torch.no_grad():
        if case == "z":
            out, ref = generator([io["z"]]), io["img_z"]
        elif case == "w_plus":
            out, ref = generator([io["w_plus"]], input_is_latent=True), io["img_w_plus"]
        else:
            out, ref = generator([io["z"]], truncation=0.7, truncation_latent=latent_avg), io["img_z_trunc0.7"]
    err = rel_err(out, ref)
    assert out.shape == ref.shape
    assert err <= TOL, f"{case}: relative error {err:.3e} > {TOL:.0e}"


def test_loaded_state(loaded, io):
    generator, latent_avg = loaded
    assert not generator.training
    assert generator.n_latent == io["w_plus"].shape[1] == 10
    assert torch.equal(latent_avg, torch.load(CKPT, weights_only=True)["latent_avg"])
    with torch.no_grad():  # truncation_latent defaults to the checkpoint's latent_avg
        err = rel_err(generator([io["z"]], truncation=0.7), io["img_z_trunc0.7"])
    assert err <= TOL, f"default truncation centre: relative error {err:.3e}"


def test_inferred_config_equals_json(g_ema):
    expected = json.loads((FIXTURES / "stylegan2_small_config.json").read_text())
    assert infer_config(g_ema).to_dict() == expected


@pytest.mark.parametrize("edit", ["drop", "rename"])
def test_key_mismatch_raises_naming_key(g_ema, tmp_path, edit):
    state = dict(g_ema)
    tensor = state.pop("convs.3.noise.weight")
    if edit == "rename":
        state["convs.3.noise.strength"] = tensor
    path = tmp_path / "bad.pt"
    torch.save({"g_ema": state, "latent_avg": torch.zeros(64)}, path)
    with pytest.raises(ValueError, match=r"convs\.3\.noise\.weight") as info:
        load_stylegan2(path)
    if edit == "rename":
        assert "convs.3.noise.strength" in str(info.value)


def test_missing_structural_key_raises(g_ema):
    state = {k: v for k, v in g_ema.items() if k != "input.input"}
    with pytest.raises(ValueError, match=r"input\.input"):
        Generator.from_state_dict(state)


def test_offline_without_file_fails_fast(no_network, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    empty = tmp_path / "weights"
    empty.mkdir()
    monkeypatch.setenv("DCLIP_WEIGHTS", str(empty))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # ignore any real cache
    with pytest.raises(WeightsNotFoundError, match="stylegan2-ffhq-config-f.pt"):
        load_stylegan2()


def test_gradient_reaches_w_plus(loaded, io):
    generator, _ = loaded
    w_plus = io["w_plus"].clone().requires_grad_(True)
    generator([w_plus], input_is_latent=True).square().mean().backward()
    grad = w_plus.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert (grad.abs().sum(dim=(0, 2)) > 0).all(), "every W+ entry should influence the image"


def test_tiny_generator_is_seeded():
    g1, avg1 = tiny_stylegan2(size=32, seed=0)
    g2, _ = tiny_stylegan2(size=32, seed=0)
    z = torch.randn(2, g1.style_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        img1, img2 = g1([z], truncation=0.7), g2([z], truncation=0.7)
    assert img1.shape == (2, 3, 32, 32) and avg1.shape == (g1.style_dim,)
    assert torch.equal(img1, img2)
