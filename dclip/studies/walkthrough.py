"""The notebooks' step-by-step cells: the paper's pieces shown one at a time, before the studies run them in bulk.

* :func:`step_grid`: Fig. 8a's S_inv × S_gen grid for one image, built one inversion and one generation at a time
  (notebook 03);
* :func:`directional_terms`: eq. 9 on one pair of batches (the text direction ΔT, the image direction ΔI, their
  cosine, L_direction) and eq. 10's CLIP term -log((2 - L_direction)/2);
* :func:`finetune_walk`: one fine-tune with its loss curve, then the x̂0 (eq. 6) that the original and the
  fine-tuned model predict along the S_gen chain from the same latent (notebook 02);
* :func:`latent_walk`: latent optimisation with the model frozen (the Fig. 9 baseline), its loss curve and the
  images it produces along the way (notebook 04);
* :func:`projection_walk`: eq. 1 plus K denoising rounds, round by round (notebook 05);
* :func:`loss_curve` and :func:`gamma_plot`: the figures of those cells (the γ(t) schedule of eq. 14 as used).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..method.attributes import Attribute
from .common import Study

__all__ = ["directional_terms", "step_grid", "finetune_walk", "latent_walk", "projection_walk", "loss_curve",
           "gamma_plot"]


def directional_terms(clip, x0: torch.Tensor, x: torch.Tensor, source: str, target: str) -> dict:
    """Eq. 9 for images ``x`` against their originals ``x0``: |ΔI| (the CLIP image-embedding change), cos(ΔI, ΔT),
    L_direction = 1 - cos (batch mean) and eq. 10's CLIP term, -log((2 - L_direction)/2)."""
    from ..method.losses import clip_objective, directional_clip_loss, text_direction
    from ..models.clip import encode_images

    direction = text_direction(clip, source, target)
    with torch.no_grad():
        l_dir = directional_clip_loss(clip, x0, x, direction)
        change = (encode_images(clip, x) - encode_images(clip, x0)).norm(dim=-1)
    return {"|ΔI|": round(float(change.mean()), 4), "cos(ΔI, ΔT)": round(float(1 - l_dir.mean()), 4),
            "L_direction": round(float(l_dir.mean()), 4), "CLIP term": round(float(clip_objective(l_dir.mean())), 4)}


def step_grid(ctx, x: torch.Tensor, t0: int, steps: Sequence[int], progress=print) -> Study:
    """Fig. 8a for the first image of ``x``: for each S_inv, one inversion to t0 (eq. 12); from its latent, one
    generation per S_gen (eq. 13). Each cell is captioned with its MAE to the input; ``progress`` gets a line per
    cell as the grid is built (None: quiet)."""
    from ..method.ddim import generate, invert
    from ..method.metrics import mae

    model, x = ctx.unet("celeba_hq"), x[:1]
    grid, captions = [], []
    for s_inv in steps:
        x_lat = invert(model, x, t0, s_inv)
        row, texts = [], []
        for s_gen in steps:
            with torch.no_grad():
                x_rec = generate(model, x_lat, t0, s_gen)
            error = float(mae(x, x_rec))
            row.append(x_rec[0].clamp(-1, 1).cpu())
            texts.append(f"S_gen {s_gen}: MAE {error:.3f}")
            if progress is not None:
                progress(f"S_inv = {s_inv:>3}, S_gen = {s_gen:>3}: MAE {error:.4f}")
        grid.append(row)
        captions.append(texts)
    return Study(grid=grid, captions=captions, row_labels=[f"S_inv {s}" for s in steps],
                 col_labels=[f"S_gen {s}" for s in steps], title=f"first image reconstructed at t0 = {t0}")


def _chain(model, x_lat: torch.Tensor, t0: int, steps: int, n_show: int) -> tuple[list[torch.Tensor], list[int]]:
    """x̂0 (eq. 6) at ``n_show`` evenly spaced steps of the generation chain from ``x_lat``, with their t."""
    from ..method.ddim import generate

    seen: list[dict] = []
    with torch.no_grad():
        generate(model, x_lat, t0, steps, callback=lambda row: seen.append(row))
    picks = sorted({round(i * (len(seen) - 1) / max(n_show - 1, 1)) for i in range(n_show)})
    return [seen[i]["x0_pred"][0].clamp(-1, 1).cpu() for i in picks], [seen[i]["t"] for i in picks]


def finetune_walk(ctx, attr: Attribute, x0: torch.Tensor, n_show: int = 6) -> Study:
    """One fine-tune of ``attr`` (the context's, so the studies reuse it), its loss history, and for the first image
    the x̂0 that the original and the fine-tuned model predict at ``n_show`` steps of the S_gen chain from the same
    latent. ``extra["history"]`` is empty when the model came from the disk cache (nothing was trained here)."""
    history: list[dict] = []
    tuned = ctx.finetune(attr, callback=history.append)
    x_lat = ctx.latent(x0, attr.t0, attr.domain)
    edit = ctx.edit(tuned, x0, attr.t0, attr.domain, x_lat=x_lat)
    original, times = _chain(ctx.unet(attr.domain), x_lat[:1], attr.t0, ctx.profile.n_gen, n_show)
    finetuned, _ = _chain(tuned, x_lat[:1], attr.t0, ctx.profile.n_gen, n_show)
    study = Study(images={"edit": edit}, extra={"history": history},
                  grid=[[x0[0].cpu(), *original], [x0[0].cpu(), *finetuned]],
                  row_labels=["original model", "fine-tuned"], col_labels=["input", *(f"x̂0 at t={t}" for t in times)],
                  title=f"'{attr.source}' → '{attr.target}': x̂0 (eq. 6) along the generation chain from x_t0, t0 = {attr.t0}")
    return study


def latent_walk(ctx, attr: Attribute, x0: torch.Tensor, n_show: int = 4) -> Study:
    """The Fig. 9 baseline on the first image: x_t0 optimised with the directional CLIP loss and L1, the model
    frozen (:func:`dclip.method.edit.latent_optimisation`, the profile's steps and lr); its loss per iteration and the
    image generated from the latent at ``n_show`` iterations."""
    from ..method.ddim import generate
    from ..method.edit import latent_optimisation

    p = ctx.profile
    latents: list[torch.Tensor] = []
    out, losses = latent_optimisation(ctx.unet(attr.domain), ctx.clip, x0[:1], attr.source, attr.target, attr.t0,
                                      n_inv=p.n_inv, iterations=p.latent_opt_iterations, lr=p.latent_opt_lr,
                                      callback=lambda row: latents.append(row["x_lat"]))
    picks = sorted({round(i * (len(latents) - 1) / max(n_show - 1, 1)) for i in range(n_show)})
    with torch.no_grad():
        shown = [generate(ctx.unet(attr.domain), latents[i], attr.t0, 6)[0].clamp(-1, 1).cpu() for i in picks]
    return Study(images={"edit": out}, extra={"history": [{"i": i, "loss": v} for i, v in enumerate(losses)]},
                 grid=[[x0[0].cpu(), *shown]], row_labels=["latent optimisation"],
                 col_labels=["input", *(f"after {i + 1} steps" for i in picks)],
                 title=f"'{attr.source}' → '{attr.target}': the latent x_t0 optimised, the model frozen")


def projection_walk(ctx, x: torch.Tensor, t0: int, *, rounds: int | None = None, steps: int | None = None,
                    seed: int = 0) -> Study:
    """Eq. 1 plus K denoising rounds on ``x`` (Sec. 3.2), round by round: each round noises the image to t0 with the
    stochastic forward process and denoises it in ``steps`` DDIM steps with the original model
    (:func:`dclip.method.edit.project_to_domain`; K and the steps default to the profile's)."""
    from ..method.edit import project_to_domain

    p = ctx.profile
    rounds, steps = rounds or p.project_repeats, steps or p.project_steps
    seen: list[torch.Tensor] = []
    generator = torch.Generator(device=x.device).manual_seed(seed)
    project_to_domain(ctx.unet("celeba_hq"), x[:1], t0, repeats=rounds, steps=steps, generator=generator,
                      callback=lambda row: seen.append(row["x"][0].clamp(-1, 1).cpu()))
    return Study(grid=[[x[0].cpu(), *seen]], row_labels=["projection"],
                 col_labels=["input", *(f"round {k + 1}" for k in range(len(seen)))],
                 title=f"into the domain: {rounds} rounds of eq. 1 to t0 = {t0} and {steps} DDIM steps")


def loss_curve(histories: Mapping[str, Sequence[dict]], key: str = "loss", stamp_text: str = ""):
    """Each history's ``key`` per update (or iteration) as a thin line, one per name, and where the rows carry an
    ``epoch`` (fine-tuning: one update per image) the mean of each pass over the images as dots on a thick line;
    None when all are empty."""
    from .plots import ShownFigure, stamp

    if not any(histories.values()):
        return None
    fig = ShownFigure(figsize=(6, 3))
    ax = fig.subplots()
    for name, rows in histories.items():
        if not rows:
            continue
        line, = ax.plot([r[key] for r in rows], label=name, lw=0.8, alpha=0.6)
        if "epoch" in rows[0]:
            passes = sorted({r["epoch"] for r in rows})
            at = [[i for i, r in enumerate(rows) if r["epoch"] == e] for e in passes]
            means = [sum(rows[i][key] for i in idx) / len(idx) for idx in at]
            ax.plot([sum(idx) / len(idx) for idx in at], means, "o-", color=line.get_color(), lw=2,
                    label=f"{name}: mean per pass")
    ax.set_xlabel("update")
    ax.set_ylabel(key)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if stamp_text:
        stamp(fig, stamp_text)
    return fig


def gamma_plot(gammas: Mapping[int, Sequence[float]], labels: Sequence[str], t0: int, stamp_text: str = ""):
    """γ_i(t) of eq. 14 as the mix applies it (:class:`dclip.method.mixing.ThresholdMix`: normalised, the weights of
    the largest threshold ≤ t), for t from t0 down to 0, one line per model."""
    from ..method.mixing import ThresholdMix
    from .plots import ShownFigure, stamp

    mix = ThresholdMix([None] * len(labels), gammas)
    times = list(range(int(t0), -1, -1))
    weights = [mix.weights(t) for t in times]
    fig = ShownFigure(figsize=(5, 2.6))
    ax = fig.subplots()
    for i, label in enumerate(labels):
        ax.plot(times, [w[i] for w in weights], label=f"γ {label}", lw=1.5)
    ax.invert_xaxis()
    ax.set_xlabel("t (generation runs from t0 down to 0)")
    ax.set_ylabel("γ(t)")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if stamp_text:
        stamp(fig, stamp_text)
    return fig
