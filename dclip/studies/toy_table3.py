"""Fig. 5 / Table 3 and Table 1's GAN rows at the toy profile: DiffusionCLIP beside StyleCLIP (latent
optimisation from e4e and from the W+ projection, global directions from e4e) and StyleGAN-NADA, all editing
in the shipped toy StyleGAN2 and guided by the toy CLIP, on the same test faces and prompts.

* :func:`toy_comparison`: per edit, the test faces that lack its target; every method's edit judged against the
  true edit (hit, kept, distance to the true edit, S_dir, each with a 95 % bootstrap interval over faces, and
  over fine-tunes for DiffusionCLIP), and one figure per edit: original, true edit, each GAN inversion, each
  method's edit, with the judge's reading under every face;
* :func:`toy_inversion_rows`: Table 1 at toy: e4e and W+ projection against DDIM inversion (MAE, the judge's
  feature distance, the toy identity, the share of attributes the judge reads as in the original);
* the verdicts on the paper's two statements (:func:`comparable_claim`, :func:`gan_inversion_claim`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..method import metrics
from ..method.attributes import attribute
from .claims import Claim
from .common import Study, judged

__all__ = ["IN_DOMAIN", "OUT_OF_DOMAIN", "COMPARABLE_MARGIN", "toy_comparison", "toy_inversions",
           "comparable_claim", "gan_inversion_claim", "attribute_agreement"]

#: The toy stand-ins of Table 3's in-domain prompts, and the two out-of-domain ones (Fig. 5's right half).
IN_DOMAIN = ("glasses", "tanned", "gray_hair", "angry")
OUT_OF_DOMAIN = ("sketch", "pixel_art")

#: "Comparable": DiffusionCLIP's hit rate at most this much below the other method's, by the whole 95 % interval
#: of the paired difference (a non-inferiority margin, fixed before anything was measured).
COMPARABLE_MARGIN = 0.10

DIFFUSIONCLIP = "DiffusionCLIP"


def _interval(values) -> list[float]:
    return [round(v, 4) for v in metrics.bootstrap_interval(np.asarray(values, dtype=float))]


def _s_dir(ctx, faces, edits, attr) -> dict:
    runs = edits if isinstance(edits, (list, tuple)) else [edits]
    values = torch.stack([metrics.directional_similarity(ctx.clip, faces, e, attr.source, attr.target)
                          for e in runs]).numpy()
    return {"s_dir": round(float(values.mean()), 4), "s_dir_ci": _interval(values)}


def _row(ctx, name, method, inversion, faces, edits) -> dict:
    attr = attribute(name)
    kind = "in domain" if name in IN_DOMAIN else "out of domain"
    return {"edit": name, "kind": kind, "method": method, "inversion": inversion,
            **judged(ctx, faces, edits, name), **_s_dir(ctx, faces, edits, attr)}


def _hits(ctx, faces, edits, name) -> np.ndarray:
    """Per-face hit (mean over runs) on the faces that lack the target, for the paired comparison."""
    from ..toy.judging import edit_outcomes
    from .common import lacking_mask

    runs = edits if isinstance(edits, (list, tuple)) else [edits]
    outcomes = [edit_outcomes(ctx.judge, faces, e, name) for e in runs]
    lacking = lacking_mask(ctx.world.records(faces), name, outcomes[0]["lacking"])
    return torch.stack([o["hit"] for o in outcomes]).mean(0)[lacking].numpy()


def _face_sets(ctx, names: Sequence[str], n_faces: int | None) -> dict[str, tuple[torch.Tensor, list[str]]]:
    """Each edit's test faces (the first ``n_faces`` that lack its target), keyed by the faces: edits that share
    their faces (the styles: every photo lacks them) share one GAN inversion."""
    from ..method.latents import fingerprint

    sets: dict[str, tuple[torch.Tensor, list[str]]] = {}
    for name in names:
        faces = ctx.world.edit_images(name, n_faces)
        sets.setdefault(fingerprint([faces.cpu()]), (faces, []))[1].append(name)
    return sets


def toy_comparison(ctx, names: Sequence[str] = IN_DOMAIN + OUT_OF_DOMAIN, *, runs: int = 1, n_faces: int | None = None,
                   n_show: int = 6) -> Study:
    """Every method on every toy edit of ``names`` (toy profile), on the first ``n_faces`` (default: all the
    profile's) test faces that lack its target. ``rows``: one per (edit, method); ``extra["paired"]``: per edit
    and GAN method the per-face hits of both, for :func:`comparable_claim`; ``panels``: one figure per edit
    (``n_show`` faces as columns)."""
    if not ctx.profile.is_toy:
        raise ValueError("toy_comparison needs the toy profile (the toy StyleGAN2 and the judge).")
    study = Study()
    study.extra["paired"] = []
    for faces, group in _face_sets(ctx, names, n_faces).values():
        prompts = [(attribute(n).source, attribute(n).target) for n in group]
        gan = ctx.gan_baselines(faces, prompts)  # one inversion of these faces for every prompt of the group
        for name in group:
            _compare_one(ctx, study, name, faces, gan, runs, n_show)
    study.rows.sort(key=lambda r: list(names).index(r["edit"]))
    return study


def _compare_one(ctx, study: Study, name: str, faces: torch.Tensor, gan: dict, runs: int, n_show: int) -> None:
    """One edit's rows, paired hits and figure into ``study``."""
    from .judged_edits import face_rows

    attr = attribute(name)
    ours = [ctx.edit(ctx.finetune(attr, replicate=r), faces, attr.t0) for r in range(runs)]
    edits = {method: out.edited[(attr.source, attr.target)] for method, out in gan.items()}
    study.rows += [_row(ctx, name, m, gan[m].inversion, faces, e) for m, e in edits.items()]
    study.rows.append(_row(ctx, name, DIFFUSIONCLIP, "DDIM", faces, ours))
    mine = _hits(ctx, faces, ours, name)
    study.extra["paired"] += [{"edit": name, "method": m, "ours": mine.tolist(),
                               "theirs": _hits(ctx, faces, e, name).tolist()} for m, e in edits.items()]
    inversions = {f"{out.inversion} inversion": out.inverted for out in gan.values()}
    panel = Study()
    panel.grid, panel.row_labels, panel.notes = face_rows(
        ctx, name, faces, {**inversions, **edits, DIFFUSIONCLIP: ours[0]}, n_show)
    panel.title = f"'{name}' ({attr.source!r} -> {attr.target!r}): each method on the same test faces"
    study.panels[name] = panel


def _paired_difference(pairs: Sequence[dict]) -> tuple[float, list[float]]:
    diff = np.concatenate([np.asarray(p["ours"]) - np.asarray(p["theirs"]) for p in pairs])
    return float(diff.mean()), _interval(diff)


def comparable_claim(paired: Sequence[dict]) -> Claim:
    """Fig. 5 / Table 3: DiffusionCLIP is comparable to StyleCLIP in domain and to StyleGAN-NADA out of domain.
    One case per (StyleCLIP variant, in domain) and (NADA, out of domain): the 95 % interval of DiffusionCLIP's
    per-face hit minus the method's, pooled over the edits of that kind, lies above −:data:`COMPARABLE_MARGIN`."""
    cases = [(m, names) for m in sorted({p["method"] for p in paired}) if "StyleCLIP" in m
             for names in [IN_DOMAIN]] + [("StyleGAN-NADA", OUT_OF_DOMAIN)]
    parts, held, n = [], 0, 0
    for method, names in cases:
        pairs = [p for p in paired if p["method"] == method and p["edit"] in names]
        if not pairs:
            continue
        mean, ci = _paired_difference(pairs)
        ours = float(np.concatenate([p["ours"] for p in pairs]).mean())
        n, held = n + 1, held + (ci[0] > -COMPARABLE_MARGIN and ours >= 0.5)
        kind = "in domain" if names == IN_DOMAIN else "out of domain"
        parts.append(f"{kind} ({', '.join(names)}): DiffusionCLIP hit {ours:.2f}; hit DiffusionCLIP − {method} = "
                     f"{mean:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]")
    return Claim("DiffusionCLIP is comparable to StyleCLIP in domain and to StyleGAN-NADA out of domain (Fig. 5, "
                 f"Table 3; here: the paired hit difference's interval above −{COMPARABLE_MARGIN} and DiffusionCLIP's "
                 "pooled hit at least 0.5: two methods that both fail are not 'comparable' editors)",
                 "; ".join(parts) or "no GAN rows at this profile", held, n)


def attribute_agreement(judge, originals: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Per image, the share of the attributes (and the style) the judge reads as in the original; 0 for an
    image it refuses as not well-formed."""
    from ..toy.nets import JUDGE_HEADS

    before, after = judge.predict(originals.cpu()), judge.predict(images.cpu())
    return torch.tensor([float(a["well_formed"]) * np.mean([b[h] == a[h] for h in JUDGE_HEADS])
                         for b, a in zip(before, after)])


def _inversion_row(ctx, method: str, originals, inverted, t0=None) -> dict:
    from ..toy.judging import edit_outcomes
    from .common import reconstruction_scores

    scores = reconstruction_scores(ctx, originals, inverted)
    identity = edit_outcomes(ctx.judge, originals, inverted, "glasses")["identity"]
    agree = attribute_agreement(ctx.judge, originals, inverted)
    return {"inversion": method, "t0": t0, "mae": scores["mae"], "mae_ci": scores["mae_ci"],
            "judge_dist": round(scores["judge_dist"], 4), "toy_id": round(float(identity.mean()), 4),
            "attributes_kept": round(float(agree.mean()), 4), "attributes_kept_ci": _interval(agree.numpy())}


def toy_inversions(ctx, originals: torch.Tensor, t0s: Sequence[int] = (300, 600), n_show: int = 8) -> Study:
    """Table 1 at toy: e4e and the W+ projection into the toy StyleGAN2, and DDIM inversion + generation with the
    toy DDPM at each of ``t0s``, on ``originals``. ``rows``: MAE with its interval, the judge's feature distance, the
    toy identity, and the attributes read as in the original (with its interval); the figure: ``n_show`` faces as
    columns, a row per inversion, the judge's reading of the glasses under each face."""
    from ..baselines.comparison import encode_faces, invert_faces
    from ..toy.nets import judge_perceptual
    from .judged_edits import face_rows
    from .toy_gan import load_toy_e4e, load_toy_gan

    generator, latent_avg = load_toy_gan(device=ctx.device)
    _, e4e = encode_faces(originals, generator=generator, encoder=load_toy_e4e(generator))
    _, projected = invert_faces(originals, generator=generator, latent_avg=latent_avg,
                                perceptual=judge_perceptual(ctx.judge), settings=ctx.gan_settings)
    inverted = {"e4e (toy StyleGAN2)": e4e, "W+ projection (toy StyleGAN2)": projected}
    study = Study()
    study.rows = [_inversion_row(ctx, name, originals, x) for name, x in inverted.items()]
    for t0 in t0s:
        rec = ctx.edit(ctx.unet("celeba_hq"), originals, t0)
        inverted[f"DDIM t0 = {t0}"] = rec
        study.rows.append(_inversion_row(ctx, "DDIM (toy DDPM)", originals, rec, t0))
    grid, labels, notes = face_rows(ctx, "glasses", originals, inverted, n_show)
    keep = [i for i, label in enumerate(labels) if label not in ("true edit", "|Δ|")]
    study.grid, study.row_labels = [grid[i] for i in keep], [labels[i] for i in keep]
    study.notes = [notes[i] for i in keep]
    study.title = "Table 1 at toy: GAN inversion (toy StyleGAN2) beside DDIM inversion (toy DDPM); the judge reads glasses"
    return study


def gan_inversion_claim(rows: Sequence[dict], quality: dict | None) -> Claim:
    """Sec. 4.1 / Table 1: "GAN inversion fails to reconstruct; DDIM inversion is nearly perfect". One case per GAN
    inversion: its MAE interval lies wholly above every DDIM row's. ``quality`` (the toy GAN's sample quality,
    :func:`dclip.studies.toy_gan.gan_bars`) is reported beside, so a reader sees whether a weak GAN is why."""
    ddim = [r for r in rows if r["inversion"].startswith("DDIM")]
    gans = [r for r in rows if not r["inversion"].startswith("DDIM")]
    worst_ddim = max((r["mae_ci"][1] for r in ddim), default=None)
    parts = [f"{r['inversion']} MAE {r['mae']:.4f} [{r['mae_ci'][0]:.4f}, {r['mae_ci'][1]:.4f}], attributes kept "
             f"{r['attributes_kept']:.2f}" for r in gans]
    parts += [f"DDIM t0 {r['t0']} MAE {r['mae']:.4f} [{r['mae_ci'][0]:.4f}, {r['mae_ci'][1]:.4f}], attributes kept "
              f"{r['attributes_kept']:.2f}" for r in ddim]
    if quality:
        parts.append(f"the toy GAN's own samples: formed {quality['formed']:.2f}, largest attribute-frequency gap "
                     f"{quality['largest_gap']:.2f}, Fréchet distance to real faces {quality['frechet_to_real']['gan']:.1f}"
                     f" (toy DDPM's {quality['frechet_to_real'].get('ddpm', float('nan')):.1f}, real vs real "
                     f"{quality['frechet_to_real']['real (another set)']:.1f})")
    held = sum(worst_ddim is not None and r["mae_ci"][0] > worst_ddim for r in gans) if ddim else 0
    return Claim("GAN inversion fails to reconstruct the input; DDIM inversion is nearly perfect (Sec. 4.1, Table 1; "
                 "here: each GAN inversion's MAE interval above DDIM's)", "; ".join(parts), held,
                 len(gans) if ddim else 0)
