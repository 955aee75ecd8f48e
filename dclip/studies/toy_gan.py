"""The toy world's generators (the StyleGAN2 and the DDPM) and its e4e: loading the shipped files, and measuring
them against their bars (one set of bars for both generators).

The toy GAN baselines (StyleCLIP, StyleGAN-NADA) are only as good as the generator they edit in, so its
sample quality is measured and shown beside every GAN inversion error (notebooks 01 and 02):

* **formed**: the share of samples the judge accepts as well-formed toy faces (bar: ≥ 0.9);
* **frequencies**: per attribute, each value's share among the samples (the judge's reading) against its
  share among the domain's faces (bar: within 10 points for every value);
* **Fréchet distance** on the judge's pooled features (torchmetrics' FID with the judge as the feature
  network), of the GAN's samples and of the toy DDPM's samples (DDIM, 40 steps, from noise) to held-out
  real faces, and of a second set of real faces as the floor.

Samples use the full latent distribution (no truncation) and the generator's stored noise.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..method.metrics import bootstrap_interval, mae
from ..models.folder import shipped_file
from ..toy import domain
from ..toy.nets import JUDGE_HEADS, judge_distance, load_judge

__all__ = ["GAN_FILE", "E4E_FILE", "BARS", "DDPM_SAMPLE_STEPS", "load_toy_gan", "load_toy_e4e", "gan_samples",
           "ddpm_samples", "frechet_distance", "domain_frequencies", "sample_quality", "gan_bars", "ddpm_bars",
           "e4e_error", "meets_bars", "recorded_quality"]

GAN_FILE, E4E_FILE = "toy_stylegan2", "toy_e4e"

#: The toy generators' bars: formed share, the largest gap between a value's share among samples and in the domain,
#: and the Fréchet distance on the judge's features to held-out real faces (real vs real: about 1.1).
BARS = {"formed": 0.9, "frequency_gap": 0.10, "frechet": 3.0}

#: The attributes whose frequencies are compared (the style is always "photo" for the GAN's training images).
ATTRIBUTE_HEADS = tuple(h for h in JUDGE_HEADS if h != "style")


def load_toy_gan(folder: str | Path | None = None, device="cpu"):
    """The shipped toy StyleGAN2 as ``(generator, latent_avg)``."""
    from ..baselines.stylegan2_training import load_trained_stylegan2

    return load_trained_stylegan2(shipped_file(GAN_FILE, folder), device)


def load_toy_e4e(generator, folder: str | Path | None = None):
    """The shipped toy e4e encoder, paired with ``generator`` (the shipped toy StyleGAN2)."""
    from ..baselines.e4e_training import load_trained_e4e

    return load_trained_e4e(shipped_file(E4E_FILE, folder), generator)


@torch.no_grad()
def gan_samples(generator, n: int, seed: int = 0, batch: int = 128) -> torch.Tensor:
    """``n`` samples from z ~ N(0, I) (seeded), no truncation, stored noise; in [-1, 1] on the CPU."""
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator.style_dim, generator=rng)
    device = generator.input.input.device
    return torch.cat([generator([z[i: i + batch].to(device)]).clamp(-1, 1).cpu() for i in range(0, n, batch)])


class _JudgeFeatures(torch.nn.Module):
    """The judge's pooled last-block features: the feature network of :func:`frechet_distance`."""

    def __init__(self, judge):
        super().__init__()
        self.judge, self.num_features = judge, judge.heads["skin"].in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.judge.pool(self.judge.feature_maps(x.float().clamp(-1, 1))[-1])


def frechet_distance(judge, a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between the judge's feature statistics of two image sets (torchmetrics' FID with
    the judge as its feature network)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=_JudgeFeatures(judge), normalize=False)
    for batch, real in ((a, True), (b, False)):
        for i in range(0, len(batch), 256):
            fid.update(batch[i: i + 256], real=real)
    return float(fid.compute())


def domain_frequencies(n: int = 4000, start: int = 0) -> dict[str, dict[str, float]]:
    """Each attribute value's share among ``n`` faces of the domain (their true attributes)."""
    records = domain.faces(start, n)
    return {head: {v: sum(getattr(f, head) == v for f in records) / n for v in JUDGE_HEADS[head]}
            for head in ATTRIBUTE_HEADS}


def sample_quality(judge, samples: torch.Tensor) -> dict:
    """formed (with its 95 % interval) and the per-attribute frequency gaps of ``samples`` against the domain."""
    readings = judge.predict(samples)
    formed = torch.tensor([float(r["well_formed"]) for r in readings])
    truth = domain_frequencies()
    freq = {head: {v: sum(r[head] == v for r in readings) / len(readings) for v in values}
            for head, values in truth.items()}
    gaps = {head: max(abs(freq[head][v] - truth[head][v]) for v in truth[head]) for head in truth}
    return {"n": len(samples), "formed": float(formed.mean()), "formed_ci": bootstrap_interval(formed.numpy()),
            "frequencies": freq, "domain_frequencies": truth, "frequency_gaps": gaps,
            "largest_gap": max(gaps.values())}


def meets_bars(quality: dict, frechet: float | None = None) -> bool:
    """Whether measured sample quality meets :data:`BARS` (the Fréchet bar too when ``frechet`` is given)."""
    return (quality["formed"] >= BARS["formed"] and quality["largest_gap"] <= BARS["frequency_gap"]
            and (frechet is None or frechet <= BARS["frechet"]))


#: DDIM steps of the toy DDPM's samples from noise (η = 0, x̂0 clipped: :func:`dclip.method.ddim.sample`).
DDPM_SAMPLE_STEPS = 40


def ddpm_samples(n: int, seed: int = 0, folder: str | Path | None = None, batch: int = 64) -> torch.Tensor:
    """``n`` samples of the toy DDPM in ``folder`` (default: the toy models' folder) from seeded noise, in [-1, 1]."""
    from ..method.ddim import sample
    from ..models.unet import load_unet

    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 3, domain.SIZE, domain.SIZE, generator=generator)
    unet = load_unet(shipped_file("toy_ddpm", folder) if folder is not None else "toy")
    with torch.no_grad():
        return torch.cat([sample(unet, noise[i: i + batch], DDPM_SAMPLE_STEPS).clamp(-1, 1)
                          for i in range(0, n, batch)])


def _real_faces(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint sets of ``n`` validation faces: the reference of the Fréchet distances, and its floor."""
    real, _ = domain.face_set(domain.VALIDATION_SEED, n)
    floor, _ = domain.face_set(domain.VALIDATION_SEED + n, n)
    return real, floor


def ddpm_bars(folder: str | Path | None = None, n: int = 512, seed: int = 0) -> dict:
    """The toy DDPM's samples against :data:`BARS` (:func:`sample_quality`, and the Fréchet distance of ``n``
    samples and of ``n`` other real faces to ``n`` held-out real faces). ``n`` is the GAN's (:func:`gan_bars`):
    the Fréchet distance is biased upwards on fewer samples (real vs real: 1.1 on 512, 2.4 on 256)."""
    judge = load_judge()
    samples = ddpm_samples(n, seed, folder)
    real, floor = _real_faces(n)
    fd = {"ddpm": frechet_distance(judge, real, samples), "real (another set)": frechet_distance(judge, real, floor)}
    quality = sample_quality(judge, samples)
    return {**quality, "meets_bars": meets_bars(quality, fd["ddpm"]), "bars": BARS, "frechet_to_real": fd,
            "sampler": f"DDIM, {DDPM_SAMPLE_STEPS} steps, eta 0, from noise (seed {seed})"}


def gan_bars(folder: str | Path | None = None, n: int = 512, seed: int = 0, n_ddpm: int = 256) -> dict:
    """The toy GAN's sample quality (:func:`sample_quality`), whether it meets :data:`BARS`, and the Fréchet
    distances of its samples and of the toy DDPM's to held-out real faces (``n_ddpm = 0`` skips the DDPM)."""
    judge = load_judge()
    generator, _ = load_toy_gan(folder)
    samples = gan_samples(generator, n, seed)
    quality = sample_quality(judge, samples)
    real, floor = _real_faces(n)
    fd = {"gan": frechet_distance(judge, real, samples), "real (another set)": frechet_distance(judge, real, floor)}
    if n_ddpm:
        fd["ddpm"] = frechet_distance(judge, real, ddpm_samples(n_ddpm, seed))
    return {**quality, "meets_bars": meets_bars(quality, fd["gan"]), "bars": BARS, "frechet_to_real": fd,
            "frechet_n": {"gan": n, "ddpm": n_ddpm, "real": n}}


def e4e_error(folder: str | Path | None = None, n: int = 64, gan_folder: str | Path | None = None) -> dict:
    """The toy e4e's reconstruction error on ``n`` validation faces: MAE ([0, 1] scale) and the judge's
    feature distance. The encoder is read from ``folder``, its StyleGAN2 from ``gan_folder`` (default: ``folder``)."""
    generator, _ = load_toy_gan(gan_folder if gan_folder is not None else folder)
    encoder = load_toy_e4e(generator, folder)
    faces, _ = domain.face_set(domain.VALIDATION_SEED, n)
    _, inverted = encoder.invert(faces)
    inverted = inverted.clamp(-1, 1)
    return {"n": n, "mae": float(mae(faces, inverted).mean()),
            "judge_dist": float(judge_distance(load_judge(), faces, inverted).mean())}


def describe_quality(quality: dict) -> str:
    """The toy GAN's sample quality (:func:`gan_bars`' record) in one sentence, beside its bars."""
    lo, hi = quality["formed_ci"]
    fd = quality["frechet_to_real"]
    others = ", ".join(f"{name} {value:.1f}" for name, value in fd.items() if name != "gan")
    return (f"the toy GAN's samples (n = {quality['n']}): formed {quality['formed']:.2f} [{lo:.2f}, {hi:.2f}] (bar "
            f"{BARS['formed']:.2f}), largest attribute-frequency gap {quality['largest_gap']:.2f} (bar "
            f"{BARS['frequency_gap']:.2f}); Fréchet distance on the judge's features to real faces {fd['gan']:.1f} "
            f"({others})")


def recorded_quality(folder: str | Path | None = None) -> dict | None:
    """The toy GAN's bars as measured when it was trained (its sidecar's ``bars``: :func:`gan_bars`), or None."""
    from ..models.folder import read_sidecar

    return read_sidecar(shipped_file(GAN_FILE, folder)).get("bars")
