"""dclip.ddim.sample: DDIM from pure noise with x̂0 clipped (a model's own samples, for looking at it)."""
import torch

from dclip.method.ddim import DEFAULT_SCHEDULE, sample


def _oracle(target: torch.Tensor):
    """The ideal ε-predictor of a data set holding the single image ``target``: ε = (x − √ᾱ_t·x*) / √(1 − ᾱ_t)."""
    def eps(x, t):
        a = float(DEFAULT_SCHEDULE.alphas_cumprod[int(t[0])])
        return (x - a ** 0.5 * target) / (1 - a) ** 0.5
    return eps


def test_sampling_with_the_ideal_model_returns_its_one_image():
    target = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    seen = []
    out = sample(_oracle(target), noise, 10, callback=lambda d: seen.append((d["t"], d["t_next"])))
    torch.testing.assert_close(out, target, atol=1e-5, rtol=0)
    assert seen[0] == (999, 888) and seen[-1] == (0, -1) and len(seen) == 10


def test_a_wrong_model_cannot_drive_samples_out_of_range():
    # ε = 0 everywhere: unclipped, eq. 6 would give x̂0 = x / √ᾱ ≈ 160·x at the first step
    out = sample(lambda x, t: torch.zeros_like(x), torch.randn(1, 3, 8, 8), 5)
    assert out.abs().max() <= 1.0 and torch.isfinite(out).all()
