"""StyleCLIP global directions (dclip.baselines.global_directions) on a tiny random StyleGAN2 and a tiny CLIP.

The expectations are computed independently of the module where it matters: style offsets against the same
change made by hand in the modulation layer's bias, a channel's CLIP direction against renders made one by one,
mu and sigma against a fresh sample, the edit against the biases shifted by alpha * weight * sigma.
"""
import copy
import inspect
import json

import pytest
import torch
import torch.nn.functional as F

from dclip.baselines import global_directions as gd
from dclip.baselines.common import clip_view
from dclip.baselines.projection import render
from dclip.baselines.stylegan2 import tiny_stylegan2
from dclip.method.losses import text_direction
from dclip.models.clip import encode_images, tiny_clip

SETTINGS = dict(n_images=2, n_statistics=64, strength=5.0, seed=0, truncation=0.7)
SOURCE, TARGET = "a face", "a smiling face"


@pytest.fixture(scope="module")
def generator():
    return tiny_stylegan2(32, channels=16, style_dim=32)[0]


@pytest.fixture(scope="module")
def small():
    """A smaller generator (16 px, 8 channels) for the cache tests."""
    return tiny_stylegan2(16, channels=8, style_dim=32)[0]


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


@pytest.fixture(scope="module")
def directions(generator, clip):
    return gd.channel_directions(generator, clip, batch=32, **SETTINGS)


def w_plus_of(generator, n=2, seed=1):
    """W+ codes whose entries differ from layer to layer."""
    z = torch.randn(n * generator.n_latent, generator.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return generator.mapping(z).reshape(n, generator.n_latent, -1)


def shifted(generator, deltas):
    """A copy of the generator with ``deltas[l]`` added to style layer l's modulation bias (in s units)."""
    copied = copy.deepcopy(generator)
    with torch.no_grad():
        for (_, module), delta in zip(gd.style_layers(copied), deltas):
            if delta is not None:
                module.bias += delta / module.lr_mul
    return copied


def one_hot(generator, layer, channel, value):
    sizes = [m.bias.shape[0] for _, m in gd.style_layers(generator)]
    deltas = [torch.zeros(c) for c in sizes]
    deltas[layer][channel] = value
    return deltas


# ------------------------------------------------------------------------------------------------ StyleSpace

def test_style_layers_are_the_conv_modulations_in_synthesis_order_without_torgb(generator):
    layers = gd.style_layers(generator)
    assert [name for name, _ in layers] == ["conv1"] + [f"convs.{i}" for i in range(6)]
    assert layers[0][1] is generator.conv1.conv.modulation
    assert all(module is generator.convs[i].conv.modulation for i, (_, module) in enumerate(layers[1:]))
    rgb = {id(generator.to_rgb1.conv.modulation), *(id(t.conv.modulation) for t in generator.to_rgbs)}
    assert not rgb & {id(module) for _, module in layers}
    assert [module.bias.shape[0] for _, module in layers] == [16] * 7


def test_style_codes_are_what_the_modulation_layers_see_while_rendering(generator):
    w_plus = w_plus_of(generator)
    seen = {}
    handles = [module.register_forward_hook(lambda m, a, out, name=name: seen.__setitem__(name, out.detach()))
               for name, module in gd.style_layers(generator)]
    try:
        with torch.no_grad():
            render(generator, w_plus)
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        codes = gd.style_codes(generator, w_plus)
    for (name, _), code in zip(gd.style_layers(generator), codes):
        assert torch.allclose(code, seen[name], atol=1e-6), name


# ------------------------------------------------------------------------------------------------ offsets

def _hooks(generator):
    return sum(len(m._forward_hooks) for m in generator.modules())


@torch.no_grad()
def test_zero_offsets_reproduce_the_plain_render_exactly(generator):
    w_plus = w_plus_of(generator)
    plain = render(generator, w_plus)
    zeros = [torch.zeros(m.bias.shape[0]) for _, m in gd.style_layers(generator)]
    assert torch.equal(gd.render_with_offsets(generator, w_plus, zeros), plain)
    assert torch.equal(gd.render_with_offsets(generator, w_plus, [None] * 7), plain)
    assert _hooks(generator) == 0


@torch.no_grad()
def test_an_offset_on_one_channel_equals_shifting_that_layers_bias_by_hand(generator):
    w_plus = w_plus_of(generator)
    deltas = one_hot(generator, 3, 5, 0.7)
    edited = gd.render_with_offsets(generator, w_plus, deltas)
    assert (edited - render(generator, w_plus)).abs().max() > 1e-3
    assert torch.allclose(edited, render(shifted(generator, deltas), w_plus), atol=1e-5)


@torch.no_grad()
def test_per_image_offsets_edit_only_their_image(generator):
    w_plus = w_plus_of(generator)
    deltas = one_hot(generator, 0, 2, -1.5)
    offsets = [torch.stack([torch.zeros_like(d), d]) for d in deltas]  # image 0 untouched, image 1 edited
    edited = gd.render_with_offsets(generator, w_plus, offsets)
    # atol 1e-5: on a CPU the generator convolves the batch unfused, whose rounding depends on the batch's size
    assert torch.allclose(edited[0], render(generator, w_plus[:1])[0], atol=1e-5)
    assert torch.allclose(edited[1], render(shifted(generator, deltas), w_plus[1:])[0], atol=1e-5)
    assert (edited[1] - render(generator, w_plus[1:])[0]).abs().max() > 1e-3


@torch.no_grad()
def test_bad_offsets_are_refused_and_leave_no_hook_behind(generator):
    w_plus = w_plus_of(generator)
    offsets = [torch.zeros(16)] * 6 + [torch.zeros(15)]  # the last one is wrong: six hooks were already placed
    with pytest.raises(ValueError, match=r"convs\.5.*\(16,\)"):
        gd.render_with_offsets(generator, w_plus, offsets)
    assert _hooks(generator) == 0
    with pytest.raises(ValueError, match="7 offsets"):
        gd.render_with_offsets(generator, w_plus, [torch.zeros(16)] * 3)
    with pytest.raises(Exception):  # the generator itself fails: the hooks still go
        gd.render_with_offsets(generator, w_plus[:, :3], [torch.zeros(16)] * 7)
    assert _hooks(generator) == 0


# ------------------------------------------------------------------------------------------------ precompute

def _sample(generator, n, seed, truncation):
    """mu, sigma and the w of the reference's recipe, written out again here."""
    z = torch.randn(n, generator.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        w = generator.mapping(z)
        w = generator.latent_avg + truncation * (w - generator.latent_avg)
        s = torch.cat([m(w) for _, m in gd.style_layers(generator)], dim=1)
    return w, s, s.mean(0), s.std(0, unbiased=False)


def test_directions_are_unit_vectors_with_the_statistics_of_the_sampled_styles(generator, directions):
    assert directions.directions.shape == (112, 32)
    assert torch.allclose(directions.directions.norm(dim=1), torch.ones(112), atol=1e-5)
    _, _, mean, std = _sample(generator, 64, 0, 0.7)
    assert torch.allclose(directions.mean, mean, atol=1e-5) and torch.allclose(directions.std, std, rtol=1e-4)
    assert (directions.std > 0).all()
    assert directions.layers == [("conv1", 16)] + [(f"convs.{i}", 16) for i in range(6)]
    assert directions.settings["n_images"] == 2 and directions.settings["strength"] == 5.0


@pytest.mark.parametrize("layer, channel", [(0, 3), (6, 11)])
def test_a_channels_direction_matches_renders_made_one_by_one(generator, clip, directions, layer, channel):
    w, s, mean, std = _sample(generator, 64, 0, 0.7)
    flat = 16 * layer + channel
    total = torch.zeros(32)
    with torch.no_grad():
        for i in range(2):
            embeddings = []
            for sign in (1.0, -1.0):  # s_c set to mu_c + 5 sigma_c, then to mu_c - 5 sigma_c
                value = mean[flat] + sign * 5.0 * std[flat] - s[i, flat]
                image = render(shifted(generator, one_hot(generator, layer, channel, value)),
                               generator.to_w_plus(w[i:i + 1], input_is_latent=True))
                embeddings.append(encode_images(clip, clip_view(image.clamp(-1, 1), clip.image_size))[0])
            total += F.normalize(embeddings[0] - embeddings[1], dim=0)
    assert torch.allclose(directions.directions[flat], F.normalize(total, dim=0), atol=1e-4)


def test_directions_flip_sign_with_the_perturbation_and_do_not_depend_on_the_batch(generator, clip, directions):
    flipped = gd.channel_directions(generator, clip, batch=6, **{**SETTINGS, "strength": -5.0})
    # unit vectors equal to ~1e-5 (the batch changes the unfused convolutions' rounding; entries are ~0.1)
    assert torch.allclose(flipped.directions, -directions.directions, atol=1e-4)
    assert torch.equal(flipped.std, directions.std)


def test_directions_are_deterministic_for_a_seed_and_leave_the_global_rng_alone(generator, clip, directions):
    state = torch.get_rng_state()
    again = gd.channel_directions(generator, clip, batch=32, **SETTINGS)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(again.directions, directions.directions) and torch.equal(again.std, directions.std)
    other = gd.channel_directions(generator, clip, batch=32, **{**SETTINGS, "seed": 1})
    assert not torch.allclose(other.directions, directions.directions, atol=1e-3)


# ------------------------------------------------------------------------------------------------ weights, edit

def test_channel_weights_threshold_and_normalise_the_relevance():
    rows = torch.tensor([[0.5, 1.0], [-0.75, 0.0], [0.125, 2.0], [0.25, -1.0]])
    weights = gd.channel_weights(rows, torch.tensor([1.0, 0.0]), beta=0.25)
    assert torch.allclose(weights, torch.tensor([2 / 3, -1.0, 0.0, 1 / 3]))
    with pytest.raises(ValueError, match=r"beta=0\.8 .*0\.7500.*lower beta"):
        gd.channel_weights(rows, torch.tensor([1.0, 0.0]), beta=0.8)
    with pytest.raises(ValueError, match="3 dimensions"):
        gd.channel_weights(rows, torch.ones(3), beta=0.1)


def test_channel_weights_of_real_directions(clip, directions):
    delta_t = text_direction(clip, SOURCE, TARGET)
    relevance = directions.directions @ delta_t.reshape(-1)
    weights = gd.channel_weights(directions, delta_t, beta=0.1)
    assert weights.abs().max() == pytest.approx(1.0)
    assert (weights[relevance.abs() < 0.1] == 0).all()
    kept = relevance.abs() >= 0.1
    assert kept.any() and (weights[kept].sign() == relevance[kept].sign()).all()


@torch.no_grad()
def test_an_edit_with_alpha_zero_is_the_unedited_render(generator, clip, directions):
    w_plus = w_plus_of(generator)
    edited = gd.global_direction_edit(generator, w_plus, directions, clip, SOURCE, TARGET, alpha=0.0, beta=0.1)
    assert torch.equal(edited, render(generator, w_plus))


@torch.no_grad()
def test_an_edit_moves_each_style_by_alpha_weight_sigma(generator, clip, directions):
    w_plus = w_plus_of(generator)
    weights = gd.channel_weights(directions.directions, text_direction(clip, SOURCE, TARGET), 0.1)
    step = (2.5 * weights * directions.std).split(16)
    edited = gd.global_direction_edit(generator, w_plus, directions, clip, SOURCE, TARGET, alpha=2.5, beta=0.1)
    assert (edited - render(generator, w_plus)).abs().max() > 1e-2
    assert torch.allclose(edited, render(shifted(generator, step), w_plus), atol=1e-4)
    other = tiny_stylegan2(32, channels=8, style_dim=32)[0]
    with pytest.raises(ValueError, match="channel_directions"):
        gd.global_direction_edit(other, w_plus_of(other), directions, clip, SOURCE, TARGET, alpha=1.0, beta=0.1)


# ------------------------------------------------------------------------------------------------ files, cache

def test_save_and_load_round_trip_and_a_clear_error_for_another_generator(generator, directions, tmp_path):
    path = directions.save(tmp_path / "ffhq-directions")
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    back = gd.GlobalDirections.load(path, generator)
    for name in ("directions", "std", "mean"):
        assert torch.equal(getattr(back, name), getattr(directions, name)), name
    assert back.layers == directions.layers and back.settings == directions.settings
    other = tiny_stylegan2(64, channels=16, style_dim=32)[0]
    with pytest.raises(ValueError, match=r"112 channels.*144 channels.*channel_directions"):
        gd.GlobalDirections.load(path, other)
    path.with_suffix(".json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a dclip global-directions file"):
        gd.GlobalDirections.load(path)
    with pytest.raises(FileNotFoundError, match="channel_directions"):
        gd.GlobalDirections.load(tmp_path / "missing.safetensors")


def test_the_cache_key_covers_weights_and_settings(small, clip, tmp_path):
    path = gd.directions_cache_path(small, clip, tmp_path)
    assert path == gd.directions_cache_path(small, clip, tmp_path, n_images=100, strength=5.0)
    assert path != gd.directions_cache_path(small, clip, tmp_path, n_images=2)
    assert path != gd.directions_cache_path(tiny_stylegan2(16, seed=1, channels=8, style_dim=32)[0], clip, tmp_path)
    assert path != gd.directions_cache_path(small, tiny_clip(seed=1), tmp_path)
    with pytest.raises(TypeError, match="alpha"):
        gd.directions_cache_path(small, clip, tmp_path, alpha=1.0)


def test_the_cache_computes_once_and_recomputes_a_damaged_file(small, clip, tmp_path, monkeypatch, capsys):
    calls = []
    real = gd.channel_directions
    monkeypatch.setattr(gd, "channel_directions", lambda *a, **k: calls.append(k) or real(*a, **k))
    first = gd.cached_channel_directions(small, clip, tmp_path, **SETTINGS)
    assert len(calls) == 1 and gd.directions_cache_path(small, clip, tmp_path, **SETTINGS).is_file()
    second = gd.cached_channel_directions(small, clip, tmp_path, **SETTINGS)
    assert len(calls) == 1 and torch.equal(second.directions, first.directions)
    gd.cached_channel_directions(small, clip, tmp_path, **{**SETTINGS, "strength": 3.0})
    assert len(calls) == 2
    gd.directions_cache_path(small, clip, tmp_path, **SETTINGS).write_bytes(b"not safetensors")
    third = gd.cached_channel_directions(small, clip, tmp_path, **SETTINGS)
    assert len(calls) == 3 and "ignored the cached global directions" in capsys.readouterr().err
    assert torch.equal(third.directions, first.directions)
    assert torch.equal(gd.cached_channel_directions(small, clip, tmp_path, **SETTINGS).directions, first.directions)
    assert len(calls) == 3


# ------------------------------------------------------------------------------------------------ config

def test_config_defaults_are_the_references_and_smoke_is_smaller():
    config = gd.GlobalDirectionsConfig()
    assert (config.alpha, config.beta, config.n_images, config.strength) == (4.1, 0.15, 100, 5.0)
    assert (config.n_statistics, config.truncation) == (100_000, 0.7)
    smoke = gd.GlobalDirectionsConfig.smoke()
    assert smoke.n_images < config.n_images and smoke.n_statistics < config.n_statistics
    parameters = inspect.signature(gd.channel_directions).parameters
    assert set(config.precompute_settings()) <= set(parameters)
    assert all(parameters[k].default == v for k, v in config.precompute_settings().items())
    for bad in ({"strength": 0.0}, {"n_images": 0}, {"n_images": 10, "n_statistics": 5}, {"beta": -0.1}):
        with pytest.raises(ValueError):
            gd.GlobalDirectionsConfig(**bad)


def test_channel_directions_refuse_more_images_than_samples(generator, clip):
    with pytest.raises(ValueError, match="n_statistics >= max"):
        gd.channel_directions(generator, clip, n_images=10, n_statistics=5)
