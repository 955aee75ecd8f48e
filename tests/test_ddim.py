"""DDIM core: the paper's grid, solver accuracy against an exact oracle, diffusers cross-check, errors."""
import pytest
import torch

import dclip
from dclip.method.ddim import (DEFAULT_SCHEDULE, ddim_step, generation_pairs, inversion_pairs, q_sample,
                        timestep_grid)
from dclip.method.mixing import RatioMix, ThresholdMix
from oracle import GaussianOracle


@pytest.fixture(scope="module")
def gaussian_images():
    g = torch.Generator().manual_seed(0)
    x0 = 0.2 + 0.5 * torch.randn(4, 3, 16, 16, generator=g, dtype=torch.float64)
    return x0.clamp(-1, 1)


def round_trip_error(model, x0, t0, steps, **kw):
    latent = dclip.invert(model, x0, t0, steps, **kw)
    return (dclip.generate(model, latent, t0, steps) - x0).abs().mean().item()


def test_grid_is_the_original_integer_grid():
    assert timestep_grid(400, 6) == [0, 80, 160, 240, 320, 400]
    # int() truncation as in the authors' code: 601 * k / 39 is not an integer for most k
    seq = timestep_grid(601, 40)
    assert seq[0] == 0 and seq[-1] == 601 and seq[1] == 15 and len(seq) == 40
    assert inversion_pairs(400, 6)[0] == (0, 80) and len(inversion_pairs(400, 6)) == 5
    gen = generation_pairs(400, 6)
    assert gen[0] == (400, 320) and gen[-1] == (0, -1) and len(gen) == 6


def test_alpha_bar_at_minus_one_is_one():
    assert DEFAULT_SCHEDULE.alpha_bar(-1) == 1.0
    assert DEFAULT_SCHEDULE.alpha_bar(0) == pytest.approx(1 - 1e-4)
    assert DEFAULT_SCHEDULE.alpha_bar(999) == pytest.approx(4.04e-5, rel=1e-2)


def test_round_trip_error_halves_when_steps_double(gaussian_images):
    """Sec. 3.1 / Fig. 8a: near-perfect inversion as S grows; DDIM is a first-order solver."""
    oracle = GaussianOracle(0.2, 0.5)
    errors = {s: round_trip_error(oracle, gaussian_images, 600, s) for s in (40, 80, 160, 320, 400)}
    values = list(errors.values())
    assert all(a > b for a, b in zip(values, values[1:])), errors
    for s in (40, 80, 160):
        assert 1.7 < errors[s] / errors[2 * s] < 2.3, errors
    assert 0.02 < errors[40] < 0.05, errors  # 3.2e-2 measured for this data


def test_exact_inversion_beats_plain_by_100x(gaussian_images):
    oracle = GaussianOracle(0.2, 0.5)
    plain = round_trip_error(oracle, gaussian_images, 600, 40)
    exact = round_trip_error(oracle, gaussian_images, 600, 40, exact=True, iterations=2)
    assert exact * 100 < plain, (plain, exact)
    assert exact < 2e-4, exact  # 6.9e-5 measured


def test_exact_inversion_costs_one_plus_iterations_calls_per_step(gaussian_images):
    oracle = GaussianOracle()
    dclip.invert(oracle, gaussian_images, 300, 10, exact=True, iterations=3)
    assert oracle.calls == 10 * (1 + 3)  # S steps: the (-1 -> 0) pair plus S - 1 grid steps
    oracle.calls = 0
    dclip.invert(oracle, gaussian_images, 300, 10)
    assert oracle.calls == 9


def test_generation_step_matches_diffusers_ddim_scheduler():
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                              beta_schedule="linear", clip_sample=False, set_alpha_to_one=True)
    scheduler.set_timesteps(10)  # steps of 100: 500 -> 400
    g = torch.Generator().manual_seed(1)
    x, eps = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    ours, _ = ddim_step(x, eps, DEFAULT_SCHEDULE.alpha_bar(500), DEFAULT_SCHEDULE.alpha_bar(400))
    theirs = scheduler.step(eps, 500, x, eta=0.0).prev_sample
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_generate_reports_x0_predictions_and_is_differentiable():
    net = torch.nn.Conv2d(3, 3, 1)
    model = lambda x, t: net(x)  # noqa: E731
    seen = []
    x = torch.randn(1, 3, 8, 8)
    out = dclip.generate(model, x, 200, 4, callback=seen.append)
    assert [s["t"] for s in seen] == [200, 133, 66, 0]
    torch.testing.assert_close(seen[-1]["x0_pred"], out)  # ᾱ_{-1} = 1: the last step returns x̂0
    out.sum().backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0


def test_inversion_runs_without_gradients():
    net = torch.nn.Conv2d(3, 3, 1)
    latent = dclip.invert(lambda x, t: net(x), torch.zeros(1, 3, 8, 8), 100, 3)
    assert not latent.requires_grad


def test_learned_variance_output_uses_first_half():
    eps = torch.randn(1, 3, 4, 4)
    six = lambda x, t: torch.cat([eps, torch.full_like(eps, 7.0)], 1)  # noqa: E731
    three = lambda x, t: eps  # noqa: E731
    x = torch.rand(1, 3, 4, 4) * 2 - 1
    torch.testing.assert_close(dclip.invert(six, x, 100, 4), dclip.invert(three, x, 100, 4))


def test_q_sample_has_the_forward_marginal():
    x0 = torch.full((20000,), 0.5)
    xt = q_sample(x0, 500, generator=torch.Generator().manual_seed(0))
    a = DEFAULT_SCHEDULE.alpha_bar(500)
    assert xt.mean().item() == pytest.approx(a ** 0.5 * 0.5, abs=0.02)
    assert xt.var().item() == pytest.approx(1 - a, rel=0.05)


@pytest.mark.parametrize("t0, steps, message", [(0, 10, "t0"), (1000, 10, "t0"), (500, 1, "steps")])
def test_bad_grid_arguments_are_clear_errors(t0, steps, message):
    with pytest.raises(ValueError, match=message):
        dclip.invert(GaussianOracle(), torch.zeros(1, 3, 4, 4), t0, steps)


def test_bad_images_are_clear_errors():
    oracle = GaussianOracle()
    with pytest.raises(ValueError, match="shape"):
        dclip.invert(oracle, torch.zeros(3, 4, 4), 100, 4)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        dclip.invert(oracle, torch.full((1, 3, 4, 4), 255.0), 100, 4)
    with pytest.raises(ValueError, match="floating point"):
        dclip.invert(oracle, torch.zeros(1, 3, 4, 4, dtype=torch.uint8), 100, 4)


class Counting:
    def __init__(self, value):
        self.value, self.calls = value, 0

    def __call__(self, x, t):
        self.calls += 1
        return torch.full_like(x, self.value)


def test_ratio_mix_weights_and_skips_unused_models():
    a, b = Counting(1.0), Counting(3.0)
    x, t = torch.zeros(1, 3, 2, 2), torch.tensor([10.0])
    assert torch.allclose(RatioMix(a, b, 0.25)(x, t), torch.full_like(x, 1.5))
    a.calls = b.calls = 0
    assert torch.allclose(RatioMix(a, b, 0.0)(x, t), torch.ones_like(x)) and b.calls == 0
    with pytest.raises(ValueError, match="ratio"):
        RatioMix(a, b, 1.5)


def test_threshold_mix_follows_the_gamma_schedule():
    a, b = Counting(1.0), Counting(3.0)
    mix = ThresholdMix([a, b], {300: [1, 0], 0: [3, 7]})  # weights are normalised
    x = torch.zeros(1, 3, 2, 2)
    assert torch.allclose(mix(x, torch.tensor([300.0])), torch.ones_like(x)) and b.calls == 0
    assert torch.allclose(mix(x, torch.tensor([299.0])), torch.full_like(x, 0.3 + 2.1))
    assert mix.weights(-1) == [0.3, 0.7]
    with pytest.raises(ValueError, match="cover t = 0"):
        ThresholdMix([a, b], {300: [1, 0]})
    with pytest.raises(ValueError, match="2 weights"):
        ThresholdMix([a], {0: [1, 0]})


def test_noise_mix_is_the_degree_of_change_over_the_gamma_weights():
    """ε = (1 − r)·ε_original + r·Σ γ_i ε_i, for one model, a constant γ list and a γ(t) schedule."""
    from dclip.method.mixing import noise_mix, parse_gammas

    original, a, b = Counting(1.0), Counting(3.0), Counting(7.0)
    x, t = torch.zeros(1, 3, 2, 2), torch.tensor([10.0])
    assert noise_mix(original, [a]) is a and noise_mix(original, [a], ratio=0.0) is original
    assert noise_mix(original, [], ratio=0.5) is original and noise_mix(original, [a, b], gammas=[0, 0]) is original
    assert torch.allclose(noise_mix(original, [a], ratio=0.25)(x, t), torch.full_like(x, 0.75 + 0.75))
    # r = 0.5, γ = (1, 3)/4: 0.5·1 + 0.125·3 + 0.375·7
    assert torch.allclose(noise_mix(original, [a, b], ratio=0.5, gammas=[1, 3])(x, t), torch.full_like(x, 3.5))
    schedule = parse_gammas("300:1,0;0:0.3,0.7")
    assert schedule == {300: [1.0, 0.0], 0: [0.3, 0.7]}
    mix = noise_mix(original, [a, b], gammas=schedule)
    assert torch.allclose(mix(x, torch.tensor([300.0])), torch.full_like(x, 3.0))
    assert torch.allclose(mix(x, t), torch.full_like(x, 0.9 + 4.9))
    half = noise_mix(original, [a, b], ratio=0.5, gammas=schedule)
    assert torch.allclose(half(x, t), torch.full_like(x, 0.5 + 0.45 + 2.45))
    with pytest.raises(ValueError, match="need γ weights"):
        noise_mix(original, [a, b])
    with pytest.raises(ValueError, match="2 weights for 1 models"):
        noise_mix(original, [a], gammas={0: [1, 0]})
    with pytest.raises(ValueError, match="THRESHOLD:W1,W2"):
        parse_gammas("300=1,0")


def test_grid_equals_numpy_linspace_everywhere():
    """torch.linspace fills its upper half from the end point; after int() some points differ."""
    import numpy as np

    for t0 in range(1, 1000):
        for steps in (2, 3, 6, 7, 8, 10, 40, 41, 200):
            expected = [int(s) for s in np.linspace(0, 1, steps) * t0]
            assert timestep_grid(t0, steps) == expected, (t0, steps)
    assert timestep_grid(301, 8)[5] == 214  # torch's linspace would give 215 here


def test_model_token_tells_mixes_apart():
    from dclip.method.accelerated import grid_key
    from dclip.runtime.fast import model_token

    a, b = Counting(1.0), Counting(3.0)
    keys = {grid_key("generate", 400, 6, DEFAULT_SCHEDULE, model=model_token(m))
            for m in (a, b, RatioMix(a, b, 0.3), RatioMix(a, b, 0.7), ThresholdMix([a, b], {0: [1, 1]}),
                      ThresholdMix([a, b], {300: [1, 0], 0: [1, 1]}))}
    assert len(keys) == 6


def test_inversion_callback_reports_each_steps_x0_prediction():
    """Inversion reports what generation does: the step index, t, t_next, the new x and x̂0 (eq. 6)."""
    from dclip.method.ddim import DEFAULT_SCHEDULE as S

    x0 = torch.linspace(-1, 1, 48).reshape(1, 3, 4, 4)
    seen = []
    dclip.invert(Counting(0.5), x0, 300, 4, callback=seen.append)
    assert [(s["i"], s["t"], s["t_next"]) for s in seen] == [(0, 0, 100), (1, 100, 200), (2, 200, 300)]
    x = x0
    for s in seen:  # ε = 0.5 everywhere: x̂0 = (x_t − √(1−ᾱ_t)·0.5)/√ᾱ_t
        a = S.alpha_bar(s["t"])
        torch.testing.assert_close(s["x0_pred"], (x - (1 - a) ** 0.5 * 0.5) / a ** 0.5)
        x = s["x"]
    exact = []
    dclip.invert(Counting(0.5), x0, 300, 4, exact=True, callback=exact.append)
    assert [s["i"] for s in exact] == [0, 1, 2, 3] and all("x0_pred" in s for s in exact)
