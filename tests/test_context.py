"""The notebooks' Context: inputs, lazily loaded models, fine-tuning once, the disk cache, outputs."""
import dataclasses

import pytest
import torch

from dclip.notebook.context import Context
from dclip.data.images import sample_photos, save_image


def test_without_a_folder_the_sample_photos_are_used_with_a_note(quick_context, capsys):
    faces = quick_context.world.images("celeba_hq")
    assert faces.shape == (2, 3, 32, 32)
    torch.testing.assert_close(faces, sample_photos(("grace_hopper", "astronaut"), size=32))
    assert "grace_hopper, astronaut" in capsys.readouterr().out
    other = quick_context.world.images("lsun_church", 1)
    torch.testing.assert_close(other, sample_photos(("chelsea",), size=32))
    assert len(quick_context.notes) == 2


def test_folders_per_domain_and_for_training(quick_profile, tmp_path):
    for i, name in enumerate(["chelsea", "coffee", "astronaut"]):
        save_image(sample_photos((name,), size=32), tmp_path / "test" / f"{i}.png")
    save_image(sample_photos(("grace_hopper",), size=32), tmp_path / "train" / "a.png")
    ctx = Context(quick_profile, image_dirs={"lsun_church": str(tmp_path / "test")},
                  train_dir=str(tmp_path / "train"))
    assert ctx.world.images("lsun_church").shape[0] == 2  # the profile's n_test
    assert ctx.world.images("lsun_church", 3).shape[0] == 3
    assert ctx.world.train_images("celeba_hq").shape[0] == 1
    assert not ctx.notes


def test_missing_folder_is_a_clear_error(quick_profile):
    ctx = Context(quick_profile, image_dir="/no/such/folder")
    with pytest.raises(FileNotFoundError, match="image_dir"):
        ctx.world.images()


def test_models_are_loaded_once_and_match_the_profile(quick_context):
    assert quick_context.unet("celeba_hq") is quick_context.unet("lsun_church")  # both 'tiny'
    assert quick_context.clip is quick_context.clip
    assert quick_context.clip.name.startswith("tiny-clip")
    assert not any(p.requires_grad for p in quick_context.face_model.parameters())


def test_finetune_config_follows_the_profile_and_attribute(quick_context):
    config = quick_context.world.finetune_config("makeup")
    p = quick_context.profile
    assert (config.t0, config.n_gen, config.lr, config.n_iter) == (301, p.n_gen_train, p.lr, p.n_iter)
    assert config.lambda_id == 0.1 and config.lambda_l1 == 0.3  # in-domain face edit (Sec. 4)
    pixar = quick_context.world.finetune_config("pixar", t0=500)
    assert pixar.t0 == 500 and pixar.lambda_id == 0.0


def test_finetune_runs_once_per_attribute_and_t0(quick_context):
    first = quick_context.finetune("pixar")
    assert quick_context.finetune("pixar") is first
    assert quick_context.finetune("pixar", t0=300) is not first
    base = quick_context.unet("celeba_hq")
    assert any(not torch.equal(a, b) for a, b in zip(first.parameters(), base.parameters()))


def test_disk_cache_reuses_a_finetuned_model(quick_profile, tmp_path, monkeypatch):
    import dclip.notebook.context
    import dclip.method.finetune

    monkeypatch.setenv("DCLIP_CACHE", str(tmp_path / "dclip-cache"))
    profile = dataclasses.replace(quick_profile, disk_cache=True)
    first = Context(profile).finetune("gogh")
    assert len(list((tmp_path / "dclip-cache" / "finetuned").glob("*.safetensors"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model should have been loaded")

    monkeypatch.setattr(dclip.method.finetune, "finetune", no_training)
    again = Context(profile).finetune("gogh")
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters()))


def test_a_stopped_finetune_is_neither_remembered_nor_written_to_the_disk_cache(quick_profile, tmp_path, monkeypatch):
    monkeypatch.setenv("DCLIP_CACHE", str(tmp_path / "dclip-cache"))
    ctx = Context(dataclasses.replace(quick_profile, disk_cache=True, n_iter=3))  # 2 images x 3 passes: 6 updates
    rows = []
    stopped = ctx.finetune_result("gogh", callback=rows.append, stop=lambda: len(rows) >= 2)
    assert stopped.stopped and len(stopped.history) == 2 and len(rows) == 2
    assert not any(p.requires_grad for p in stopped.model.parameters())
    assert not (tmp_path / "dclip-cache" / "finetuned").exists() or \
        not list((tmp_path / "dclip-cache" / "finetuned").glob("*.safetensors"))
    rows.clear()
    full = ctx.finetune_result("gogh", callback=rows.append)  # asked again: trained again, from the start
    assert not full.stopped and len(rows) == 6 and len(full.history) == 6
    assert ctx.finetune("gogh") is full.model  # the finished one is the session's
    assert len(list((tmp_path / "dclip-cache" / "finetuned").glob("*.safetensors"))) == 1
    assert any(not torch.equal(a, b) for a, b in zip(stopped.model.parameters(), full.model.parameters()))


def test_paper_profile_without_a_gpu_says_what_to_do(monkeypatch):
    from dclip.notebook.profiles import get_profile

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("DCLIP_DEVICE", raising=False)
    with pytest.raises(RuntimeError, match="smoke") as err:
        Context(get_profile("paper"))
    assert "device = 'cpu'" in str(err.value) and "DCLIP_DEVICE=cpu" in str(err.value)


def test_paper_profile_runs_on_the_cpu_when_asked(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("DCLIP_DEVICE", raising=False)
    ctx = Context.create("paper", device="cpu", n_images=1, n_steps=2, gan_steps=3, output_dir=str(tmp_path))
    assert ctx.device == torch.device("cpu") and ctx.profile.name == "paper" and ctx.profile.n_test == 1
    assert ctx.profile.image_size == 256 and ctx.profile.clip == "ViT-B-16-quickgelu"
    s = ctx.gan_settings
    assert (s.projection_steps, s.styleclip_steps, s.nada_iterations) == (3, 3, 3)
    monkeypatch.setenv("DCLIP_DEVICE", "cpu")
    assert Context.create("paper", output_dir=str(tmp_path)).device == torch.device("cpu")


def test_expected_time_is_printed_before_long_work_on_the_cpu(quick_profile, tmp_path):
    import dataclasses

    ctx = Context(dataclasses.replace(quick_profile, n_train=50, n_iter=1), output_dir=str(tmp_path))
    from dclip.notebook.costs import expected_time

    text = expected_time(ctx.profile, ctx.unet("celeba_hq"), ctx.device, ctx.world.n_train_images("celeba_hq"))
    assert text.startswith("expected time on cpu: one 32 px UNet evaluation takes") and "per fine-tune" in text
    assert "(2 image(s)," in text  # the training images there are (two sample portraits), not n_train


def test_results_are_written_to_the_profiles_folder(quick_context, capsys):
    from dclip.studies.plots import image_grid

    quick_context.outputs.save_table([{"a": 1.0}], "nb")
    quick_context.outputs.save_figure(image_grid([[torch.zeros(3, 4, 4)]]), "nb")
    assert quick_context.outputs.folder.name == "smoke"
    assert sorted(p.name for p in quick_context.outputs.folder.iterdir()) == ["nb.csv", "nb.json", "nb.png"]
    assert "wrote nb.png" in capsys.readouterr().out
    assert "profile smoke" in quick_context.profile.describe()


def test_paper_style_alignment_of_the_sample_portraits(quick_profile):
    ctx = Context(dataclasses.replace(quick_profile, align_faces=True))
    aligned = ctx.world.images("celeba_hq")
    assert aligned.shape == (2, 3, 32, 32)
    assert not torch.allclose(aligned, sample_photos(("grace_hopper", "astronaut"), size=32))
    torch.testing.assert_close(ctx.world.images("lsun_church", 1), sample_photos(("chelsea",), size=32))  # faces only


def test_generator_is_seeded_and_on_the_contexts_device(quick_context):
    a, b = quick_context.world.generator(1), quick_context.world.generator(1)
    assert a.device == quick_context.device
    assert torch.equal(torch.randn(3, generator=a), torch.randn(3, generator=b))


def test_gan_models_follow_the_profile(quick_context):
    from dclip.baselines.comparison import GAN_SETTINGS

    models = quick_context.gan_models()
    assert quick_context.gan_models() is models  # loaded once
    assert models["generator"].size == quick_context.profile.image_size  # a tiny random StyleGAN2
    assert models["clips"] == [quick_context.clip] and models["face_model"] is quick_context.face_model
    assert models["latent_avg"].shape == (models["generator"].style_dim,)
    assert models["encoder"].decoder is models["generator"]  # a seeded tiny e4e for the tiny StyleGAN2
    assert models["encoder"](torch.zeros(1, 3, 32, 32)).shape == (1, models["generator"].n_latent,
                                                                  models["generator"].style_dim)
    assert quick_context.world.identity_label(quick_context.face_model) == "facenet VGGFace2 (random)"
    x = torch.zeros(1, 3, 32, 32)
    assert models["perceptual"](x, x).shape == (1,)
    assert quick_context.gan_settings == GAN_SETTINGS["smoke"]


def test_paper_profile_loads_the_real_gan_models(monkeypatch):
    import dclip.baselines.comparison as gan
    from dclip.notebook.profiles import get_profile

    loaded = []
    monkeypatch.setattr(gan, "load_gan_baselines",
                        lambda device, face_model: loaded.append((device, face_model)) or {"generator": "G"})
    ctx = Context(dataclasses.replace(get_profile("paper"), device="cpu"))
    ctx.face_model = "the context's identity network"  # its cached value; one network for every ID
    assert ctx.gan_models() == {"generator": "G"} and ctx.gan_models() is ctx.gan_models()
    assert loaded == [(torch.device("cpu"), ctx.face_model)] and ctx.gan_settings == gan.GAN_SETTINGS["paper"]
    with pytest.raises(ValueError, match="unknown gan 'big'"):
        Context(dataclasses.replace(get_profile("smoke"), gan="big")).gan_models()


def test_gan_baselines_run_once_per_faces_prompts_and_settings(quick_context, monkeypatch):
    import dclip.baselines.comparison as gan

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


# --- work done once per session -------------------------------------------------------------------

def test_images_are_read_once_and_each_call_gets_a_copy(quick_context, monkeypatch):
    import dclip.data.images

    expected, loads = sample_photos(("grace_hopper", "astronaut"), size=32), []
    real = dclip.data.images.sample_photo
    monkeypatch.setattr(dclip.data.images, "sample_photo", lambda name: loads.append(name) or real(name))
    first = quick_context.world.images("celeba_hq")
    first.add_(1.0)  # a caller's in-place change stays its own
    again, train = quick_context.world.images("celeba_hq"), quick_context.world.train_images("celeba_hq")
    assert loads == ["grace_hopper", "astronaut"]  # n_test == n_train == 2: one read for both
    torch.testing.assert_close(again, expected)
    assert torch.equal(train, again) and quick_context.world.images("celeba_hq", 1).shape[0] == 1
    assert loads == ["grace_hopper", "astronaut", "grace_hopper"]  # another n is another read


def test_training_images_are_counted_without_reading_them(quick_profile, tmp_path, monkeypatch):
    import dclip.data.images

    for i in range(3):
        save_image(sample_photos(("coffee",), size=32), tmp_path / "test" / f"{i}.png")
    monkeypatch.setattr(dclip.data.images, "load_image", lambda *a, **k: pytest.fail("read an image"))
    monkeypatch.setattr(dclip.data.images, "sample_photo", lambda *a, **k: pytest.fail("read a photo"))
    ctx = Context(dataclasses.replace(quick_profile, n_train=5), image_dirs={"lsun_church": str(tmp_path / "test")})
    assert ctx.world.n_train_images("lsun_church") == 3  # no train_dir: the test folder, up to n_train
    assert ctx.world.n_train_images("celeba_hq") == 2 and ctx.world.n_train_images("afhq_dog") == 2  # sample photos
    ctx.world.train_dirs["lsun_church"] = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no image folder"):
        ctx.world.n_train_images("lsun_church")


def test_model_fingerprint_is_computed_once_per_model_object(quick_context, monkeypatch):
    import dclip.method.latents
    from dclip.method.latents import fingerprint

    unet, memo = quick_context.unet("celeba_hq"), quick_context.memo
    expected = fingerprint(unet.state_dict())
    calls = []
    monkeypatch.setattr(dclip.method.latents, "fingerprint", lambda t: calls.append(1) or fingerprint(t))
    assert memo.fingerprint(unet) == memo.fingerprint(unet) == expected
    assert len(calls) == 1
    other = torch.nn.Linear(2, 2)
    assert memo.fingerprint(other) == fingerprint(other.state_dict()) != expected
    memo._fingerprints[id(unet)] = (lambda: None, "stale")  # an id reused by a new object
    assert memo.fingerprint(unet) == expected


def test_disk_cache_keys_hash_the_base_weights_once(quick_profile, tmp_path, monkeypatch):
    import dclip.method.latents
    import dclip.notebook.context
    from dclip.method.finetune import finetuned_cache_path
    from dclip.method.latents import cache_key, fingerprint

    monkeypatch.setenv("DCLIP_CACHE", str(tmp_path / "dclip-cache"))
    ctx = Context(dataclasses.replace(quick_profile, disk_cache=True))
    base, images = ctx.unet("celeba_hq"), ctx.world.train_images("celeba_hq")
    weights = []

    def counted(tensors):
        weights.extend([1] if isinstance(tensors, dict) else [])  # a state dict, not an image batch
        return fingerprint(tensors)

    monkeypatch.setattr(dclip.notebook.context, "fingerprint", counted)
    monkeypatch.setattr(dclip.method.latents, "fingerprint", counted)
    ctx.finetune("makeup")
    ctx.finetune("gray_hair")  # same t0: same training latents
    ctx.finetune("pixar")
    assert len(weights) == 1
    # the files precompute(cache_dir=...) and the earlier Context wrote: still found by later sessions
    cache = tmp_path / "dclip-cache"
    steps = ctx.profile.n_inv_train
    assert sorted(p.name for p in (cache / "latents").iterdir()) == sorted(
        f"latents-{cache_key(base, images, t0, steps)}.pt" for t0 in (301, 601))
    assert finetuned_cache_path(cache, base, images, ctx.world.finetune_config("pixar"), steps).is_file()


def test_latents_are_shared_by_edits_and_fine_tunes(quick_context, monkeypatch):
    import dclip.method.latents
    from dclip.method.ddim import generate, invert
    from dclip.method.edit import edit

    faces, unet, p = quick_context.world.images("celeba_hq"), quick_context.unet("celeba_hq"), quick_context.profile
    computed, real = [], dclip.method.latents.precompute

    def precompute(model, x, t0, steps, **kwargs):
        computed.append((t0, steps))
        return real(model, x, t0, steps, **kwargs)

    monkeypatch.setattr(dclip.method.latents, "precompute", precompute)
    lat = quick_context.latents(faces, 301)
    assert quick_context.latents(faces.clone(), 301) is lat and quick_context.latent(faces, 301) is lat.x_lat
    x_lat = invert(unet, faces, 301, p.n_inv)
    with torch.no_grad():
        x_rec = generate(unet, x_lat, 301, p.n_inv)
    assert torch.equal(lat.x_lat, x_lat) and torch.equal(lat.x_rec, x_rec)  # bit-identical to the plain loops
    assert computed == [(301, p.n_inv)]
    assert p.n_inv_train == p.n_inv  # as at the paper profile: the training latents are the test ones
    makeup = quick_context.finetune("makeup")
    quick_context.finetune("gray_hair")
    quick_context.finetune("tanned")
    assert computed == [(301, p.n_inv), (201, p.n_inv_train)]  # one set of latents for makeup, gray hair
    # an edit from the shared latent is the edit that inverts by itself
    direct = edit(unet, makeup, faces, 301, n_inv=p.n_inv, n_gen=p.n_gen)
    assert torch.equal(quick_context.edit(makeup, faces, 301), direct)
    alone = quick_context.latent(faces, 401)  # inverted alone: no reconstruction computed
    assert torch.equal(alone, invert(unet, faces, 401, p.n_inv)) and len(computed) == 2
    quick_context.latents(faces, 401, steps=2)  # another S_inv is another inversion
    assert computed[-1] == (401, 2)
    assert quick_context.latent(faces, 401) is alone


def test_paper_profile_identity_network_falls_back_to_facenet_with_a_note(no_network, monkeypatch, tmp_path):
    from dclip.models.identity import VGGFACE2_FILE, load_face_model
    from dclip.notebook.profiles import get_profile

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.save(load_face_model(pretrained=False).state_dict(), tmp_path / VGGFACE2_FILE)
    monkeypatch.setenv("DCLIP_WEIGHTS", str(tmp_path))  # facenet's file only, no model_ir_se50.pth
    ctx = Context(dataclasses.replace(get_profile("paper"), device="cpu"), output_dir=str(tmp_path / "figures"))
    assert ctx.world.identity_label(ctx.face_model) == "facenet VGGFace2"
    assert any("not the paper's ArcFace IR-SE50" in note and "model_ir_se50.pth" in note for note in ctx.notes)


def test_latents_and_edits_use_the_engines_one_precision_each(quick_context, monkeypatch):
    """Latents/reconstructions at dclip.runtime.fast.RECONSTRUCTION (fp32), edits at the profile's precision: EDITING
    fixed to fp32 on the CPU for the smoke profile, whose numbers are checked (tests/test_cpu_bf16.py)."""
    import dclip.method.edit as edit_module
    import dclip.method.latents as latents_module
    from dclip.runtime.fast import EDITING, RECONSTRUCTION, fixed_precision

    seen = []

    def spy(real, kind):
        return lambda *a, **k: seen.append((kind, k.get("fast"))) or real(*a, **k)

    monkeypatch.setattr(latents_module, "precompute", spy(latents_module.precompute, "latents"))
    monkeypatch.setattr(edit_module, "edit", spy(edit_module.edit, "edit"))
    x = quick_context.world.images("celeba_hq", 1)
    quick_context.latents(x, 301)
    quick_context.edit(quick_context.unet("celeba_hq"), x, 301)
    assert seen == [("latents", RECONSTRUCTION), ("edit", fixed_precision(EDITING, "fp32"))] and RECONSTRUCTION == "fp32"
