"""guided-diffusion (ADM) checkpoint -> diffusers UNet2DModel: pinned to the authors' own forward pass."""

import json

import pytest
import torch
from diffusers import UNet2DModel

from dclip.models.layouts import adm

from conftest import FIXTURES


def _load(name):
    return torch.load(FIXTURES / name, weights_only=True)


@pytest.fixture(scope="module")
def state_dict():
    return _load("adm_tiny.pt")


@pytest.fixture(scope="module")
def config():
    return json.loads((FIXTURES / "adm_tiny_config.json").read_text())


def test_forward_matches_authors_model(state_dict, config):
    io = _load("adm_tiny_io.pt")
    model = UNet2DModel(**adm.unet_kwargs(config))
    model.load_state_dict(adm.convert(state_dict, config), strict=True)
    model.eval()
    with torch.no_grad():
        out = model(io["x"], io["t"]).sample
    assert out.shape == io["out"].shape
    rel = ((out - io["out"]).norm() / io["out"].norm()).item()
    assert rel <= 1e-4, f"relative error {rel:.3e} vs the authors' guided-diffusion UNetModel"


def test_matches_this_layout_only(state_dict):
    assert adm.matches(state_dict)
    assert adm.matches({f"module.{k}": v for k, v in state_dict.items()})
    assert not adm.matches(_load("ddim_tiny.ckpt"))
    assert not adm.matches({})


def test_module_prefix_is_accepted(state_dict, config):
    prefixed = {f"module.{k}": v for k, v in state_dict.items()}
    assert adm.convert(prefixed, config).keys() == adm.convert(state_dict, config).keys()


def test_unknown_key_is_named(state_dict, config):
    extra = dict(state_dict, **{"label_emb.weight": torch.zeros(1000, 128)})
    with pytest.raises(ValueError, match=r"label_emb\.weight"):
        adm.convert(extra, config)


def test_missing_key_is_named(state_dict, config):
    incomplete = {k: v for k, v in state_dict.items() if k != "middle_block.1.qkv.bias"}
    with pytest.raises(ValueError, match=r"middle_block\.1\.qkv\.bias"):
        adm.convert(incomplete, config)


def test_wrong_config_is_rejected(state_dict, config):
    with pytest.raises(ValueError, match="shape"):
        adm.convert(state_dict, dict(config, num_channels=64))


def test_default_channel_mult_for_256(config):
    kwargs = adm.unet_kwargs(dict(config, image_size=256, channel_mult="", attention_resolutions="16"))
    assert kwargs["block_out_channels"] == tuple(32 * m for m in (1, 1, 2, 2, 4, 4))
    # "16" px at 256 px is ds 16 = the fifth level; up blocks run deepest first.
    assert [t.startswith("Attn") for t in kwargs["down_block_types"]] == [False] * 4 + [True, False]
    assert [t.startswith("Attn") for t in kwargs["up_block_types"]] == [False, True] + [False] * 4


@pytest.mark.parametrize(
    "change, message",
    [
        ({"class_cond": True}, "class_cond"),
        ({"image_size": 512, "channel_mult": ""}, "channel_mult"),
        ({"num_head_channels": -1, "num_heads": 4, "attention_resolutions": "32,8"}, "head width"),
        ({"num_channel": 32}, "num_channel"),
    ],
)
def test_unsupported_config_raises(config, change, message):
    with pytest.raises(ValueError, match=message):
        adm.unet_kwargs(dict(config, **change))
