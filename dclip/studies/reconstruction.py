"""Reconstruction: notebook 01's Table 1 / Fig. 1a (DDIM inversion beside the paper's numbers, plus
dclip's exact inversion), notebook 03's Fig. 8a (S_inv x S_gen), and notebook 02's Table 1 rows
(DiffusionCLIP's reconstruction at each t0 of its prompts and the GAN inversions, beside the paper's)."""
from __future__ import annotations

from typing import Sequence

import torch

from ..method import metrics
from ..method.accelerated import generate_fast
from ..method.latents import precompute
from ..runtime.fast import RECONSTRUCTION
from .common import GAN_DOMAIN, Study, _interval, _one_domain, beside_paper, reconstruction_scores
from .paper_numbers import paper_gan_inversion, paper_reconstruction

__all__ = ["reconstruction_study", "step_ablation", "diffusion_reconstructions", "gan_inversion_rows",
           "diffusion_reconstruction_rows"]


# The reconstruction studies (Table 1, Fig. 8a) run at the engine's one precision for reconstructions
# (dclip.runtime.fast.RECONSTRUCTION: fp32 on every device; on the CPU bit-identical to plain invert/generate).
_FP32 = RECONSTRUCTION


def _latents(model, x: torch.Tensor, t0: int, steps: int, exact: bool = False):
    """``x`` inverted to t0 and reconstructed with S_inv = S_gen = ``steps`` (:func:`precompute`, fp32, one batch)."""
    return precompute(model, x, int(t0), int(steps), exact=exact, batch_size=len(x), fast=_FP32)


def _regenerate(model, latents, steps: int) -> torch.Tensor:
    """Generation from ``latents.x_lat`` with another S_gen than its S_inv (fp32, as :func:`_latents`)."""
    from ..runtime.fast import device_of

    return generate_fast(model, latents.x_lat.to(device_of(model)), latents.t0, int(steps), fast=_FP32)


def reconstruction_study(ctx, images: torch.Tensor, t0s: Sequence[int] = (300, 400, 500, 600), *,
                         steps: int = 0, exact: bool = True, domain: str = "celeba_hq") -> Study:
    """Invert and regenerate ``images`` at each t0 with S_inv = S_gen = ``steps`` (0: the profile's test S).

    Rows: the paper's DDIM inversion (beside Table 1's DiffusionCLIP numbers) and, with ``exact``,
    dclip's fixed-point inversion (``invert(..., exact=True)``, beyond the paper) at the same S.
    Images: ``original`` and ``ddim_<t0>`` / ``exact_<t0>`` reconstructions.
    """
    model, steps = ctx.unet(domain), int(steps or ctx.profile.n_inv)
    study = Study(images={"original": images.cpu()})
    variants = [("DDIM (paper)", False)] + ([("exact (dclip)", True)] if exact else [])
    for label, is_exact in variants:
        for t0 in t0s:
            rec = _latents(model, images, t0, steps, is_exact).x_rec.to(images.device)
            study.images[f"{'exact' if is_exact else 'ddim'}_{t0}"] = rec.cpu()
            paper = paper_reconstruction(t0) if not is_exact else {"mae": None, "lpips": None, "ssim": None}
            study.rows.append({"inversion": label, "t0": int(t0), "S": steps,
                               **reconstruction_scores(ctx, images, rec), **beside_paper(ctx, paper)})
    keys = [k for k in study.images if k != "original"]
    study.layout(["original"] + keys, ["original"] + [k.replace("ddim_", "DDIM t0=").replace("exact_", "exact t0=")
                                                      for k in keys], n_rows=4,
                 title=f"Fig. 1a / Table 1: reconstruction with S_inv = S_gen = {steps}")
    return study


def step_ablation(ctx, images: torch.Tensor, t0: int = 600, steps: Sequence[int] = (6, 40, 200), *,
                  domain: str = "celeba_hq") -> Study:
    """Fig. 8a: reconstruct at ``t0`` for every S_inv × S_gen in ``steps``²; rows carry MAE/LPIPS/SSIM.

    Each latent is inverted once per S_inv (with its S_gen = S_inv reconstruction) and regenerated
    with every other S_gen. Images: ``original`` and ``rec_<S_inv>_<S_gen>``.
    """
    model = ctx.unet(domain)
    study = Study(images={"original": images.cpu()})
    errors = {}
    for s_inv in steps:
        latents = _latents(model, images, t0, s_inv)
        for s_gen in steps:
            rec = (latents.x_rec if s_gen == s_inv else _regenerate(model, latents, s_gen)).to(images.device)
            study.images[f"rec_{s_inv}_{s_gen}"] = rec.cpu()
            errors[s_inv, s_gen] = metrics.mae(images, rec).cpu()
            study.rows.append({"S_inv": int(s_inv), "S_gen": int(s_gen), **reconstruction_scores(ctx, images, rec)})
    study.extra["comparisons"] = _step_comparisons(errors, steps)
    study.grid = [[images[0].cpu() if i == 0 else None] + [study.images[f"rec_{a}_{b}"][0] for b in steps]
                  for i, a in enumerate(steps)]
    study.row_labels = [f"S_inv={a}" for a in steps]
    study.col_labels = ["original"] + [f"S_gen={b}" for b in steps]
    study.title = f"Fig. 8a: reconstruction at t0 = {t0}"
    return study


def _step_comparisons(errors: dict, steps: Sequence[int]) -> list[dict]:
    """For each S_inv, the MAE of each S_gen minus that of the next larger S_gen, per image, with its 95 %
    bootstrap interval (what Fig. 8a's statements are checked on: :func:`dclip.studies.claims.step_claims`)."""
    rows = []
    for s_inv in steps:
        for fewer, more in zip(steps, steps[1:]):
            diff = (errors[s_inv, fewer] - errors[s_inv, more]).numpy()
            rows.append({"S_inv": int(s_inv), "S_gen": int(fewer), "versus S_gen": int(more),
                         "mae_difference": round(float(diff.mean()), 5), "ci": _interval(diff), "of": len(diff)})
    return rows


def diffusion_reconstructions(ctx, items: Sequence[str], originals: torch.Tensor) -> dict[int, torch.Tensor]:
    """DiffusionCLIP's reconstruction at each distinct t0 of one domain's attributes (Table 1, Fig. 5).

    The edit without fine-tuning: DDIM inversion to t0 and generation with the original model, at
    the profile's test-time S_inv / S_gen -- what each edit starts from (the same latents: computed
    once per t0 and shared with :meth:`Context.edit`).
    """
    attrs = _one_domain(items)
    return {t0: _reconstruction(ctx, originals, t0, attrs[0].domain) for t0 in sorted({a.t0 for a in attrs})}


def _reconstruction(ctx, originals: torch.Tensor, t0: int, domain: str) -> torch.Tensor:
    """The original model's reconstruction from the session's shared latents (:meth:`Context.latents`),
    regenerated with S_gen steps where S_gen differs from S_inv."""
    latents, p = ctx.latents(originals, t0, domain), ctx.profile
    if p.n_gen == p.n_inv:
        return latents.x_rec.to(originals.device)
    return generate_fast(ctx.unet(domain), latents.x_lat.to(originals.device), t0, p.n_gen, fast=RECONSTRUCTION)


def _table1_t0(t0: int) -> int:
    """The Table 1 row a return step stands for: the authors' 301, 601 ... are the paper's 300, 600."""
    return t0 - 1 if t0 % 100 == 1 else t0


def _reconstruction_row(ctx, method: str, inversion: str, domain: str, t0: int | None, scores: dict | None,
                        paper: dict) -> dict:
    scores = scores or {"mae": None, "lpips": None, "ssim": None}
    return {"method": method, "inversion": inversion, "domain": domain, "t0": t0, **scores,
            **beside_paper(ctx, {k: paper[k] for k in ("mae", "lpips", "ssim")})}


#: Table 1's name of each GAN inversion (:data:`dclip.baselines.comparison.E4E_INVERSION`, ...).
_TABLE1_GAN = {"e4e": "e4e", "optimisation (W+)": "Optimization"}


def gan_inversion_rows(ctx, originals: torch.Tensor, inversions: dict[str, tuple[torch.Tensor, list[str]]]
                       ) -> list[dict]:
    """Table 1's GAN rows, measured: each inversion of :func:`~dclip.studies.manipulation.gan_edit_sets`
    beside the paper's (e4e, Optimization), labelled with the methods that start from it."""
    return [_reconstruction_row(ctx, " / ".join(methods), name, GAN_DOMAIN, None,
                                reconstruction_scores(ctx, originals, inverted),
                                paper_gan_inversion(_TABLE1_GAN.get(name, name)))
            for name, (inverted, methods) in inversions.items()]


def diffusion_reconstruction_rows(ctx, domain: str, originals: torch.Tensor, recs: dict[int, torch.Tensor]
                                  ) -> list[dict]:
    """Table 1's DiffusionCLIP rows: the reconstruction at each t0, beside the paper's (CelebA-HQ only)."""
    none = {"mae": None, "lpips": None, "ssim": None}
    return [_reconstruction_row(ctx, "DiffusionCLIP", "DDIM", domain, t0,
                                reconstruction_scores(ctx, originals, rec),
                                paper_reconstruction(_table1_t0(t0)) if domain == "celeba_hq" else none)
            for t0, rec in recs.items()]
