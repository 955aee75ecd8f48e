"""The notebooks' step-by-step cells (dclip.studies.walkthrough) show what the method computes: eq. 9's terms, a
fine-tune's loss per update and its x̂0 along the chain, latent optimisation's steps, the projection's rounds and
the γ(t) schedule the mix applies."""
import math

import pytest
import torch

from dclip.method.attributes import Attribute
from dclip.studies import walkthrough


def test_an_unchanged_image_has_no_direction(quick_context):
    x0 = quick_context.world.images("celeba_hq", 2)
    terms = walkthrough.directional_terms(quick_context.clip, x0, x0.clone(), "face", "angry face")
    # ΔI = 0: its cosine with ΔT is 0, so L_direction = 1 and the CLIP term of eq. 10 is -log(1/2)
    assert terms["|ΔI|"] == 0 and terms["L_direction"] == pytest.approx(1.0, abs=1e-6)
    assert terms["CLIP term"] == pytest.approx(math.log(2), abs=1e-4)


def test_the_finetune_walk_ends_its_chain_on_the_edit(quick_context):
    ctx = quick_context
    attr = Attribute("face", "angry face", 200)
    x0 = ctx.world.images("celeba_hq", 2)
    walk = walkthrough.finetune_walk(ctx, attr, x0, n_show=3)
    assert len(walk.extra["history"]) == ctx.profile.n_iter * ctx.world.n_train_images()
    assert [len(row) for row in walk.grid] == [4, 4]
    # the chain's last x̂0 (t = 0, ᾱ_{-1} = 1) is the generated image: the edit of the first image
    torch.testing.assert_close(walk.grid[1][-1], walk.images["edit"][0].clamp(-1, 1).cpu(), rtol=0, atol=1e-5)
    assert (walk.grid[0][-1] - walk.grid[1][-1]).abs().max() > 0  # the fine-tuned model differs from the original


def test_the_latent_walk_takes_the_profiles_steps(quick_context):
    ctx = quick_context
    walk = walkthrough.latent_walk(ctx, Attribute("face", "angry face", 200), ctx.world.images("celeba_hq", 1),
                                   n_show=2)
    assert [r["i"] for r in walk.extra["history"]] == list(range(ctx.profile.latent_opt_iterations))
    assert len(walk.grid[0]) == 1 + 2 and walk.images["edit"].shape == (1, 3, 32, 32)


def test_the_projection_walk_shows_each_round_of_project_to_domain(quick_context):
    from dclip.method.edit import project_to_domain

    ctx = quick_context
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    walk = walkthrough.projection_walk(ctx, x, 300, rounds=3, steps=2, seed=5)
    assert len(walk.grid[0]) == 1 + 3
    again = project_to_domain(ctx.unet("celeba_hq"), x, 300, repeats=3, steps=2,
                              generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(walk.grid[0][-1], again[0], rtol=0, atol=1e-6)


def test_the_gamma_plot_draws_the_weights_the_mix_applies():
    fig = walkthrough.gamma_plot({300: [1, 0], 0: [1, 3]}, ["curly hair", "makeup"], 401)
    first, second = fig.axes[0].lines
    t = list(first.get_xdata())
    assert first.get_ydata()[t.index(350)] == 1 and second.get_ydata()[t.index(350)] == 0
    assert first.get_ydata()[t.index(100)] == 0.25 and second.get_ydata()[t.index(100)] == 0.75  # normalised
    assert walkthrough.loss_curve({"a": []}) is None


def test_the_step_grid_is_one_inversion_per_s_inv_and_one_generation_per_cell(quick_context):
    from dclip.method.ddim import generate, invert
    from dclip.method.metrics import mae

    ctx, lines = quick_context, []
    x = ctx.world.images("celeba_hq", 2)
    grid = walkthrough.step_grid(ctx, x, 300, [2, 5], progress=lines.append)
    assert [len(r) for r in grid.grid] == [2, 2] and len(lines) == 4
    model = ctx.unet("celeba_hq")
    with torch.no_grad():
        cell = generate(model, invert(model, x[:1], 300, 5), 300, 2)  # row S_inv 5, column S_gen 2
    torch.testing.assert_close(grid.grid[1][0], cell[0].clamp(-1, 1), rtol=0, atol=1e-6)
    assert grid.captions[1][0] == f"S_gen 2: MAE {float(mae(x[:1], cell)):.3f}"


def test_the_line_plots_are_shown_once_not_also_by_pyplot():
    """The loss curve, the γ plot and the recipe plot are ShownFigures outside pyplot's registry: a notebook shows each
    exactly where it displays it, never a second time when the inline backend flushes open pyplot figures."""
    import matplotlib.pyplot as plt

    from dclip.studies.accelerations import speed_quality_plot
    from dclip.studies.plots import ShownFigure

    before = plt.get_fignums()
    figures = [walkthrough.loss_curve({"run": [{"loss": 0.5, "epoch": 0}, {"loss": 0.4, "epoch": 0}]}),
               walkthrough.gamma_plot({300: [1.0, 0.0], 0: [0.5, 0.5]}, ["a", "b"], 400),
               speed_quality_plot({"rows": [{"recipe": "paper", "hit": 0.9, "hit_ci": [0.8, 1.0], "learn_speedup": 1.0,
                                             "apply_speedup": 1.0}]})]
    assert plt.get_fignums() == before
    assert all(isinstance(f, ShownFigure) and f._repr_png_()[:4] == b"\x89PNG" for f in figures)
