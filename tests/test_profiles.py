"""Run profiles: the paper's settings, the smoke profile's, and what ``auto`` picks."""
import dataclasses

import pytest

from dclip.notebook.profiles import PROFILES, SMOKE_STAMP, get_profile


def test_paper_profile_has_the_papers_settings():
    p = get_profile("paper")
    assert (p.n_inv_train, p.n_gen_train, p.n_inv, p.n_gen) == (40, 6, 40, 40)  # Sec. 4
    assert (p.lr, p.n_train, p.image_size) == (1e-6, 50, 256)
    assert p.clip == "ViT-B-16-quickgelu" and p.clip_pretrained == "openai"
    assert p.face_pretrained and p.lpips_pretrained and p.device == "cuda"
    assert p.unet_for("lsun_church") == "lsun_church" and p.stamp == "" and p.figures_subdir == ""
    assert (p.gan, p.gan_settings) == ("pretrained", "paper")  # FFHQ StyleGAN2, the baselines' own settings


def test_smoke_profile_is_tiny_cpu_and_stamped():
    p = get_profile("smoke")
    assert p.unet_for("celeba_hq") == p.unet_for("lsun_church") == "tiny"
    assert p.clip == "tiny" and not p.face_pretrained and not p.lpips_pretrained
    assert p.device == "cpu" and p.image_size == 32 and p.is_smoke
    assert p.stamp == SMOKE_STAMP and p.figures_subdir == "smoke" and not p.disk_cache
    assert (p.gan, p.gan_settings) == ("tiny", "smoke")


def test_gan_settings_names_exist():
    from dclip.baselines.comparison import GAN_SETTINGS

    assert all(p.gan_settings in GAN_SETTINGS for p in PROFILES.values())


def test_profiles_are_records_of_literals():
    for p in PROFILES.values():
        assert all(isinstance(v, (str, int, float, bool, type(None))) for v in dataclasses.asdict(p).values())


def test_auto_follows_the_environment_variable(monkeypatch, capsys):
    monkeypatch.setenv("DCLIP_PROFILE", "smoke")
    assert get_profile("auto").name == "smoke"
    assert "DCLIP_PROFILE=smoke" in capsys.readouterr().out


def test_auto_without_cuda_explains_the_toy_choice(monkeypatch, capsys):
    import torch

    monkeypatch.delenv("DCLIP_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile("auto").name == "toy"
    out = capsys.readouterr().out
    assert "no CUDA GPU" in out and "toy profile" in out and len(out.strip().splitlines()) == 1


def test_toy_profile_runs_the_trained_miniature_on_the_cpu():
    from dclip.notebook.profiles import TOY_STAMP

    p = get_profile("toy")
    assert p.unet_for("celeba_hq") == "toy" and p.clip == "toy" and p.is_toy and not p.is_smoke
    assert (p.n_inv_train, p.n_gen_train, p.n_inv, p.n_gen) == (40, 6, 40, 40)  # the paper's steps
    assert p.device == "cpu" and p.image_size == 32 and p.stamp == TOY_STAMP and p.figures_subdir == "toy"
    assert (p.gan, p.gan_settings) == ("toy", "toy") and not get_profile("smoke").is_toy  # the shipped toy StyleGAN2
    assert get_profile("toy-check").gan_settings == "toy-check"


def test_auto_with_cuda_is_the_paper_profile(monkeypatch):
    import torch

    monkeypatch.delenv("DCLIP_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU")
    assert get_profile("auto", verbose=False).name == "paper"


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(ValueError, match="'auto', 'paper', 'toy', 'toy-check' or 'smoke'"):
        get_profile("fast")


def test_customise_changes_only_what_is_asked(monkeypatch):
    from dclip.notebook.profiles import customise

    monkeypatch.delenv("DCLIP_DEVICE", raising=False)
    paper = get_profile("paper")
    assert customise(paper) == paper  # "" and 0 keep everything
    quick = customise(paper, device="cpu", n_images=1, n_steps=2, n_train=1, n_train_steps=3, latent_steps=4)
    assert (quick.device, quick.n_test, quick.n_ablation, quick.n_inv, quick.n_gen, quick.n_train) == (
        "cpu", 1, 1, 2, 2, 1)
    assert (quick.n_inv_train, quick.n_gen_train, quick.latent_opt_iterations, quick.project_steps) == (3, 3, 4, 4)
    assert (quick.image_size, quick.clip, quick.lr, quick.n_iter) == (256, paper.clip, paper.lr, paper.n_iter)
    with pytest.raises(ValueError, match=">= 0"):
        customise(paper, n_steps=-1)


def test_device_comes_from_the_parameter_then_the_environment(monkeypatch):
    from dclip.notebook.profiles import customise, resolve_device

    monkeypatch.setenv("DCLIP_DEVICE", "cpu")
    assert customise(get_profile("paper")).device == "cpu"
    assert customise(get_profile("paper"), device="cuda:1").device == "cuda:1"
    monkeypatch.setenv("DCLIP_DEVICE", "auto")
    assert resolve_device("", "cuda") == "cuda" and resolve_device("auto", "cpu") == "cpu"


def test_auto_never_picks_paper_without_cuda_even_with_a_cpu_device(monkeypatch):
    import torch

    monkeypatch.delenv("DCLIP_PROFILE", raising=False)
    monkeypatch.setenv("DCLIP_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile("auto", verbose=False).name == "toy"
