"""The DiffusionCLIP engine on tiny models: latents and their cache, fine-tuning, saving, editing."""
import dataclasses

import pytest
import torch

import dclip
from dclip.models.clip import tiny_clip
from dclip.method.losses import directional_clip_loss, text_direction
from dclip.method.edit import edit, latent_optimisation, project_to_domain, unseen_to_unseen
from dclip.runtime.fast import MODES
from dclip.method.finetune import FinetuneConfig, finetune, load_finetuned, recipe, save_finetuned
from dclip.data.images import sample_photos, stroke_paint
from dclip.method.latents import cache_key, precompute

T0, N_INV, N_GEN = 200, 8, 3


@pytest.fixture(scope="module")
def unet():
    return dclip.load_unet("tiny")


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


@pytest.fixture(scope="module")
def images():
    return sample_photos(("grace_hopper", "astronaut"), size=32)


@pytest.fixture(scope="module")
def latents(unet, images):
    return precompute(unet, images, T0, N_INV)


def config(**kw):
    base = dict(source="photo", target="sketch", t0=T0, n_gen=N_GEN, lr=2e-4, lr_step=1000, n_iter=3, seed=0)
    return FinetuneConfig(**{**base, **kw})


def mean_direction_loss(model, latents, clip, source="photo", target="sketch"):
    with torch.no_grad():
        x = dclip.generate(model, latents.x_lat, T0, N_GEN)
        return directional_clip_loss(clip, latents.x0, x, text_direction(clip, source, target)).mean().item()


def params_changed(a, b):
    return any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_precompute_reconstructs_and_caches(unet, images, tmp_path):
    first = precompute(unet, images, T0, N_INV, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("latents-*.pt"))) == 1
    again = precompute(unet, images, T0, N_INV, cache_dir=tmp_path)
    torch.testing.assert_close(again.x_lat, first.x_lat, rtol=0, atol=0)
    assert (first.x_rec - images).abs().mean() < (first.x_lat - images).abs().mean()


def test_cache_key_depends_on_weights_images_t0_and_steps(unet, images):
    key = cache_key(unet, images, T0, N_INV)
    other = dclip.load_unet("tiny")
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    assert cache_key(other, images, T0, N_INV) != key
    assert cache_key(unet, images.flip(0), T0, N_INV) != key
    assert cache_key(unet, images, T0 + 1, N_INV) != key
    assert cache_key(unet, images, T0, N_INV + 1) != key
    assert cache_key(unet, images, T0, N_INV, exact=True) != key
    assert cache_key(dclip.load_unet("tiny"), images.clone(), T0, N_INV) == key


def test_finetuning_lowers_the_directional_loss(unet, latents, clip):
    before = mean_direction_loss(unet, latents, clip)
    result = finetune(unet, latents, clip, config(lambda_l1=0.0))
    after = mean_direction_loss(result.model, latents, clip)
    assert after < before - 0.01, (before, after)
    assert len(result.history) == 3 * 2 and result.history[-1]["epoch"] == 2


def test_original_model_is_never_modified(unet, latents, clip):
    snapshot = {k: v.clone() for k, v in unet.state_dict().items()}
    finetune(unet, latents, clip, config(n_iter=1))
    assert all(torch.equal(v, unet.state_dict()[k]) for k, v in snapshot.items())


@pytest.mark.parametrize("mode", ["full", "efficient"])
def test_both_modes_update_the_unet(unet, latents, clip, mode):
    result = finetune(unet, latents, clip, config(n_iter=1, mode=mode))
    assert params_changed(result.model, unet)


def test_gradient_checkpointing_gives_the_same_update(unet, latents, clip):
    plain = finetune(unet, latents, clip, config(n_iter=1))
    ckpt = finetune(unet, latents, clip, config(n_iter=1), fast=MODES["fp32"].replace(grad_checkpointing=True))
    for p, q in zip(plain.model.parameters(), ckpt.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_identity_loss_carries_gradient_in_efficient_mode(unet, latents, clip):
    from dclip.models.identity import load_face_model

    face = load_face_model(pretrained=False)
    only_id = config(n_iter=1, mode="efficient", lambda_clip=0.0, lambda_l1=0.0, lambda_id=1.0, lr=1e-3)
    result = finetune(unet, latents, clip, only_id, face_model=face)
    assert params_changed(result.model, unet), "the identity term alone moved no weight"
    assert all("id" in row for row in result.history)


def test_identity_weight_without_face_model_is_a_clear_error(unet, latents, clip):
    with pytest.raises(ValueError, match="face model"):
        finetune(unet, latents, clip, config(lambda_id=0.1))


def test_changed_prompt_changes_the_training(unet, latents, clip):
    a = finetune(unet, latents, clip, config(n_iter=1))
    b = finetune(unet, latents, clip, config(n_iter=1, target="angry face"))
    assert params_changed(a.model, b.model)


def test_finetuning_is_deterministic_on_cpu(unet, latents, clip):
    a = finetune(unet, latents, clip, config(n_iter=1))
    b = finetune(unet, latents, clip, config(n_iter=1))
    assert not params_changed(a.model, b.model)
    assert a.losses() == b.losses()


def test_lr_schedule_follows_the_recipe(unet, latents, clip):
    result = finetune(unet, latents, clip, config(lr=1e-5, lr_gamma=2.0, lr_step=2, n_iter=2))
    assert [row["lr"] for row in result.history] == pytest.approx([1e-5, 1e-5, 2e-5, 2e-5])
    readme = recipe("authors_readme", "face", "angry face")
    assert (readme.lr, readme.lr_gamma, readme.lr_step_unit, readme.lambda_clip, readme.n_iter) == (8e-6, 1.3, "epoch", 3.0, 5)


def test_latents_at_another_t0_are_refused(unet, latents, clip):
    with pytest.raises(ValueError, match="t0"):
        finetune(unet, latents, clip, config(t0=T0 + 100))


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="mode"):
        config(mode="fast")
    with pytest.raises(ValueError, match="empty"):
        config(target=" ")


def test_save_then_load_reproduces_outputs_exactly(unet, latents, clip, tmp_path):
    result = finetune(unet, latents, clip, config(n_iter=1))
    path = save_finetuned(result, tmp_path / "sketch", base="tiny")
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    loaded = load_finetuned(path, base=unet)
    with torch.no_grad():
        torch.testing.assert_close(dclip.generate(loaded, latents.x_lat, T0, N_GEN),
                                   dclip.generate(result.model, latents.x_lat, T0, N_GEN), rtol=0, atol=0)


def test_loading_onto_another_architecture_is_an_error(unet, latents, clip, tmp_path):
    from diffusers import UNet2DModel

    path = save_finetuned(finetune(unet, latents, clip, config(n_iter=1)), tmp_path / "m", base="tiny")
    other = UNet2DModel(sample_size=32, block_out_channels=(32, 64), down_block_types=("DownBlock2D",) * 2,
                        up_block_types=("UpBlock2D",) * 2, layers_per_block=1)
    with pytest.raises(ValueError, match="different architecture"):
        load_finetuned(path, base=other)


def test_edit_with_ratio_zero_is_the_reconstruction(unet, latents, clip, images):
    tuned = finetune(unet, latents, clip, config(n_iter=1)).model
    x = edit(unet, tuned, images, T0, n_inv=N_INV, n_gen=N_INV, ratio=0.0)
    torch.testing.assert_close(x, latents.x_rec, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(edit(unet, tuned, images, T0, n_inv=N_INV, n_gen=N_INV), latents.x_rec)


def test_project_to_domain_is_seeded_and_bounded(unet, images):
    a = project_to_domain(unet, images, 300, repeats=2, steps=3, generator=torch.Generator().manual_seed(0))
    b = project_to_domain(unet, images, 300, repeats=2, steps=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.abs().max() <= 1


def test_unseen_to_unseen_returns_projection_and_edit(unet, images):
    projected, edited = unseen_to_unseen(unet, unet, images, t0_project=300, repeats=1, project_steps=3, t0=T0,
                                         n_inv=N_INV, n_gen=N_INV, generator=torch.Generator().manual_seed(0))
    assert projected.shape == edited.shape == images.shape


def test_stroke_paint_gives_few_flat_colour_blocks():
    x = sample_photos(("astronaut",), size=64)
    strokes = stroke_paint(x, n_segments=12)
    colours = torch.unique(strokes[0].flatten(1).T.round(decimals=4), dim=0)
    assert strokes.shape == x.shape and 2 <= len(colours) <= 30


def test_latent_optimisation_lowers_its_loss_and_keeps_the_model_frozen(unet, images, clip):
    before = [p.requires_grad for p in unet.parameters()]
    snapshot = next(unet.parameters()).clone()
    x, losses = latent_optimisation(unet, clip, images, "photo", "sketch", T0, n_inv=N_INV, n_gen=N_GEN,
                                    iterations=8, lr=0.05)
    assert losses[-1] < losses[0]
    assert torch.equal(next(unet.parameters()), snapshot)
    assert [p.requires_grad for p in unet.parameters()] == before


def test_efficient_mode_takes_the_loss_on_each_steps_x0_prediction(unet, latents, clip):
    """Efficient mode (supplement B.1): one loss per generation step, on that step's x̂0 (eq. 6).
    With lr = 0 the model stays the original, so each step's terms follow from dclip.generate's
    callback: the history row is their mean over the S_gen steps (the L1 on x_t itself would differ)."""
    from dclip.method.losses import clip_objective

    x0, x_lat = latents.x0[:1], latents.x_lat[:1]
    one = dataclasses.replace(latents, x0=x0, x_lat=x_lat, x_rec=latents.x_rec[:1])
    result = finetune(unet, one, clip, config(mode="efficient", lr=0.0, n_iter=1, lambda_l1=0.3))
    steps = []
    with torch.no_grad():
        dclip.generate(unet, x_lat, T0, N_GEN, callback=steps.append)
    direction = text_direction(clip, "photo", "sketch")
    l1 = [(x0 - s["x0_pred"]).abs().mean().item() for s in steps]
    l_clip = [clip_objective(directional_clip_loss(clip, x0, s["x0_pred"], direction).mean()).item() for s in steps]
    on_xt = sum((x0 - s["x"]).abs().mean().item() for s in steps) / len(steps)
    (row,) = result.history
    assert len(steps) == N_GEN
    assert row["l1"] == pytest.approx(sum(l1) / N_GEN, rel=1e-5) and row["l1"] != pytest.approx(on_xt, rel=1e-3)
    assert row["clip"] == pytest.approx(sum(l_clip) / N_GEN, rel=1e-5)
    assert row["loss"] == pytest.approx(sum(c + 0.3 * d for c, d in zip(l_clip, l1)) / N_GEN, rel=1e-5)


def test_edit_multi_from_a_precomputed_latent_is_the_same_edit(unet, latents, images):
    from dclip.method.edit import edit_multi

    a, b = unet, dclip.load_unet("tiny")
    with torch.no_grad():
        for p in b.parameters():
            p.mul_(1.01)
    gammas = {100: [1, 0], 0: [0.5, 0.5]}
    direct = edit_multi(unet, [a, b], images, T0, gammas, n_inv=N_INV, n_gen=N_GEN)
    from_latent = edit_multi(unet, [a, b], None, T0, gammas, x_lat=latents.x_lat, n_gen=N_GEN)
    torch.testing.assert_close(from_latent, direct, rtol=0, atol=1e-5)


def test_clip_term_takes_the_batch_mean_inside_the_log(unet, latents, clip):
    """Eq. 10 as the original computes it: −log((2 − mean L_dir)/2), not the mean of the logs."""
    from dclip.method.losses import clip_objective
    from dclip.method.finetune import _Objective

    objective = _Objective(clip, config(), None)
    with torch.no_grad():
        x = dclip.generate(unet, latents.x_lat, T0, N_GEN)
        per_image = directional_clip_loss(clip, latents.x0, x, objective.direction)
        row = objective(latents.x0, x)["row"]
    assert float(row["clip"]) == pytest.approx(float(clip_objective(per_image.mean())), rel=1e-6)


def test_the_squared_error_term_is_the_mean_squared_distance_and_stays_out_of_paper_cache_keys(unet, latents, clip):
    """λ_L2 (beyond the paper) adds mean (x0 − x̂)² to eq. 10; with λ_CLIP 0 and λ_L1 0 it is the whole loss. A config
    that leaves it at 0 keeps the cache key it had before the term existed."""
    from dclip.method.finetune import _cache_fields, _Objective

    objective = _Objective(clip, config(lambda_clip=0.0, lambda_l1=0.0, lambda_l2=1.0), None)
    with torch.no_grad():
        x = dclip.generate(unet, latents.x_lat, T0, N_GEN)
        out = objective(latents.x0, x)
    expected = sum(float(((a - b) ** 2).mean()) for a, b in zip(latents.x0, x)) / len(x)
    assert float(out["loss"]) == pytest.approx(expected, rel=1e-5) and float(out["row"]["l2"]) > 0
    assert "lambda_l2" not in _cache_fields(config()) and _cache_fields(config(lambda_l2=1.0))["lambda_l2"] == 1.0


def test_finetune_leaves_the_global_rng_and_returns_a_plain_model(unet, latents, clip):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    result = finetune(unet, latents, clip, config(n_iter=1), fast=MODES["fp32"].replace(grad_checkpointing=True))
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)
    assert not result.model.is_gradient_checkpointing and not result.model.training


def test_finetune_cached_trains_once_then_loads(unet, images, clip, tmp_path, monkeypatch):
    """The fine-tune cache is an engine feature: a second call with the same base, images and settings
    loads the saved model (nothing inverted or trained); other settings train anew."""
    import dclip.method.finetune as ft

    settings = config(n_iter=1)
    first = ft.finetune_cached(unet, images, clip, settings, inversion_steps=N_INV, cache=tmp_path).model
    assert len(list((tmp_path / "finetuned").glob("*.safetensors"))) == 1
    assert len(list((tmp_path / "latents").glob("*.pt"))) == 1
    monkeypatch.setattr(ft, "finetune", lambda *a, **k: pytest.fail("trained again"))
    monkeypatch.setattr("dclip.method.latents.precompute", lambda *a, **k: pytest.fail("inverted again"))
    again = ft.finetune_cached(unet, images, clip, settings, inversion_steps=N_INV, cache=tmp_path)
    assert not params_changed(first, again.model) and again.model is not first and again.history == []
    with pytest.raises(pytest.fail.Exception, match="trained again"):
        ft.finetune_cached(unet, images, clip, config(n_iter=1, lr=1e-4), inversion_steps=N_INV, cache=tmp_path,
                           latents=precompute(unet, images, T0, N_INV))


def test_long_loops_report_one_callback_shape(unet, latents, clip, images):
    """Fine-tuning updates and latent optimisation call back with the step index "i" and what the step made."""
    rows = []
    finetune(unet, latents, clip, config(n_iter=1), callback=rows.append)
    assert [r["i"] for r in rows] == [0, 1] and all({"loss", "clip", "l1", "lr"} <= set(r) for r in rows)
    steps = []
    latent_optimisation(unet, clip, images[:1], "photo", "sketch", T0, n_inv=N_INV, n_gen=N_GEN, iterations=2,
                        callback=steps.append)
    assert [s["i"] for s in steps] == [0, 1] and steps[0]["x_lat"].shape == images[:1].shape
