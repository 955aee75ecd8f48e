"""An exact ε-predictor for Gaussian data, so DDIM's solver error can be measured without a network."""

from dclip.method.ddim import DEFAULT_SCHEDULE


class GaussianOracle:
    """E[ε | x_t] for data x0 ~ N(μ, σ²I): √(1−ᾱ)(x_t − √ᾱ μ) / (ᾱσ² + 1 − ᾱ), exact in closed form."""

    def __init__(self, mu: float = 0.2, sigma: float = 0.5, schedule=DEFAULT_SCHEDULE):
        self.mu, self.sigma = mu, sigma
        self.alphas_cumprod = schedule.alphas_cumprod
        self.calls = 0

    def __call__(self, x, t):
        self.calls += 1
        a = self.alphas_cumprod[t.long()].to(x.dtype).view(-1, 1, 1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * self.mu) / (a * self.sigma ** 2 + 1 - a)
