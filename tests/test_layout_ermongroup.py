"""The ermongroup/ddim layout converter reproduces the authors' DDPM on the tiny fixture."""

import json

import pytest
import torch
from diffusers import UNet2DModel

from dclip.models.layouts import ermongroup

from conftest import FIXTURES, rel_err


def _load(name):
    return torch.load(FIXTURES / name, weights_only=True)


@pytest.fixture(scope="module")
def config():
    return json.loads((FIXTURES / "ddim_tiny_config.json").read_text())


@pytest.fixture(scope="module")
def state_dict():
    return _load("ddim_tiny.ckpt")


def _build(state_dict, config):
    model = UNet2DModel(**ermongroup.unet_kwargs(config))
    model.load_state_dict(ermongroup.convert(state_dict, config), strict=True)
    return model.eval()


def test_forward_matches_authors_model(state_dict, config):
    io = _load("ddim_tiny_io.pt")
    with torch.no_grad():
        out = _build(state_dict, config)(io["x"], io["t"]).sample
    err = rel_err(out, io["out"])
    assert err <= 1e-5, f"relative error {err:.3e} against the authors' DDPM output"


def test_second_checkpoint_converts(config):
    _build(_load("ddim_tiny_b.ckpt"), config)


def test_matches(state_dict):
    assert ermongroup.matches(state_dict)
    assert not ermongroup.matches(_load("adm_tiny.pt"))


def test_module_prefix(state_dict, config):
    prefixed = {"module." + key: value for key, value in state_dict.items()}
    assert ermongroup.matches(prefixed)
    assert ermongroup.strip_prefix(prefixed).keys() == state_dict.keys()
    plain, from_prefixed = ermongroup.convert(state_dict, config), ermongroup.convert(prefixed, config)
    assert plain.keys() == from_prefixed.keys()
    assert all(torch.equal(plain[key], from_prefixed[key]) for key in plain)


def test_strip_prefix_only_when_all_keys_have_it():
    mixed = {"module.a": 1, "b": 2}
    assert ermongroup.strip_prefix(mixed) == mixed


def test_unknown_key_is_named(state_dict, config):
    extra = dict(state_dict, **{"down.0.block.0.surprise.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"down\.0\.block\.0\.surprise\.weight"):
        ermongroup.convert(extra, config)


def test_missing_key_is_named(state_dict, config):
    partial = {key: value for key, value in state_dict.items() if key != "down.1.block.0.conv1.weight"}
    with pytest.raises(ValueError, match=r"lacks.*down\.1\.block\.0\.conv1\.weight"):
        ermongroup.convert(partial, config)


def test_shape_mismatch_is_reported(state_dict, config):
    wider = dict(config, ch=64)
    with pytest.raises(ValueError, match=r"shapes do not match.*conv_in\.weight has \(32, 3, 3, 3\)"):
        ermongroup.convert(state_dict, wider)


def test_level_count_mismatch_is_reported(state_dict, config):
    with pytest.raises(ValueError, match="config"):
        ermongroup.convert(state_dict, dict(config, ch_mult=[1, 2]))


def test_bayesian_logvar(state_dict, config):
    with_logvar = dict(state_dict, logvar=torch.zeros(1000))
    converted = ermongroup.convert(with_logvar, dict(config, type="bayesian"))
    assert "logvar" not in converted and len(converted) == len(state_dict)
    with pytest.raises(ValueError, match="logvar"):
        ermongroup.convert(with_logvar, config)


@pytest.mark.parametrize("change, message", [
    ({"resamp_with_conv": False}, "resamp_with_conv"),
    ({"ch_mult": [2, 2]}, "ch_mult"),
    ({"type": "mystery"}, "type"),
])
def test_inexpressible_configs_raise(config, change, message):
    with pytest.raises(ValueError, match=message):
        ermongroup.unet_kwargs(dict(config, **change))


def test_celeba_hq_architecture():
    celeba = {"type": "simple", "in_channels": 3, "out_ch": 3, "ch": 128, "ch_mult": [1, 1, 2, 2, 4, 4],
              "num_res_blocks": 2, "attn_resolutions": [16], "dropout": 0.0, "var_type": "fixedsmall",
              "resamp_with_conv": True, "image_size": 256}
    kwargs = ermongroup.unet_kwargs(celeba)
    assert kwargs["down_block_types"][4] == "AttnDownBlock2D"
    assert kwargs["up_block_types"][1] == "AttnUpBlock2D"
    assert sum(t.startswith("Attn") for t in kwargs["down_block_types"] + kwargs["up_block_types"]) == 2
