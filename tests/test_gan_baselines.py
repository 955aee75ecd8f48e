"""GAN baselines of the comparison (Fig. 5, Tables 1 and 3): framing, projection, StyleCLIP, StyleGAN-NADA.

Tiny random models only (tiny_stylegan2, tiny_clip, a random-weight face network and LPIPS with a
random backbone); the real-weights paths are checked to fail clearly offline.
"""
import copy
import math

import numpy as np
import pytest
import torch

from dclip.data import faces
from dclip.models import identity
from dclip.models.clip import tiny_clip
from dclip.baselines.comparison import (GAN_SETTINGS, METHODS, BaselineOutput, GanBaselineSettings, load_gan_baselines,
                                 run_gan_baselines)
from dclip.baselines.common import ramped_lr
from dclip.runtime.modules import frozen
from dclip.baselines.framing import frame_photos, resize_faces, to_diffusion_frame
from dclip.baselines.e4e import tiny_e4e
from dclip.baselines.global_directions import channel_directions
from dclip.baselines.projection import ProjectionConfig, noise_regularization, normalize_noise_, project, render
from dclip.data.images import sample_photo, sample_photos, to_pil, to_tensor
from dclip.baselines.nada import NadaConfig, nada_finetune, nada_loss, trainable_modules
from dclip.models.lpips import BACKBONES, load_lpips, perceptual_distance
from dclip.baselines.styleclip import StyleClipConfig, styleclip_edit, styleclip_losses
from dclip.baselines.stylegan2 import tiny_stylegan2
from dclip.models.weights import WeightsNotFoundError


@pytest.fixture(scope="module")
def gan():
    return tiny_stylegan2(32, seed=0)


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


@pytest.fixture(scope="module")
def face_model():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return identity.load_face_model(pretrained=False)


@pytest.fixture(scope="module")
def perceptual():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return perceptual_distance(load_lpips(pretrained=False))


@pytest.fixture(scope="module")
def grace_hopper():
    return sample_photo("grace_hopper")


def _random_w_plus(generator, n, seed):
    """W+ codes with a different mapped z in every entry (off the W manifold's diagonal)."""
    z = torch.randn(n * generator.n_latent, generator.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return generator.mapping(z).reshape(n, generator.n_latent, generator.style_dim)


def _params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ------------------------------------------------------------------------------------------ framing

def _expected_eyes(landmarks, size):
    """Where the FFHQ quad sends the two eye points in a size x size output (pixel indices)."""
    quad = faces.ffhq_quad(landmarks)
    axes = np.stack([quad[3] - quad[0], quad[1] - quad[0]], axis=1)  # columns: x side, y side
    return np.stack([np.linalg.solve(axes, p - quad[0]) * size - 0.5 for p in landmarks[:2]])


def test_alignment_at_generator_size_puts_the_eyes_where_ffhq_does(grace_hopper):
    landmarks = faces.detect_landmarks(grace_hopper)
    aligned = faces.align_face(grace_hopper, 1024, landmarks=landmarks)
    assert aligned.size == (1024, 1024)
    expected = _expected_eyes(landmarks, 1024)
    # FFHQ: eyes level, about a quarter of the side apart, around (384, 480) and (640, 480) at 1024 px
    assert abs(expected[0, 1] - expected[1, 1]) < 8 and 220 < expected[1, 0] - expected[0, 0] < 280
    np.testing.assert_allclose(faces.detect_landmarks(aligned)[:2], expected, atol=12.0)  # 3 px at 256

    # ... and the mapping back to the diffusion model's 256 px frame keeps them there
    x256 = to_diffusion_frame(to_tensor(aligned))
    assert x256.shape == (1, 3, 256, 256)
    np.testing.assert_allclose(faces.detect_landmarks(to_pil(x256)[0])[:2], _expected_eyes(landmarks, 256),
                               atol=3.0)
    # it is the same crop the diffusion side gets from aligning at 256 px directly
    direct = to_tensor(faces.align_face(grace_hopper, 256, landmarks=landmarks))
    assert (direct - x256).abs().mean() < 0.03


def test_frame_photos_takes_aligned_tensors_or_photos():
    faces_256 = sample_photos(("grace_hopper",), size=256)
    at_gen, at_256 = frame_photos(faces_256, 64)
    assert at_256 is faces_256 and at_gen.shape == (1, 3, 64, 64)
    torch.testing.assert_close(at_gen, torch.nn.functional.interpolate(faces_256, size=64, mode="area"))
    up = resize_faces(at_gen, 256)
    assert up.shape == (1, 3, 256, 256) and up.abs().max() <= 1
    with pytest.raises(TypeError, match="PIL"):
        frame_photos(["not a photo"], 64)
    with pytest.raises(ValueError, match="square"):
        resize_faces(torch.zeros(1, 3, 32, 16), 8)


# ------------------------------------------------------------------------------------------ projection

def test_lr_ramp_matches_the_projector_schedule():
    assert ramped_lr(0.0, 0.1) == 0.0
    assert ramped_lr(0.025, 0.1) == pytest.approx(0.05)    # half-way through the warm-up
    assert ramped_lr(0.5, 0.1) == pytest.approx(0.1)
    assert ramped_lr(0.875, 0.1) == pytest.approx(0.05)    # half-way through the cosine decay
    assert ramped_lr(0.99, 0.1) == pytest.approx(0.1 * (0.5 - 0.5 * math.cos(0.04 * math.pi)))


def test_noise_regularization_per_image():
    g = torch.Generator().manual_seed(0)
    noises = [torch.randn(2, 1, r, r, generator=g) for r in (4, 8, 16)]
    per_image = noise_regularization(noises)
    assert per_image.shape == (2,)
    # image 0 alone, written out: shifted products at 16, 8 (after 2x2 means) and the 4 and 8 px maps
    reference = 0.0
    for noise in noises:
        n = noise[:1]
        while True:
            reference += (n * n.roll(1, 3)).mean() ** 2 + (n * n.roll(1, 2)).mean() ** 2
            if n.shape[-1] <= 8:
                break
            n = torch.nn.functional.avg_pool2d(n, 2)
    torch.testing.assert_close(per_image[0], reference)
    normalize_noise_(noises)
    assert noises[2][1].mean().abs() < 1e-6 and noises[2][1].std().item() == pytest.approx(1.0)
    smooth = [torch.ones(1, 1, 8, 8)]  # perfectly correlated noise is penalised
    assert noise_regularization(smooth).item() == pytest.approx(2.0)


def test_projection_reconstructs_generator_output_better_than_the_mean(gan, perceptual):
    generator, latent_avg = gan
    before = _params(generator)
    with torch.no_grad():
        target = render(generator, _random_w_plus(generator, 2, seed=5))
        mean_image = render(generator, latent_avg.reshape(1, 1, -1).expand(2, generator.n_latent, -1))
    result = project(generator, target, perceptual=perceptual, config=ProjectionConfig(steps=40),
                     latent_avg=latent_avg)
    assert result.w_plus.shape == (2, generator.n_latent, generator.style_dim)
    assert len(result.noise) == generator.num_layers and result.noise[-1].shape == (2, 1, 32, 32)
    assert len(result.history) == 40 and result.history[-1] < 0.01 * result.history[0]
    with torch.no_grad():
        recon = render(generator, result.w_plus, result.noise)
    err, err_mean = [(x - target).pow(2).flatten(1).mean(1) for x in (recon, mean_image)]
    assert (err < 0.25 * err_mean).all(), (err, err_mean)
    # the generator is untouched: same weights, no gradients left behind, flags restored
    assert all(torch.equal(v, generator.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None and p.requires_grad for p in generator.parameters())


def test_projection_without_lpips_needs_no_perceptual_model(gan):
    generator, latent_avg = gan
    with torch.no_grad():
        target = render(generator, _random_w_plus(generator, 1, seed=7))
    seen = []
    result = project(generator, resize_faces(target, 64), perceptual=None,
                     config=ProjectionConfig(steps=10, lpips=0.0, n_mean_latent=256), callback=seen.append)
    assert result.history[-1] < result.history[0]
    # the engine's callback shape: the step index and what the step made
    assert [s["i"] for s in seen] == list(range(10)) and [s["loss"] for s in seen] == result.history
    assert seen[-1]["w_plus"].shape == result.w_plus.shape
    with pytest.raises(ValueError, match="perceptual"):
        project(generator, target, perceptual=None, config=ProjectionConfig(steps=1))


# ------------------------------------------------------------------------------------------ StyleCLIP

def test_styleclip_lowers_its_clip_loss(gan, clip):
    generator, _ = gan
    w_source = _random_w_plus(generator, 2, seed=3)
    config = StyleClipConfig(steps=12, lambda_id=0.0)
    result = styleclip_edit(generator, w_source, "a person with purple hair", clip=clip, config=config)
    assert result.w_plus.shape == w_source.shape and not result.w_plus.requires_grad
    with torch.no_grad():
        source_image = render(generator, w_source)
        start = styleclip_losses(generator, w_source, w_source, source_image, "a person with purple hair",
                                 clip=clip, config=config)
        end = styleclip_losses(generator, result.w_plus, w_source, source_image, "a person with purple hair",
                               clip=clip, config=config)
    assert (end["clip"] < start["clip"]).all(), (start["clip"], end["clip"])
    assert (end["l2"] > 0).all() and start["l2"].abs().max() == 0
    # a batch edits each image as if alone (per-image losses, element-wise Adam)
    alone = styleclip_edit(generator, w_source[1:], "a person with purple hair", clip=clip, config=config)
    torch.testing.assert_close(alone.w_plus, result.w_plus[1:], atol=1e-5, rtol=1e-5)
    assert all(p.grad is None for p in generator.parameters())


def test_styleclip_identity_term(gan, clip, face_model):
    generator, _ = gan
    w_source = _random_w_plus(generator, 1, seed=4)
    result = styleclip_edit(generator, w_source, "a smiling face", clip=clip, face_model=face_model,
                            config=StyleClipConfig(steps=4, lambda_id=0.5))
    assert [h["id"] for h in result.history][0] == pytest.approx(0.0, abs=1e-5)  # starts at the source
    assert all(math.isfinite(h["total"]) for h in result.history)
    with pytest.raises(ValueError, match="face model"):
        styleclip_edit(generator, w_source, "a smiling face", clip=clip, config=StyleClipConfig(steps=1))
    with pytest.raises(ValueError, match="W\\+ codes"):
        styleclip_edit(generator, w_source[:, 0], "x", clip=clip, config=StyleClipConfig(steps=1, lambda_id=0))


# ------------------------------------------------------------------------------------------ StyleGAN-NADA

def _held_out_loss(generator, trained, clips, seed=9, n=8):
    z = torch.randn(n, generator.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        w = generator.mapping(z)
        return nada_loss(render(generator, w), render(trained, w), "photo", "sketch", clips).item()


def test_nada_lowers_its_directional_loss_and_trains_only_synthesis_convs(gan, clip):
    generator, _ = gan
    before = _params(generator)
    rng_state = torch.get_rng_state()
    result = nada_finetune(generator, "photo", "sketch", clips=[clip], config=NadaConfig(iterations=10))
    assert torch.equal(torch.get_rng_state(), rng_state)  # seeded from the config, caller's RNG kept
    trained = result.generator
    assert len(result.history) == 10 and all(math.isfinite(h) for h in result.history)

    # lower than random updates of the same size (an uninformed edit scores about 1 - cos = 1)
    controls = []
    for seed in range(4):
        control = copy.deepcopy(generator)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in trainable_modules(control):
                for p in module.parameters():
                    p.add_(0.0016 * torch.randn(p.shape, generator=g).sign())
        controls.append(_held_out_loss(generator, control, [clip]))
    loss = _held_out_loss(generator, trained, [clip])
    assert loss < 0.85 and loss < np.mean(controls) - 0.1, (loss, controls)

    # frozen: mapping and every ToRGB; trained: constant, conv1, convs; original untouched
    after = trained.state_dict()
    frozen_keys = [k for k in after if k.startswith(("style.", "to_rgb1.", "to_rgbs.", "noises."))]
    assert frozen_keys and all(torch.equal(after[k], before[k]) for k in frozen_keys)
    for prefix in ("input.", "conv1.conv.weight", "convs.0.conv.weight", "convs.3.conv.modulation"):
        assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith(prefix)), prefix
    assert all(torch.equal(v, generator.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in generator.parameters())
    assert not any(p.requires_grad for p in trained.parameters())


def test_nada_averages_several_clip_models(gan, clip):
    generator, _ = gan
    other = tiny_clip(seed=1)
    with torch.no_grad():
        w = generator.mapping(torch.randn(2, generator.style_dim, generator=torch.Generator().manual_seed(1)))
        a, b = render(generator, w), render(generator, w * 1.1)
    single = [nada_loss(a, b, "photo", "sketch", [c]).item() for c in (clip, other)]
    assert nada_loss(a, b, "photo", "sketch", [clip, other]).item() == pytest.approx(np.mean(single), rel=1e-5)
    weighted = nada_loss(a, b, "photo", "sketch", [clip, other], clip_weights=[3.0, 1.0]).item()
    assert weighted == pytest.approx(0.75 * single[0] + 0.25 * single[1], rel=1e-5)
    assert math.isfinite(nada_loss(a, a.clone(), "photo", "sketch", [clip]).item())  # identical renders
    with pytest.raises(ValueError, match="one non-negative weight per CLIP model"):
        nada_loss(a, b, "photo", "sketch", [clip], clip_weights=[1.0, 1.0])
    runs = [nada_finetune(generator, "photo", "sketch", clips=[clip, other], config=NadaConfig(iterations=2))
            for _ in range(2)]
    assert len(runs[0].history) == 2 and runs[0].history == runs[1].history  # seeded, reproducible


# ------------------------------------------------------------------------------------------ entry point

def test_run_gan_baselines_returns_256px_faces_for_every_method(no_network, gan, clip, face_model, perceptual):
    generator, latent_avg = gan
    photos = sample_photos(("grace_hopper", "astronaut"), size=256)
    settings = GanBaselineSettings(projection_steps=5, styleclip_steps=2, nada_iterations=2)
    prompts = [("face", "smiling face"), ("photo", "sketch")]
    encoder = tiny_e4e(generator, seed=0)
    directions = channel_directions(generator, clip, n_images=2, n_statistics=64)
    out = run_gan_baselines(photos, prompts, generator=generator, latent_avg=latent_avg, clips=[clip],
                            encoder=encoder, directions=directions, face_model=face_model, perceptual=perceptual,
                            settings=settings)
    assert tuple(out) == METHODS == ("StyleCLIP", "StyleCLIP (global directions)", "StyleCLIP (optimisation)",
                                     "StyleGAN-NADA")
    assert [r.inversion for r in out.values()] == ["e4e", "e4e", "optimisation (W+)", "optimisation (W+)"]
    assert out["StyleCLIP (global directions)"].inverted is out["StyleCLIP"].inverted  # both start from e4e
    for method, result in out.items():
        assert isinstance(result, BaselineOutput)
        originals, inverted, edited, _ = result
        torch.testing.assert_close(originals, photos)
        assert inverted.shape == (2, 3, 256, 256) and list(edited) == prompts
        for x in (inverted, *edited.values()):
            assert x.shape == (2, 3, 256, 256) and x.device.type == "cpu" and x.abs().max() <= 1
    assert out["StyleCLIP (optimisation)"].inverted is out["StyleGAN-NADA"].inverted  # one shared projection
    # StyleCLIP's start is the e4e code rendered with the generator's stored noise, as pSp decodes
    _, decoded = encoder.invert(resize_faces(photos, 32))
    torch.testing.assert_close(out["StyleCLIP"].inverted, to_diffusion_frame(decoded).clamp(-1, 1))
    without_encoder = run_gan_baselines(photos, prompts[:1], generator=generator, latent_avg=latent_avg, clips=[clip],
                                        face_model=face_model, perceptual=perceptual, settings=settings)
    assert tuple(without_encoder) == ("StyleCLIP (optimisation)", "StyleGAN-NADA")
    with pytest.raises(ValueError, match="source, target"):
        run_gan_baselines(photos, [("face",)], generator=generator, clips=[clip])
    with pytest.raises(ValueError, match="face_model"):  # before any optimisation starts
        run_gan_baselines(photos, prompts, generator=generator, clips=[clip], settings=settings)


def test_settings_instances():
    paper, smoke = GAN_SETTINGS["paper"], GAN_SETTINGS["smoke"]
    assert paper == GanBaselineSettings.paper() and smoke == GanBaselineSettings.smoke()
    assert (paper.projection().steps, paper.styleclip().steps, paper.nada().iterations) == (1000, 300, 301)
    assert (paper.lambda_l2, paper.lambda_id, paper.nada_lr, paper.nada_batch) == (0.008, 0.005, 0.002, 2)
    assert smoke.projection_steps < 50 and smoke.styleclip_steps < 50 and smoke.nada_iterations < 50


def test_frozen_restores_flags(gan):
    generator, _ = gan
    generator.style.requires_grad_(False)
    try:
        with frozen(generator):
            assert not any(p.requires_grad for p in generator.parameters())
        assert not any(p.requires_grad for p in generator.style.parameters())
        assert all(p.requires_grad for p in generator.convs.parameters())
    finally:
        generator.style.requires_grad_(True)


# ------------------------------------------------------------------------------------------ real weights

@pytest.fixture
def offline(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    (tmp_path / "weights").mkdir()
    monkeypatch.setenv("DCLIP_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no torch hub checkpoint cache either
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path


def test_lpips_backbone_offline_fails_naming_the_file(no_network, offline):
    with pytest.raises(WeightsNotFoundError, match="alexnet-owt-7be5be79.pth"):
        load_lpips()
    with pytest.raises(WeightsNotFoundError, match="vgg16-397923af.pth"):
        load_lpips("vgg")


def test_load_gan_baselines_offline_lists_every_missing_file(no_network, offline):
    with pytest.raises(WeightsNotFoundError) as err:
        load_gan_baselines()
    message = str(err.value)
    # e4e (a manual download) is not among them: without it the e4e row is left out with a note
    assert "e4e_ffhq_encode.pt" not in message
    for name in ("stylegan2-ffhq-config-f.pt", "timm/vit_base_patch32_clip_224.openai",
                 "timm/vit_base_patch16_clip_224.openai", "model_ir_se50.pth", identity.VGGFACE2_FILE,
                 BACKBONES["alex"][0]):
        assert name in message


def test_lpips_backbone_loads_from_the_weights_folder(offline):
    from torchvision.models import alexnet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        features = alexnet().features.state_dict()
    path = offline / "weights" / BACKBONES["alex"][0]
    torch.save({f"features.{k}": v for k, v in features.items()}, path)  # classifier left out: unused
    model = load_lpips()
    torch.testing.assert_close(model.net.slice1.get_submodule("0").weight, features["0.weight"])
    torch.testing.assert_close(model.net.slice5.get_submodule("10").bias, features["10.bias"])
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.zeros(1, 3, 64, 64)
    assert perceptual_distance(model)(x, x).shape == (1,)
    torch.save({"not": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a torchvision alex checkpoint"):
        load_lpips()
