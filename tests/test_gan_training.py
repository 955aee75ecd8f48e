"""The StyleGAN2 and e4e trainers (dclip.baselines.stylegan2_training, e4e_training) on tiny settings: their losses
against the formulas, resuming, the discriminator's shapes, the unfused modulated convolution."""
import math
from dataclasses import replace

import pytest
import torch

from dclip.baselines.e4e_training import (E4E_SETTINGS, active_offsets, delta_norm, load_trained_e4e,
                                          progressive_codes, train_e4e)
from dclip.baselines.stylegan2 import tiny_stylegan2
from dclip.baselines.stylegan2_discriminator import Discriminator
from dclip.baselines.stylegan2_training import (GAN_SETTINGS, d_logistic_loss, g_nonsaturating_loss,
                                                load_trained_stylegan2, r1_penalty, train_stylegan2)

TINY = replace(GAN_SETTINGS, size=8, style_dim=8, n_mlp=2, widths=(8, 8), batch_size=4, steps=4, save_every=2,
               threads=1)


def _real(step: int) -> torch.Tensor:
    return torch.tanh(torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(step)))


def test_logistic_losses_are_the_softplus_formulas():
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    sig = torch.sigmoid
    expected_d = -(torch.log(sig(real)).mean() + torch.log(1 - sig(fake)).mean())
    assert torch.allclose(d_logistic_loss(real, fake), expected_d)
    assert torch.allclose(g_nonsaturating_loss(fake), -torch.log(sig(fake)).mean())


def test_r1_of_a_linear_discriminator_is_its_squared_weight_norm():
    weight = torch.randn(3 * 4 * 4)
    disc = lambda x: x.flatten(1) @ weight[:, None]  # noqa: E731 -- grad_x D = weight for every image
    assert math.isclose(r1_penalty(disc, torch.randn(5, 3, 4, 4)).item(), weight.pow(2).sum().item(), rel_tol=1e-5)


def test_discriminator_gives_one_logit_per_image():
    disc = Discriminator(16, {4: 8, 8: 8, 16: 4})
    assert disc(torch.randn(6, 3, 16, 16)).shape == (6, 1)
    assert disc(torch.randn(3, 3, 16, 16)).shape == (3, 1)  # a batch not divisible by the stddev group


def test_unfused_modulated_convolution_computes_the_reference_function():
    generator, _ = tiny_stylegan2(32, channels=16, style_dim=32)
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(1))
    w_plus = generator.to_w_plus(z).detach()
    for conv in (generator.conv1.conv, generator.convs[0].conv):  # a plain and an upsampling modulated conv
        x = torch.randn(3, conv.in_channels, 4, 4, generator=torch.Generator().manual_seed(2))
        style = w_plus[:, 0]
        reference = _grouped(conv, x, style)
        assert torch.allclose(conv._unfused(x, style), reference, atol=1e-5)
        assert torch.allclose(conv(x, style), reference, atol=1e-5)


def _grouped(conv, x, style):
    """The reference form: per-sample kernels, one grouped convolution (rosinality's ModulatedConv2d)."""
    import torch.nn.functional as F

    n, k = x.shape[0], conv.kernel_size
    weight = conv._sample_weights(style)
    x = x.reshape(1, n * conv.in_channels, *x.shape[2:])
    if conv.upsample:
        weight = weight.transpose(1, 2).reshape(n * conv.in_channels, conv.out_channels, k, k)
        out = F.conv_transpose2d(x, weight, stride=2, padding=0, groups=n)
        return conv.blur(out.reshape(n, conv.out_channels, *out.shape[2:]))
    out = F.conv2d(x, weight.reshape(n * conv.out_channels, conv.in_channels, k, k), padding=conv.padding, groups=n)
    return out.reshape(n, conv.out_channels, *out.shape[2:])


def test_training_resumes_where_it_stopped(tmp_path):
    straight = train_stylegan2(_real, TINY, tmp_path / "a", "g", progress=False)
    train_stylegan2(_real, replace(TINY, steps=2), tmp_path / "b", "g", progress=False)
    resumed = train_stylegan2(_real, TINY, tmp_path / "b", "g", progress=False)
    assert resumed["steps_done"] == straight["steps_done"] == 4
    a, _ = load_trained_stylegan2(tmp_path / "a" / "g")
    b, latent_avg = load_trained_stylegan2(tmp_path / "b" / "g")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), name
    assert latent_avg.shape == (8,) and [h["step"] for h in resumed["history"]] == [2, 4]


def test_trained_generator_file_without_its_sidecar_fields_fails_clearly(tmp_path):
    train_stylegan2(_real, replace(TINY, steps=1), tmp_path, "g", progress=False)
    (tmp_path / "g.json").write_text("{}")
    with pytest.raises(ValueError, match="does not describe a StyleGAN2 generator"):
        load_trained_stylegan2(tmp_path / "g")


def test_progressive_training_switches_offsets_on_in_turn():
    s = replace(E4E_SETTINGS, progressive_start=10, progressive_every=5)
    assert [active_offsets(s, step, 4) for step in (0, 9, 10, 14, 15, 20, 100)] == [0, 0, 1, 1, 2, 3, 3]
    codes = torch.arange(2 * 4 * 3, dtype=torch.float).reshape(2, 4, 3)
    out = progressive_codes(codes, 1)
    assert torch.equal(out[:, :2], codes[:, :2]) and torch.equal(out[:, 2], codes[:, 0]) and torch.equal(out[:, 3], codes[:, 0])


def test_delta_norm_sums_the_offsets_lengths():
    codes = torch.zeros(1, 3, 2)
    codes[0, 1] = torch.tensor([3.0, 4.0])
    codes[0, 2] = torch.tensor([0.0, 1.0])
    assert delta_norm(codes).item() == pytest.approx(6.0)


def test_e4e_training_lowers_the_reconstruction_error_and_loads_back(tmp_path):
    generator, _ = tiny_stylegan2(16, channels=16, style_dim=16)
    with torch.no_grad():
        targets = generator([torch.randn(8, 16, generator=torch.Generator().manual_seed(3))]).clamp(-1, 1)
    settings = replace(E4E_SETTINGS, widths=(16, 16, 16, 16), steps=60, batch_size=8, save_every=10, threads=1,
                       progressive_start=20, progressive_every=10)
    l2 = lambda y, x: (y - x).pow(2).flatten(1).mean(1)  # noqa: E731 -- a stand-in for LPIPS
    meta = train_e4e(lambda step: targets, generator, l2, settings, tmp_path, "enc", progress=False)
    first, last = meta["history"][0], meta["history"][-1]
    encoder = load_trained_e4e(tmp_path / "enc", generator)
    _, inverted = encoder.invert(targets)
    assert last["step"] == 60 and (inverted - targets).pow(2).mean().item() < 0.9 * first["l2"]
    other, _ = tiny_stylegan2(32, channels=16, style_dim=16)
    with pytest.raises(ValueError, match="pass the generator it was trained for"):
        load_trained_e4e(tmp_path / "enc", other)


def test_e4e_training_resumes_to_the_weights_of_an_unstopped_run(tmp_path):
    from safetensors.torch import load_file

    generator, _ = tiny_stylegan2(32, channels=16, style_dim=16)
    targets = torch.tanh(torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(5)))
    settings = replace(E4E_SETTINGS, widths=(16, 16, 16, 16), steps=4, batch_size=4, save_every=2, threads=1,
                       progressive_start=2, progressive_every=1)
    l2 = lambda y, x: (y - x).pow(2).flatten(1).mean(1)  # noqa: E731 -- a stand-in for LPIPS
    train_e4e(lambda step: targets, generator, l2, settings, tmp_path / "a", "enc", progress=False)

    def stopping(step):
        if step == 3:
            raise KeyboardInterrupt
        return targets

    with pytest.raises(KeyboardInterrupt):
        train_e4e(stopping, generator, l2, settings, tmp_path / "b", "enc", progress=False)
    assert (tmp_path / "b" / "enc.resume.pt").is_file()
    meta = train_e4e(lambda step: targets, generator, l2, settings, tmp_path / "b", "enc", progress=False)
    a, b = load_file(tmp_path / "a" / "enc.safetensors"), load_file(tmp_path / "b" / "enc.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a) and [h["step"] for h in meta["history"]] == [2, 4]
    assert not (tmp_path / "b" / "enc.resume.pt").exists()
