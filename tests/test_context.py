"""The notebooks' Context: inputs, lazily loaded models, fine-tuning once, the disk cache, outputs."""
import dataclasses

import pytest
import torch

from dclip.context import Context
from dclip.images import sample_photos, save_image


def test_without_a_folder_the_sample_photos_are_used_with_a_note(quick_context, capsys):
    faces = quick_context.images("celeba_hq")
    assert faces.shape == (2, 3, 32, 32)
    torch.testing.assert_close(faces, sample_photos(("grace_hopper", "astronaut"), size=32))
    assert "grace_hopper, astronaut" in capsys.readouterr().out
    other = quick_context.images("lsun_church", 1)
    torch.testing.assert_close(other, sample_photos(("chelsea",), size=32))
    assert len(quick_context.notes) == 2


def test_folders_per_domain_and_for_training(quick_profile, tmp_path):
    for i, name in enumerate(["chelsea", "coffee", "astronaut"]):
        save_image(sample_photos((name,), size=32), tmp_path / "test" / f"{i}.png")
    save_image(sample_photos(("grace_hopper",), size=32), tmp_path / "train" / "a.png")
    ctx = Context(quick_profile, image_dirs={"lsun_church": str(tmp_path / "test")},
                  train_dir=str(tmp_path / "train"))
    assert ctx.images("lsun_church").shape[0] == 2  # the profile's n_test
    assert ctx.images("lsun_church", 3).shape[0] == 3
    assert ctx.train_images("celeba_hq").shape[0] == 1
    assert not ctx.notes


def test_missing_folder_is_a_clear_error(quick_profile):
    ctx = Context(quick_profile, image_dir="/no/such/folder")
    with pytest.raises(FileNotFoundError, match="image_dir"):
        ctx.images()


def test_models_are_loaded_once_and_match_the_profile(quick_context):
    assert quick_context.unet("celeba_hq") is quick_context.unet("lsun_church")  # both 'tiny'
    assert quick_context.clip is quick_context.clip
    assert quick_context.clip.name.startswith("tiny-clip")
    assert not any(p.requires_grad for p in quick_context.face_model.parameters())


def test_finetune_config_follows_the_profile_and_attribute(quick_context):
    config = quick_context.finetune_config("makeup")
    p = quick_context.profile
    assert (config.t0, config.n_gen, config.lr, config.n_iter) == (301, p.n_gen_train, p.lr, p.n_iter)
    assert config.lambda_id == 0.1 and config.lambda_l1 == 0.3  # in-domain face edit (Sec. 4)
    pixar = quick_context.finetune_config("pixar", t0=500)
    assert pixar.t0 == 500 and pixar.lambda_id == 0.0


def test_finetune_runs_once_per_attribute_and_t0(quick_context):
    first = quick_context.finetune("pixar")
    assert quick_context.finetune("pixar") is first
    assert quick_context.finetune("pixar", t0=300) is not first
    base = quick_context.unet("celeba_hq")
    assert any(not torch.equal(a, b) for a, b in zip(first.parameters(), base.parameters()))


def test_disk_cache_reuses_a_finetuned_model(quick_profile, tmp_path, monkeypatch):
    import dclip.context
    import dclip.finetune

    monkeypatch.setattr(dclip.context, "repo_root", lambda: tmp_path)
    profile = dataclasses.replace(quick_profile, disk_cache=True)
    first = Context(profile).finetune("gogh")
    assert len(list((tmp_path / ".cache" / "dclip" / "finetuned").glob("*.safetensors"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model should have been loaded")

    monkeypatch.setattr(dclip.finetune, "finetune", no_training)
    again = Context(profile).finetune("gogh")
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters()))


def test_paper_profile_without_a_gpu_says_what_to_do(monkeypatch):
    from dclip.profiles import get_profile

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="smoke"):
        Context(get_profile("paper"))


def test_results_are_written_to_the_profiles_folder(quick_context, capsys):
    from dclip.plots import image_grid

    quick_context.save_table([{"a": 1.0}], "nb")
    quick_context.save_figure(image_grid([[torch.zeros(3, 4, 4)]]), "nb")
    assert quick_context.figures.name == "smoke"
    assert sorted(p.name for p in quick_context.figures.iterdir()) == ["nb.csv", "nb.json", "nb.png"]
    assert "wrote nb.png" in capsys.readouterr().out
    assert "profile smoke" in quick_context.describe()


def test_paper_style_alignment_of_the_sample_portraits(quick_profile):
    ctx = Context(dataclasses.replace(quick_profile, align_faces=True))
    aligned = ctx.images("celeba_hq")
    assert aligned.shape == (2, 3, 32, 32)
    assert not torch.allclose(aligned, sample_photos(("grace_hopper", "astronaut"), size=32))
    torch.testing.assert_close(ctx.images("lsun_church", 1), sample_photos(("chelsea",), size=32))  # faces only


def test_generator_is_seeded_and_on_the_contexts_device(quick_context):
    a, b = quick_context.generator(1), quick_context.generator(1)
    assert a.device == quick_context.device
    assert torch.equal(torch.randn(3, generator=a), torch.randn(3, generator=b))


def test_gan_models_follow_the_profile(quick_context):
    from dclip.gan_baselines import GAN_SETTINGS

    models = quick_context.gan_models()
    assert quick_context.gan_models() is models  # loaded once
    assert models["generator"].size == quick_context.profile.image_size  # a tiny random StyleGAN2
    assert models["clips"] == [quick_context.clip] and models["face_model"] is quick_context.face_model
    assert models["latent_avg"].shape == (models["generator"].style_dim,)
    x = torch.zeros(1, 3, 32, 32)
    assert models["perceptual"](x, x).shape == (1,)
    assert quick_context.gan_settings == GAN_SETTINGS["smoke"]


def test_paper_profile_loads_the_real_gan_models(monkeypatch):
    import dclip.gan_baselines as gan
    from dclip.profiles import get_profile

    loaded = []
    monkeypatch.setattr(gan, "load_gan_baselines", lambda device: loaded.append(device) or {"generator": "G"})
    ctx = Context(dataclasses.replace(get_profile("paper"), device="cpu"))
    assert ctx.gan_models() == {"generator": "G"} and ctx.gan_models() is ctx.gan_models()
    assert loaded == [torch.device("cpu")] and ctx.gan_settings == gan.GAN_SETTINGS["paper"]
    with pytest.raises(ValueError, match="unknown gan 'big'"):
        Context(dataclasses.replace(get_profile("smoke"), gan="big")).gan_models()


def test_gan_baselines_run_once_per_faces_prompts_and_settings(quick_context, monkeypatch):
    import dclip.gan_baselines as gan

    runs = []
    monkeypatch.setattr(quick_context, "gan_models", lambda: {"generator": "G"})
    monkeypatch.setattr(gan, "run_gan_baselines",
                        lambda faces, prompts, **kwargs: runs.append((prompts, kwargs)) or {"run": len(runs)})
    faces = torch.zeros(2, 3, 32, 32)
    first = quick_context.gan_baselines(faces, [("face", "tanned face")])
    assert quick_context.gan_baselines(faces.clone(), [["face", "tanned face"]]) is first  # same values
    assert runs == [((("face", "tanned face"),), {"settings": quick_context.gan_settings, "generator": "G"})]
    quick_context.gan_baselines(faces + 0.5, [("face", "tanned face")])
    quick_context.gan_baselines(faces, [("face", "tanned face"), ("Human", "Neanderthal")])
    quick_context.gan_settings = gan.GanBaselineSettings(projection_steps=1)
    quick_context.gan_baselines(faces, [("face", "tanned face")])
    assert len(runs) == 4
